"""Serve optuna-dashboard on the study storage, on loopback only, until Ctrl-C.

The dashboard reads and can write the storage (notes, deleting studies), so it is never
exposed beyond this machine: reach it from elsewhere through an SSH tunnel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from autotune.core.errors import EnvironmentProblem
from autotune.study.storage import open_storage

LOOPBACK = "127.0.0.1"


class _QuietHandler(WSGIRequestHandler):
    """No line per request on stderr: the page polls the API every few seconds."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return


def make_dashboard(storage: str | None, port: int) -> WSGIServer:
    """A WSGI server for optuna-dashboard bound to loopback (port 0 picks a free one)."""
    from optuna_dashboard import wsgi

    app = wsgi(open_storage(storage))
    try:
        return make_server(LOOPBACK, port, app, handler_class=_QuietHandler)
    except OSError as e:
        raise EnvironmentProblem(f"cannot listen on {LOOPBACK}:{port} ({e.strerror}); "
                                 "pick another --port") from e


def serve(server: WSGIServer, ready: Callable[[str], None]) -> None:
    """Serve until KeyboardInterrupt (Ctrl-C, or SIGTERM turned into one); always close."""
    port = server.server_address[1]
    ready(f"http://{LOOPBACK}:{port}/dashboard/")
    worker = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.5)
    finally:
        server.shutdown()
        server.server_close()
