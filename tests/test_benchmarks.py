"""Smoke tests of the benchmark commands: they run and print their table.

Run as subprocesses, exactly as documented, so their process-wide set-up
(Django settings, servers) stays out of the test process. No timing is
asserted: speed is measured by the benchmarks, not by tests.
"""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT
from .servers import require


def run(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_storage_growth_quick_prints_a_row_per_backend() -> None:
    require("redis-server")  # the table has Redis rows
    out = run("benchmarks.storage_growth", "--quick")
    assert "| backend | 10 | 50 |" in out
    for backend in ("memory", "sqlite", "redis", "django-cache (redis)"):
        row = next(line for line in out.splitlines() if line.startswith(f"| {backend} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and float(cells[2]) > 0 and cells[-1].endswith("x")
