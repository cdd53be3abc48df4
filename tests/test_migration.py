"""A project written for the original framework runs after changing only its
imports (tests/migrated/: class-based tasks, a configuration dict, and a
unittest suite on the original's mixin), in a process of its own as a
user's suite runs."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT


def test_the_migrated_project_passes_its_own_unittest_suite() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "unittest", "-v", "tests.migrated.test_project"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Ran 3 tests" in proc.stderr and "OK" in proc.stderr
