"""The admin in a real headless Chromium (Debian's package, driven by
Playwright with no browser download), on a real Celery worker: a staff user
replays a failed instance with new kwargs and sees the clone finish; users
without the permission cannot act."""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celery_triggers import Status

from .conftest import Worker, fresh_django_db, wait_for
from .servers import IN_CI, free_port


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        message = "chromium is not installed (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
def site(django_caches: dict[str, Any], request: pytest.FixtureRequest) -> Iterator[str]:
    """The test project served by a WSGI server thread on a loopback port
    (with the admin's static files), its Celery app the one of
    tests.django_app that sends to the real worker."""
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.handlers.wsgi import WSGIHandler
    from django.test.utils import override_settings

    fresh_django_db(request, "default")

    class ThreadedServer(WSGIServer):
        def process_request(self, request: Any, client_address: Any) -> None:
            thread = threading.Thread(target=self._handle, args=(request, client_address), daemon=True)
            thread.start()

        def _handle(self, request: Any, client_address: Any) -> None:
            try:
                self.finish_request(request, client_address)
            finally:
                self.shutdown_request(request)
                from django.db import connections

                connections.close_all()

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    with override_settings(CELERY_TRIGGERS_APP="tests.django_app:app"):
        server = make_server(
            "127.0.0.1",
            free_port(),
            StaticFilesHandler(WSGIHandler()),
            server_class=ThreadedServer,
            handler_class=Quiet,
        )
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}"
        finally:
            server.shutdown()
            server.server_close()


@pytest.fixture
def django_worker(site: str, tmp_path: Path) -> Iterator[Worker]:
    worker = Worker(tmp_path, app="tests.django_app")
    worker.start()
    yield worker
    worker.discard()


def _login(page: Any, site: str, user: str, next_url: str) -> None:
    page.goto(f"{site}/admin/login/?next={next_url}")
    page.fill("#id_username", user)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")


def test_a_staff_user_replays_a_failed_instance_and_sees_its_clone_finish_on_a_real_worker(
    site: str, django_worker: Worker, tmp_path: Path
) -> None:
    from django.contrib.auth.models import Permission, User
    from playwright.sync_api import sync_playwright

    from celery_triggers.contrib.django.models import Session
    from tests.django_app import app

    User.objects.all().delete()
    User.objects.create_superuser("boss", password="pw")
    User.objects.create_user("outsider", password="pw")
    viewer = User.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(
        Permission.objects.get(codename="view_session", content_type__app_label="celery_triggers")
    )

    app.triggers.fire("web-1", "applied", {"ok": False})
    session = app.triggers.session("web-1")
    wait_for(lambda: session.instance("t_score#0").status is Status.FAILED, 30, "t_score#0 to fail on the worker")
    url = f"/admin/celery_triggers/session/{Session.objects.get(uid='web-1').pk}/change/"

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _login(page, site, "boss", url)
            row = page.locator('tr[data-instance="t_score#0"]')
            assert row.get_attribute("data-status") == "failed"
            assert "ValueError" in row.inner_text()
            row.locator('input[name="kwargs"]').fill('{"applied": {"ok": true}}')
            row.locator("button.ct-replay").click()
            page.wait_for_selector(".messagelist .success")
            assert "replayed t_score#0 as t_score#1" in (page.text_content(".messagelist") or "").lower()

            def clone_finished() -> bool:
                page.reload()
                return page.locator('tr[data-instance="t_notify#0"]').get_attribute("data-status") == "finished"

            wait_for(clone_finished, 30, "the clone and its cascade to finish on the worker")
            assert page.locator('tr[data-instance="t_score#0"]').get_attribute("data-status") == "replayed"
            assert page.locator('tr[data-instance="t_score#1"]').get_attribute("data-status") == "finished"
            assert page.locator('g.ct-node[data-name="t_notify"]').get_attribute("data-state") == "finished"
            shot = tmp_path / "session.png"  # kept under the test's tmp dir (CT_SCREENSHOT_DIR: a copy)
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("CT_SCREENSHOT_DIR"):
                shutil.copy(shot, os.environ["CT_SCREENSHOT_DIR"])

            # Someone without the change permission: no forms, and a forged POST is refused.
            viewer_page = browser.new_context().new_page()
            _login(viewer_page, site, "viewer", url)
            assert viewer_page.locator('tr[data-instance="t_score#1"]').count() == 1
            assert viewer_page.locator("button.ct-replay, button.ct-delete").count() == 0
            token = next(c["value"] for c in viewer_page.context.cookies() if c["name"] == "csrftoken")
            forged = viewer_page.request.post(
                f"{site}{url.removesuffix('change/')}do/delete/",
                form={"csrfmiddlewaretoken": token},
                headers={"Referer": f"{site}{url}", "X-CSRFToken": token},
            )
            assert forged.status == 403

            # Not staff: the admin does not let them in at all.
            outsider = browser.new_context().new_page()
            _login(outsider, site, "outsider", url)
            assert "/admin/login/" in outsider.url
            assert outsider.locator("tr[data-instance]").count() == 0
        finally:
            browser.close()
    assert Session.objects.filter(uid="web-1").exists()
    assert session.instance("t_notify#0").result == "score 7"
