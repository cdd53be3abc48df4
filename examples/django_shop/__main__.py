"""Run the example shop: ``python -m examples.django_shop [--serve]``.

Migrates its SQLite database, creates an admin user, starts ``celery -A shop
worker`` in a subprocess, fires an order's three events in a shuffled order,
waits until every instance is resolved, prints them and where to see the
session in Django's admin. ``--serve`` then keeps the worker and serves the
admin (Django's ``runserver``) until Ctrl-C or SIGTERM, and stops the
worker then.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from celery_triggers.testing import wait_until_idle

HERE = Path(__file__).resolve().parent
EVENTS = {
    "orderPlaced": {"order": "O-1001", "lines": [{"sku": "TEA-01", "qty": 2}, {"sku": "MUG-07", "qty": 1}]},
    "paymentAuthorized": {"amount": "31.50 EUR"},
}


def start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "celery", "-A", "shop", "worker", "--loglevel=INFO", "--concurrency=2"]
    cmd += ["--without-mingle", "--without-gossip", "--without-heartbeat"]
    return subprocess.Popen(cmd, cwd=HERE, env=env)


def ensure_admin(data: Path) -> str:
    """An ``admin`` superuser; its password is kept in the data folder."""
    from django.contrib.auth.models import User

    secret = data / "admin-password.txt"
    if not secret.exists() or not User.objects.filter(username="admin").exists():
        secret.write_text(secrets.token_urlsafe(12))
        User.objects.filter(username="admin").delete()
        User.objects.create_superuser("admin", password=secret.read_text())
    return secret.read_text()


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # runs the ``finally`` that stops the worker


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--serve", action="store_true", help="then serve the admin until Ctrl-C")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--seed", type=int, default=None, help="shuffle seed")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="also print the instances as one JSON line")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(HERE))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from shop.celery import app

    from celery_triggers.contrib.django.models import Session

    settings.BROKER.mkdir(parents=True, exist_ok=True)
    call_command("migrate", verbosity=0)
    password = ensure_admin(settings.DATA)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    # SIGTERM (a service manager, `kill`) ends the run as Ctrl-C does: the worker is stopped too.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    worker = start_worker(env)
    try:
        session = app.triggers.session(f"order-{uuid.uuid4().hex[:8]}")
        order = ["orderPlaced", "paymentAuthorized"]
        random.Random(args.seed).shuffle(order)
        for name in order:
            print(f"fire {name} {EVENTS[name]}")
            session.fire(name, EVENTS[name])
        instances = wait_until_idle(session, timeout=args.timeout)
        print(f"\nsession {session.uid}:")
        for name, instance in instances.items():
            print(f"  {name:20} {instance.status.value:9} result={instance.result}")
        page = f"http://127.0.0.1:{args.port}/admin/celery_triggers/session/{Session.objects.get(uid=session.uid).pk}/change/"
        print(f"\nIn Django's admin (user admin, password {password}): {page}")
        if args.serve:
            call_command("runserver", f"127.0.0.1:{args.port}", use_reloader=False)
        else:
            print("Serve it with: python -m examples.django_shop --serve")
    finally:
        worker.terminate()  # warm shutdown: the worker finishes what it holds
        worker.wait(timeout=60)
    result = {name: i.to_dict() for name, i in instances.items()}
    if args.json:
        print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
