"""The Celery tasks behind the sessions of tests/upgrade_fixtures/ (stored by
the previous release), shared by tests/test_upgrade.py (eager) and the real
worker (tests/worker_app.py). Each returns what it received, so that a test
can tell which kwargs reached it. Their trigger names are used by no other
test app, so the worker's other configs never cascade into these sessions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from celery import Celery

__all__ = ["configs", "declare"]

Kwargs = dict[str, Any]


def configs() -> dict[str, Any]:
    """The app-wide configs the fixtures were written with (the original
    framework's format), as the generator read them."""
    text = (Path(__file__).parent / "upgrade_fixtures" / "configs.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def register_manuscript(trigger_kwargs: Kwargs) -> Kwargs:
    submitted = trigger_kwargs["manuscriptSubmitted"]
    return {"title": submitted["title"], "author": submitted["author"]["name"]}


def typeset_chapter(trigger_kwargs: Kwargs) -> Kwargs:
    chapter = trigger_kwargs["chapterUploaded"]  # its "layout" comes from withParams
    return {"chapter": chapter["chapter"], "layout": chapter["layout"], "of": trigger_kwargs["t_registerManuscript"]}


def bind_book(trigger_kwargs: Kwargs) -> Kwargs:
    return {"bound_after_chapter": trigger_kwargs["t_typesetChapter"]["chapter"]}


def pay_advance(trigger_kwargs: Kwargs) -> Kwargs:
    advance = trigger_kwargs["contractSigned"]["advance"]
    return {"paid": advance["amount"], "currency": advance["currency"], "for": trigger_kwargs["t_registerManuscript"]}


def send_statement(trigger_kwargs: Kwargs) -> Kwargs:
    return {"statement_for": trigger_kwargs["t_payAdvance"]["paid"]}


def notify_editor(trigger_kwargs: Kwargs) -> Kwargs:
    paid = trigger_kwargs["t_payAdvance"]  # "editor" comes from the session's own withParams
    return {"editor": paid["editor"], "paid": paid["paid"]}


def welcome_author(trigger_kwargs: Kwargs) -> str:
    return f"Welcome, {trigger_kwargs['manuscriptSubmitted']['author']['name']}!"


def send_gift(trigger_kwargs: Kwargs) -> Kwargs:
    return {"gift": "bookmark", "after": trigger_kwargs["t_welcomeAuthor"]}


def sync_catalog(trigger_kwargs: Kwargs) -> Kwargs:
    return {"synced": sorted(trigger_kwargs["catalogSyncRequested"]["ids"])}


def archive(trigger_kwargs: Kwargs) -> Kwargs:
    return {"archived": trigger_kwargs["t_syncCatalog"]["synced"]}


TASKS = {
    "upgrade_fixture.register_manuscript": register_manuscript,
    "upgrade_fixture.typeset_chapter": typeset_chapter,
    "upgrade_fixture.bind_book": bind_book,
    "upgrade_fixture.pay_advance": pay_advance,
    "upgrade_fixture.send_statement": send_statement,
    "upgrade_fixture.notify_editor": notify_editor,
    "upgrade_fixture.welcome_author": welcome_author,
    "upgrade_fixture.send_gift": send_gift,
    "upgrade_fixture.sync_catalog": sync_catalog,
    "upgrade_fixture.archive": archive,
}


def declare(app: Celery) -> None:
    """Register the tasks on ``app`` and configure their trigger tasks app-wide
    (the session-only ``t_notifyEditor`` is stored in its session)."""
    for name, body in TASKS.items():
        app.task(name=name, shared=False)(body)
    app.triggers.configure(configs())
