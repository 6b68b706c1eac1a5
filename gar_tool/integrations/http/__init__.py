"""HTTP clients of ``gar serve`` with the same tool interface as :class:`~gar_tool.tools.GARToolkit`.

::

    from gar_tool.integrations.http import GARClient
    with GARClient("http://127.0.0.1:8000") as gar:
        res = gar.describe({"image": "photo.jpg", "region": {"box": [10, 20, 200, 240]}})
        res.content, res.artifact.region.id            # the same ToolResult a local toolkit returns

    Planner(GARClient("http://gpu-box:8000"), chat_model).ask("photo.jpg", "...")   # remote tools

* ``call(name, args)`` / ``describe`` / ``relate`` / ``ground`` / ``measure`` → :class:`ToolResult`;
  ``available_tools()``, ``health()``, ``upload_image(path | bytes | PIL | array) -> image_id``.
* ``image`` arguments that are not strings (bytes, PIL images, arrays, ``Path``), and strings naming
  an existing *local* file (``upload_paths=True``), are uploaded first (``POST /v1/images``) and
  replaced by their ``image_id``: the server never needs to see the client's file system.
* ``store`` is a small stand-in for the toolkit's session store: ``store.put_image(pil)`` uploads
  and returns an object with ``image_id``; ``store.get_region(rid)`` rebuilds a :class:`Region` from
  the RLE masks of results this client received (a bounded local cache) — what
  :class:`agents.Planner` needs. ``gar.prompt_slots`` comes from ``/health``.
* Errors map back onto the toolkit's: :class:`ToolInputError` (the server's 4xx with
  ``retryable: true``: bad arguments, unknown ids, too large) and :class:`ToolFailure` (5xx, tool not
  available), with two kinds of ``ToolFailure`` of the client's own:
  :class:`GARConnectionError` (server unreachable / timed out) and :class:`GARServerBusy` (429;
  ``retry_after`` seconds; ``max_busy_retries`` retries automatically).

:class:`AsyncGARClient` is the same over ``httpx.AsyncClient`` (``await client.call(...)``).
``transport`` takes any httpx transport (``httpx.MockTransport``, ``httpx.ASGITransport(app)``)
for tests. This module never imports the servers.
"""

from __future__ import annotations

from gar_tool.integrations.http.aio import AsyncGARClient
from gar_tool.integrations.http.remote_gar import RemoteGAR
from gar_tool.integrations.http.client import GARClient
from gar_tool.integrations.http.wire import (DEFAULT_TIMEOUT, DEFAULT_URL, AsyncRemoteStore, GARConnectionError, GARServerBusy, RegionCache,
                   RemoteStore, UploadedImage, error_from_response, image_payload)

__all__ = ["GARClient", "AsyncGARClient", "GARConnectionError", "GARServerBusy", "UploadedImage", "RemoteGAR",
           "RemoteStore", "AsyncRemoteStore", "RegionCache", "image_payload", "error_from_response",
           "DEFAULT_URL", "DEFAULT_TIMEOUT"]
