"""Serves the emulator's WSGI app on a local port: threaded, quiet, stoppable, and able to reset
a connection when a fault asks for it."""

from __future__ import annotations

import socket
import struct
import sys
import threading
from collections.abc import Callable
from socketserver import TCPServer, ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from reconciler.emulator.app import CONNECTION, Emulator


class _RequestHandler(WSGIRequestHandler):
    log_requests = False
    server: _ThreadingWSGIServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.log_requests:
            super().log_message(format, *args)

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[CONNECTION] = self
        return environ

    @property
    def closing(self) -> threading.Event:
        return self.server.closing

    def reset(self) -> None:
        """Close with linger 0, which makes the kernel send RST instead of FIN: the client,
        waiting for a reply, sees "connection reset by peer"."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The socket is only really closed once its file objects are: rfile holds a reference.
        self.rfile.close()
        self.connection.close()


class _LoggingRequestHandler(_RequestHandler):
    log_requests = True


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    """socketserver's default backlog of 5 resets connections under a burst of parallel calls."""

    def __init__(self, address: tuple[str, int], handler: type[_RequestHandler]) -> None:
        self.closing = threading.Event()
        """Set while the server shuts down: replies held back by a fault stop waiting."""
        super().__init__(address, handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, a DNS lookup that can stall for
        # seconds on a machine without a resolver; loopback needs none.
        TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = str(host)
        self.server_port = int(port)
        self.setup_environ()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up mid-reply (a timeout, a reset) is routine, not news.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class EmulatorServer:
    """A bound IPv4 server; call `serve_forever` (blocking) or `start` (background thread)."""

    def __init__(self, app: Emulator, host: str, port: int, *, log_requests: bool) -> None:
        handler = _LoggingRequestHandler if log_requests else _RequestHandler
        self._server = _ThreadingWSGIServer((host, port), handler)
        self._server.set_app(app)
        self._thread: threading.Thread | None = None
        self._serving = False
        self.app = app

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def serve_forever(self) -> None:
        """Serve in this thread until `shutdown` is called from another one."""
        self._serving = True
        self._server.closing.clear()
        try:
            self._server.serve_forever()
        finally:
            self._server.closing.set()
            self._server.server_close()

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._serving = True
        self._server.closing.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            # Short polls make `shutdown` (once per test) quick.
            kwargs={"poll_interval": 0.02},
            name=f"emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()

    def shutdown(self) -> None:
        """Stop serving and release the port; safe to call more than once. Replies held back by
        a fault stop waiting at once."""
        self._server.closing.set()
        if self._serving:
            # BaseServer.shutdown waits for a serve_forever loop: only ask one that was started.
            self._server.shutdown()
            self._serving = False
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._server.server_close()


def serve(
    app: Emulator, host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False
) -> EmulatorServer:
    """Bind `app` to host:port (0: any free port); nothing is served until it is started."""
    return EmulatorServer(app, host, port, log_requests=log_requests)


def start_in_thread(
    app: Emulator, host: str = "127.0.0.1", port: int = 0
) -> tuple[EmulatorServer, str]:
    server = serve(app, host, port)
    server.start()
    return server, server.url


def serve_forever(
    app: Emulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    on_ready: Callable[[str], None] = lambda url: None,
    log_requests: bool = False,
) -> None:
    """Serve until interrupted; `on_ready` gets the URL once the port is bound."""
    server = serve(app, host, port, log_requests=log_requests)
    try:
        on_ready(server.url)
    except BaseException:
        server.shutdown()
        raise
    server.serve_forever()
