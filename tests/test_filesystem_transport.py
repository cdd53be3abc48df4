"""The serverless broker of the examples: kombu's filesystem transport with
messages written atomically (the stock one lets a consumer read a
message file before it is written)."""

from __future__ import annotations

import os
from pathlib import Path
from queue import Empty
from typing import Any

import pytest
from kombu.connection import Connection
from kombu.exceptions import ChannelError

from celery_triggers.testing.filesystem import Transport


def connection(folder: Path) -> Connection:
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "store_processed": False}
    return Connection("filesystem://", transport=Transport, transport_options=options)  # type: ignore[no-untyped-call]  # kombu is untyped


def test_a_message_is_invisible_until_it_is_whole_and_then_read_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = {"body": "x" * 200_000}
    seen_while_writing: list[Any] = []
    real_replace = os.replace

    with connection(tmp_path) as producer, connection(tmp_path) as consumer:
        reader = consumer.default_channel

        def replace(src: str, dst: str) -> None:
            try:  # the message is written, not yet renamed: a consumer must not see it
                seen_while_writing.append(reader._get("q"))
            except Empty:
                seen_while_writing.append(None)
            real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        producer.default_channel._put("q", payload)
        monkeypatch.setattr(os, "replace", real_replace)
        assert seen_while_writing == [None]
        assert reader._get("q") == payload
        with pytest.raises(Empty):
            reader._get("q")


def test_a_failed_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    with connection(tmp_path) as producer:
        monkeypatch.setattr(os, "replace", fail)
        with pytest.raises(ChannelError, match="Cannot add file"):
            producer.default_channel._put("q", {"a": 1})
    assert list(tmp_path.iterdir()) == []


def test_firing_through_it_logs_no_missing_hostname_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder is the broker: the messages a fire sends (through Celery's
    producer pool, which clones the connection) warn about no hostname."""
    from .conftest import make_app

    app = make_app(
        runner="celery",
        broker_url="filesystem://",
        broker_transport=f"{Transport.__module__}:Transport",
        broker_transport_options={"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)},
    )
    app.triggers.configure({"t_a": {"after": ["a"], "run": "proj.a"}})
    with caplog.at_level("WARNING"):
        app.triggers.fire("no-host", "a")
        app.connection_for_write().clone().release()
    assert "No hostname was supplied" not in caplog.text
    assert list(tmp_path.glob("*.msg")), "the message was sent"
