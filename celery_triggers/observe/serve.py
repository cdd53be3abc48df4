"""The worker's ``/metrics``: a bootstep of the worker's main process,
on when ``triggers_metrics_port`` is set.

Prefork pool processes count in their own memory; prometheus_client's
multiprocess mode aggregates them: before the pool forks, this step points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory of this worker's own
(unless the environment names one: then that one, left as it is), every
process of the worker writes its counts there (files per process id, kept
after a pool process exits, so counters never go back), and the main
process serves their sum. Chosen over sending counts to the main process:
it is prometheus_client's documented way, it needs no channel between the
processes, and a pool process that is killed loses nothing it counted.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from celery import bootsteps

from ..core.errors import ConfigurationError
from ..session.extension import extension_of
from ..worker.bootstep import METRICS_STEP_LABEL
from ..worker.sweeper import swept
from .metrics import metrics

__all__ = ["MetricsStep", "multiprocess_directory"]

logger = logging.getLogger("celery_triggers")

_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_directory() -> tuple[str, bool]:
    """The directory of prometheus_client's multiprocess mode for this
    worker, and whether this worker made it (and removes it at the end).
    Before prometheus_client is imported: it reads the variable then."""
    given = os.environ.get(_ENV) or os.environ.get(_ENV.lower())
    if given:
        os.makedirs(given, exist_ok=True)
        return given, False
    made = tempfile.mkdtemp(prefix="celery-triggers-metrics-")
    os.environ[_ENV] = made
    try:
        from prometheus_client import values
    except ImportError:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(_ENV, None)
        raise ConfigurationError(
            "set, but prometheus_client is not installed: pip install 'celery-triggers[prometheus]'",
            setting="triggers_metrics_port",
        ) from None
    if values.ValueClass is values.MutexValue:
        shutil.rmtree(made, ignore_errors=True)
        os.environ.pop(_ENV, None)
        raise ConfigurationError(
            f"prometheus_client was imported before the worker started, without {_ENV}: the pool processes' "
            f"counts cannot be added up; set {_ENV} to an empty directory in the worker's environment",
            setting="triggers_metrics_port",
        )
    return made, True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No line per scrape in the worker's log."""


class MetricsStep(bootsteps.StartStopStep):  # type: ignore[misc]  # celery is untyped
    """Serves ``/metrics`` on ``triggers_metrics_addr:triggers_metrics_port``."""

    label = METRICS_STEP_LABEL

    def __init__(self, parent: Any, **kwargs: Any):
        super().__init__(parent, **kwargs)
        self.directory: str | None = None
        self.owned = False
        self.server: WSGIServer | None = None
        ext = extension_of(parent.app)
        self.port = ext.setting("triggers_metrics_port") if ext is not None else None
        self.addr = ext.setting("triggers_metrics_addr") if ext is not None else ""
        if self.port:  # before the pool forks: its processes inherit the directory
            self.directory, self.owned = multiprocess_directory()

    def start(self, parent: Any) -> None:
        if self.directory is None:
            return
        from prometheus_client import CollectorRegistry, make_wsgi_app
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.directory)  # type: ignore[no-untyped-call]  # untyped there
        try:
            self.server = make_server(self.addr, int(str(self.port)), make_wsgi_app(registry), handler_class=_Quiet)
        except (OSError, OverflowError) as exc:  # a port in use or out of range; an extension never breaks its host
            logger.error("celery-triggers: cannot serve metrics on %s:%s: %s", self.addr, self.port, exc)
            return
        threading.Thread(target=self.server.serve_forever, name="celery-triggers-metrics", daemon=True).start()
        self.ext = extension_of(parent.app)
        swept.connect(self._census, weak=False, dispatch_uid=f"celery_triggers.observe.serve-{id(self)}")
        logger.warning(
            "celery-triggers: metrics on http://%s:%d/metrics",
            self.server.server_address[0],
            self.server.server_port,
        )

    def _census(self, sender: Any = None, census: dict[str, int] | None = None, **_: Any) -> None:
        if sender is self.ext and census is not None:
            metrics().census(census)

    def stop(self, parent: Any) -> None:
        if self.server is not None:
            swept.disconnect(self._census, dispatch_uid=f"celery_triggers.observe.serve-{id(self)}")
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        if self.owned and self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def terminate(self, parent: Any) -> None:
        """A cold shutdown (or Celery's test worker) stops it too."""
        self.stop(parent)
