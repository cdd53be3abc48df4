"""The release artefacts: the sdist carries what its tests need, and they
collect from the unpacked sdist alone."""

from __future__ import annotations

import configparser
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_the_sdist_carries_its_tests_and_they_collect(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--outdir", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    (sdist,) = (tmp_path / "dist").glob("celery_triggers-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {Path(n).relative_to(Path(n).parts[0]).as_posix() for n in archive.getnames() if "/" in n}
        archive.extractall(tmp_path / "unpacked", filter="data")
    needed = {"LICENSE", "CHANGELOG.md", "README.md", "tests/conftest.py", "tests/servers.py", "tests/worker_app.py"}
    needed |= {"tests/runner_plugin.py", "tests/sim.py", "tests/migrated/proj.py", "docs/storage.md"}
    needed |= {"mkdocs.yml", "tests/test_docs.py", "docs/tutorial/first-trigger-task.md", "docs/reference/settings.md"}
    needed |= {f"tests/upgrade_fixtures/{name}" for name in ("configs.json", "0.1/sqlite.sql", "0.1/redis.json")}
    needed |= {"tests/upgrade_fixtures/0.1/django-cache-redis.json", "tests/upgrade_fixtures/0.1/django-db.json"}
    assert needed <= names, needed - names
    (root,) = (tmp_path / "unpacked").iterdir()
    collected, ours = _collect(root), _collect(ROOT)
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-2000:]
    assert _count(collected.stdout) == _count(ours.stdout), "the sdist collects every test"


def _collect(cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


def _count(output: str) -> str:
    """ "618 tests collected in 1.2s" -> "618"."""
    return next(line for line in reversed(output.splitlines()) if "collected" in line).split()[0]


def test_the_redis_extra_brings_celerys_redis_transport_and_the_readme_says_so_where_redis_first_appears() -> None:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    redis_extra = [line.strip() for line in parser["options.extras_require"]["redis"].split("\n") if line.strip()]
    assert any(line.startswith("celery[redis]") for line in redis_extra), redis_extra
    readme = (ROOT / "README.md").read_text()
    first_redis = readme.index("redis://")
    assert "celery-triggers[redis]" in readme[:first_redis], "the install hint comes before the first Redis URL"
