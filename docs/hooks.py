"""MkDocs hook: the package's docstrings are written for Sphinx
(``:class:`Option```); the API pages show such a role as plain code."""

from __future__ import annotations

import re
from typing import Any

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|data|attr|exc|mod|obj):(?=<code)")


def on_page_content(html: str, **kwargs: Any) -> str:
    return ROLE.sub("", html)
