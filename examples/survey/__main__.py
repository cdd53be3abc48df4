"""Run the survey journey on a real worker: ``python -m examples.survey``.

Starts ``celery -A proj worker`` in a subprocess, fires the three external
triggers in a shuffled order, waits until every instance is resolved and
prints them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

from celery_triggers.testing import wait_until_idle

HERE = Path(__file__).resolve().parent
TRIGGERS = {
    "startSession": {"survey": "S-42"},
    "observationsReceived": {"answers": [3, 1, 4, 1, 5]},
    "sessionFinalized": {},
}


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "proj",
        "worker",
        "--loglevel=INFO",
        "--concurrency=2",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
    ]
    return subprocess.Popen(cmd, cwd=HERE, env=env)


def main(argv: list[str] | None = None) -> dict[str, dict]:  # type: ignore[type-arg]
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="also print the instances as one JSON line")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    import proj  # the worker imports the same module

    proj.ensure_dirs()
    env = {**os.environ, "SURVEY_DATA": str(proj.DATA), "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    worker = start_worker(env)
    try:
        session = proj.app.triggers.session(f"survey-{uuid.uuid4().hex[:8]}")
        order = list(TRIGGERS)
        random.Random(args.seed).shuffle(order)
        for name in order:
            print(f"fire {name} {TRIGGERS[name]}")
            session.fire(name, TRIGGERS[name])
        instances = wait_until_idle(session, timeout=args.timeout)  # nothing scheduled or running
        print(f"\nsession {session.uid}:")
        for name, instance in instances.items():
            print(f"  {name:22} {instance.status.value:9} result={instance.result}")
    finally:
        worker.terminate()  # warm shutdown: the worker finishes what it holds
        worker.wait(timeout=60)
    result = {name: i.to_dict() for name, i in instances.items()}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
