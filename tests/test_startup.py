"""The storage check at a worker's start retries as Celery's broker connection does."""

from __future__ import annotations

from typing import Any

import pytest

from celery_triggers import StorageUnavailable, resolve_storage
from celery_triggers.worker.startup import ping_until_up


def test_the_check_backs_off_as_celery_does_and_gives_up_naming_the_masked_url(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = resolve_storage("redis://:pw-secret@127.0.0.1:1/0")  # nothing listens on port 1
    waits: list[float] = []
    conf: dict[str, Any] = {"broker_connection_retry_on_startup": True, "broker_connection_max_retries": 3}
    with pytest.raises(StorageUnavailable) as raised:
        ping_until_up(conf, storage, sleep=waits.append)
    assert waits == [2.0, 4.0, 6.0]
    assert "redis://:***@127.0.0.1:1/0" in str(raised.value) and "pw-secret" not in str(raised.value)
    assert "celery-triggers:ping" not in str(raised.value) + caplog.text
    assert caplog.text.count("Trying again in") == 3 and "(3/3)" in caplog.text

    waits.clear()
    with pytest.raises(StorageUnavailable):
        ping_until_up({"broker_connection_retry_on_startup": False}, storage, sleep=waits.append)
    assert waits == [], "no retry when Celery's setting says none"
