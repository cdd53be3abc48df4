"""README.md's ``python`` block runs as a reader would paste it, and does
what the README says; the rest of the manual is the documentation site,
whose code tests/test_docs.py runs.

What the harness supplies, and why: the broker URL points at the tests'
own redis-server (the block fires, so the broker receives the messages of
what it scheduled). The ``bash`` block is the set-up commands (what CI
runs).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import Status

from .conftest import ROOT
from .servers import RedisServer

README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_the_readme_example_runs(redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(BLOCKS) == 1, "the README shows one example"
    monkeypatch.chdir(tmp_path)  # the block's SQLite file lands here
    ns: dict[str, Any] = {"__name__": "readme"}
    code = BLOCKS[0].replace("redis://localhost:6379/0", redis_server.url.rsplit("/", 1)[0] + "/9")
    exec(compile(code, "README.md python block", "exec"), ns)  # the README's own code
    assert ns["session"].instances["t_createApplicant#0"].status is Status.SCHEDULED
    assert "t_computeScore#0" not in ns["session"].instances, "none of its triggers has fired yet"


def test_the_readme_links_to_pages_that_exist() -> None:
    links = re.findall(r"\]\(((?:docs/)[^)#]*)\)", README)
    assert len(links) >= 15, "the README links to the site's pages"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, missing


def test_the_readme_keeps_the_two_set_up_commands() -> None:
    assert "pip install -e . && python -m examples.survey" in README
    assert 'pip install -e ".[test]" && python -m pytest' in README
