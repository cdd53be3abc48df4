"""The original Triggers framework (2.0), measured beside celery-triggers.

``python -m benchmarks --original PATH`` installs the original from a source
checkout at PATH (a work tree, or a bare git repository whose HEAD is used)
into a side venv that this module creates with the benchmark's own
interpreter, its dependencies from the package index: the same versions of
Django, Celery, redis-py and hiredis as celery-triggers runs with (so the
comparison is of the frameworks, not of their clients), django-redis, and
what the original's setup.py asks for. The venv is kept between runs
(keyed by the source, the interpreter and those versions).

Its ``fire()`` then runs in that venv, in a subprocess (:mod:`.driver`),
against the same redis-server as celery-triggers, and answers one JSON line
per request. Nothing of the original is imported here, and none of its code
is part of this repository.

Where it cannot be installed or started, :func:`start` returns the reason
instead, and the tables say "not measured".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

DRIVER = Path(__file__).with_name("driver.py")

#: Installed at our own versions when we have them, so both sides use the same client libraries.
SAME_AS_OURS = ("Django", "celery", "redis", "hiredis")
#: django-redis is the original's cache backend (its locks need it); it is not one of our dependencies.
EXTRA = ("django-redis>=5.4",)


class NotMeasured(Exception):
    """Why the original framework could not be measured (printed in the tables)."""


def requirements() -> list[str]:
    pins = []
    for name in SAME_AS_OURS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name != "hiredis":  # optional on our side too
                pins.append(name)
    return [*pins, *EXTRA]


def source_tree(path: Path, scratch: Path) -> tuple[Path, str]:
    """The original's source as a directory with its setup.py, and what it is
    (the git commit where there is one)."""
    path = path.expanduser().resolve()
    if not path.exists():
        raise NotMeasured(f"no source at {path}")
    commit = _git(path, "rev-parse", "HEAD")
    if (path / "setup.py").is_file():
        return path, commit or str(path)
    if commit is None:
        raise NotMeasured(f"{path} is neither a source checkout (no setup.py) nor a git repository")
    archive = scratch / "original.tar"  # a bare repository (no work tree): export HEAD
    with open(archive, "wb") as out:
        subprocess.run(["git", "-C", str(path), "archive", "HEAD"], stdout=out, check=True)
    tree = scratch / "original-src"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    if not (tree / "setup.py").is_file():
        raise NotMeasured(f"{path} at {commit[:12]} has no setup.py")
    return tree, commit


def _git(path: Path, *args: str) -> str | None:
    if shutil.which("git") is None:
        return None
    proc = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _fingerprint(tree: Path, pins: list[str]) -> str:
    digest = hashlib.sha256(f"{sys.version}\n{pins}\n".encode())
    for file in sorted(tree.rglob("*")):
        if file.is_file() and ".git" not in file.parts:
            digest.update(str(file.relative_to(tree)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def default_venvs() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "celery-triggers-benchmarks"


def install(source: Path, venvs: Path) -> tuple[Path, str]:
    """The side venv's interpreter, the original installed in it; and the
    source's commit. Reuses a venv made earlier from the same source and
    versions."""
    with tempfile.TemporaryDirectory() as scratch:
        tree, commit = source_tree(source, Path(scratch))
        pins = requirements()
        venv = venvs / f"original-{_fingerprint(tree, pins)}"
        python = venv / "bin" / "python"
        marker = venv / "installed.json"
        if marker.is_file() and python.exists():
            return python, commit
        shutil.rmtree(venv, ignore_errors=True)
        venv.parent.mkdir(parents=True, exist_ok=True)
        steps = [
            [sys.executable, "-m", "venv", str(venv)],
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *pins, str(tree)],
        ]
        for step in steps:
            proc = subprocess.run(step, capture_output=True, text=True)
            if proc.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                lines = [line for line in (proc.stderr or proc.stdout).splitlines() if "is ignored" not in line]
                raise NotMeasured(f"installing it failed ({' '.join(step[2:5])}): {' / '.join(lines[-3:])}")
        marker.write_text(json.dumps({"source": str(source), "commit": commit, "requirements": pins}))
        return python, commit


class Original:
    """The original framework's driver: a subprocess in the side venv."""

    def __init__(self, python: Path, redis_url: str, commit: str):
        self.commit = commit
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
        self.errors = tempfile.TemporaryFile("w+")  # a file, not a pipe: warnings never block the driver
        self.proc = subprocess.Popen(
            [str(python), str(DRIVER), redis_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.errors,
            text=True,
            env=env,
        )
        self.versions: dict[str, str] = self._answer()["versions"]

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=10)
            self.errors.seek(0)
            error = [x for x in self.errors.read().splitlines() if x.strip()]
            raise NotMeasured(f"its driver stopped: {error[-1] if error else self.proc.returncode}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise NotMeasured(f"its driver failed: {answer['error']}")
        return answer

    def request(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def describe(self) -> str:
        versions = ", ".join(f"{k} {v}" for k, v in self.versions.items())
        return f"the original framework at {self.commit[:12]} ({versions})"

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.errors.close()


def start(source: Path | None, venvs: Path, redis_url: str) -> Original | str:
    """The original's driver on ``redis_url``, or why it cannot be measured."""
    if source is None:
        return "not measured (pass --original PATH: a checkout of the original framework, Triggers 2.0)"
    try:
        python, commit = install(source, venvs)
        return Original(python, redis_url, commit)
    except (NotMeasured, OSError, subprocess.SubprocessError) as exc:
        return f"not measured ({exc})"
