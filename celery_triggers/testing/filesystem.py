"""kombu's filesystem transport, with messages written atomically: a
serverless broker for development and examples.

kombu's ``filesystem://`` creates a message file and then writes it; a
consumer listing the folder in between reads a partial file and its worker
dies with ``JSONDecodeError`` (the transport locks on write, not on read).
Here a message is written under a name consumers ignore and renamed into
place (``os.replace``, atomic on POSIX and Windows), so a consumer sees a
whole message or none. Use it with::

    app.conf.broker_url = "filesystem://"
    app.conf.broker_transport = "celery_triggers.testing.filesystem:Transport"
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

__all__ = ["Channel", "Transport"]


class Channel(filesystem.Channel):
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # as kombu's own
        """Put ``payload`` onto ``queue``: written to a hidden name, then
        renamed to the ``<time>_<uuid>.<queue>.msg`` name consumers list."""
        stem = f"{round(monotonic() * 1000)}_{uuid.uuid4()}"
        final = os.path.join(self.data_folder_out, f"{stem}.{queue}.msg")
        # Named for no queue: kombu 5.3-5.5 take any file whose name contains "<queue>.msg".
        partial = os.path.join(self.data_folder_out, f"~{stem}.part")
        try:
            with open(partial, "wb") as out:
                out.write(str_to_bytes(dumps(payload)))  # type: ignore[no-untyped-call]  # kombu is untyped
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.remove(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict[str, Any]:
        """No default host: a folder is the broker (kombu would otherwise
        log "No hostname was supplied" for every connection it clones)."""
        return {"port": self.default_port}
