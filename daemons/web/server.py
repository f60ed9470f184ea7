"""A small HTTP server for what a daemon shows to tools and browsers: its metrics, the dashboard.

Why not http.server's ThreadingHTTPServer or prometheus_client's own server: both start a thread
per connection without a limit and wait on a silent client for ever, so anyone who can reach the
port could take every thread and all the memory they cost. Here:
- at most `max_connections` are served at once; one beyond is closed at once, and counted;
- a request must arrive whole, and each write of an answer go, within IO_TIMEOUT_SECONDS: a
  client that sends its request slowly, or stops reading a stream, is dropped, and its thread
  is free again;
- with the daemon's TLS config, a connection is served only to a client presenting a certificate
  of the cluster's CA (the handshake, too, under the deadline, on the connection's own thread);
- a port another process holds is logged (`on_held`) and tried again every PORT_RETRY_SECONDS,
  as the health datagrams' is: what only shows the daemon never keeps it from serving queries;
- nothing wakes while no client comes: accept blocks, and stop() ends it by shutting the socket.
"""

from __future__ import annotations

import contextlib
import errno
import io
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from daemons.config import Address, TlsConfig, is_loopback
from daemons.errors import describe_error

IO_TIMEOUT_SECONDS = 10.0  # for a whole request to arrive, a handshake, and each write of an answer
MAX_HEAD_BYTES = 65536  # a request's line and headers: a browser's are a few hundred bytes
RECEIVE_BYTES = 8192
PORT_RETRY_SECONDS = 1.0
ACCEPT_PAUSE_SECONDS = 0.1  # after accept fails for want of file descriptors: they free up as connections end


@dataclass
class Response:
    """What a route answers: a whole body, or a stream of pieces sent as they come (server-sent
    events), which ends when the iterator does or the client goes."""

    status: HTTPStatus = HTTPStatus.OK
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    stream: Iterable[bytes] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Request:
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]


Route = Callable[[Request], Response]


def _head_end(data: bytes) -> int:
    """Where a request's head ends in `data` (after its blank line), or -1 if it has not yet."""
    ends = [index + len(blank) for blank in (b"\r\n\r\n", b"\n\n") if (index := data.find(blank)) >= 0]
    return min(ends, default=-1)


def not_found(request: Request) -> Response:
    return Response(HTTPStatus.NOT_FOUND, body=f"nothing at {request.path}\n".encode())


class _Handler(BaseHTTPRequestHandler):
    """One connection: GETs (or HEADs), each answered by the route for its path. HTTP/1.1, so that
    Prometheus keeps its connection between scrapes: a scrape then costs no connection, nor a
    thread's start (measured 2026-11-30, the six scraped every 5 s: 0.57 % of a core with a
    connection per scrape). A connection silent for IO_TIMEOUT_SECONDS is closed."""

    web: WebServer
    server_version = "fire-daemon"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    _unread = b""  # what the client sent beyond the request being answered (the next one's start)

    def handle(self) -> None:
        """Answers requests until the connection is to close. Each request (GET and HEAD have no
        body: its head is all of it) must arrive whole within IO_TIMEOUT_SECONDS: a deadline per
        read would let a client sending a byte now and then hold its thread for ever."""
        self.close_connection = True
        while True:
            head = self._read_head()
            if head is None:
                return
            self.rfile = io.BytesIO(head)
            self.handle_one_request()
            if self.close_connection:
                return

    def _read_head(self) -> bytes | None:
        """The next request's head, up to its blank line; None if the client ended, sent too much,
        or not all of it in time."""
        deadline = time.monotonic() + IO_TIMEOUT_SECONDS
        pending = self._unread
        try:
            while (end := _head_end(pending)) < 0:
                remaining = deadline - time.monotonic()
                if len(pending) > MAX_HEAD_BYTES or remaining <= 0:
                    return None
                self.connection.settimeout(remaining)
                data = self.connection.recv(RECEIVE_BYTES)
                if not data:
                    return None
                pending += data
        except OSError:  # the timeout, or the connection reset
            return None
        finally:
            self.connection.settimeout(IO_TIMEOUT_SECONDS)  # for writing the answer
        self._unread = pending[end:]
        return pending[:end]

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        parts = urlsplit(self.path)
        request = Request(parts.path, parse_qs(parts.query), {key.lower(): value for key, value in self.headers.items()})
        try:
            if not self.web.host_allowed(request.headers.get("host")):
                # On loopback, a page of another site in a browser on this host could reach us under a
                # name of its own that it made resolve here (DNS rebinding): only local names are answered.
                response = Response(HTTPStatus.MISDIRECTED_REQUEST, body=b"not a name of this server\n")
            else:
                response = self.web.routes.get(parts.path, not_found)(request)
        except Exception as error:  # a bug of one page must not end the server's thread
            response = Response(HTTPStatus.INTERNAL_SERVER_ERROR, body=f"{describe_error(error)}\n".encode())
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.stream is None:
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if send_body:
                self.wfile.write(response.body)
            return
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")  # a stream's end is the connection's: it has no length
        self.close_connection = True
        self.end_headers()
        if not send_body:
            return
        pieces = iter(response.stream)
        try:
            for piece in pieces:
                self.wfile.write(piece)
                self.wfile.flush()
        except OSError:
            pass  # the client went, or stopped reading for IO_TIMEOUT_SECONDS
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()  # a generator's cleanup runs now, not whenever it is collected

    def log_message(self, format: str, *args: object) -> None:
        """Silent: a line per request on stderr would bury the daemon's own lines in supervisord's log."""


class WebServer:
    """Serves `routes` (path -> Route) at `address`, on threads of its own."""

    def __init__(self, name: str, address: Address, routes: Mapping[str, Route], tls: TlsConfig | None,
                 max_connections: int, on_held: Callable[[str], None] = lambda error: None,
                 on_bound: Callable[[], None] = lambda: None):
        self.name = name  # what it serves, for thread names
        self.address = address
        self.routes = dict(routes)
        self.refused = 0  # connections closed at once, beyond max_connections
        self._tls = _server_context(tls) if tls is not None else None
        self._slots = threading.BoundedSemaphore(max_connections)
        self._on_held = on_held
        self._on_bound = on_bound
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._socket: socket.socket | None = None
        self._handler = type(f"{name.title()}Handler", (_Handler,), {"web": self})  # _serve sets the deadline

    def host_allowed(self, host: str | None) -> bool:
        """Whether a request naming `host` (its Host header) is for this server: anything when it
        listens beyond loopback (TLS or the config's `insecure` decides who may come); on loopback,
        only loopback names and the configured one."""
        if host is None or not is_loopback(self.address.host):
            return True
        try:
            name = urlsplit(f"//{host}").hostname or ""
        except ValueError:  # not a host[:port]
            return False
        return name == self.address.host.lower() or is_loopback(name)

    @property
    def url(self) -> str:
        """Where it serves its first route (the one to open), as the configured address names it."""
        return f"{'http' if self._tls is None else 'https'}://{self.address}{next(iter(self.routes), '/')}"

    @property
    def port(self) -> int:
        """The port it listens on (the one bound, when the address asks for any: port 0)."""
        with self._lock:
            return self._socket.getsockname()[1] if self._socket is not None else self.address.port

    def start(self) -> bool:
        """Listens (`on_bound`), and says True; when another process holds the port, says why
        (`on_held`), retries in the background (`on_bound` once it listens) and returns False. Raises
        OSError for another reason not to bind (an address not of this host)."""
        try:
            return self._bind()
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise
            self._on_held(error.strerror or str(error))
            threading.Thread(target=self._retry, name=f"{self.name}-port", daemon=True).start()
            return False

    def _bind(self) -> bool:
        """Listens, says so (`on_bound`) and returns True; False if stopped meanwhile."""
        family = socket.AF_INET6 if ":" in self.address.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart finds it in TIME_WAIT
            sock.bind((self.address.host, self.address.port))
            sock.listen(64)
        except OSError:
            sock.close()
            raise
        with self._lock:
            if self._stop.is_set():
                sock.close()
                return False
            self._socket = sock
        threading.Thread(target=self._accept, args=(sock,), name=f"{self.name}-accept", daemon=True).start()
        self._on_bound()
        return True

    def _retry(self) -> None:
        while not self._stop.wait(PORT_RETRY_SECONDS):
            try:
                self._bind()
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    continue
                self._on_held(error.strerror or str(error))
            return

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            sock, self._socket = self._socket, None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept
            sock.close()

    def _accept(self, sock: socket.socket) -> None:
        while not self._stop.is_set():
            try:
                connection, peer = sock.accept()
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._stop.wait(ACCEPT_PAUSE_SECONDS)
                    continue
                if error.errno in (errno.ECONNABORTED, errno.EINTR):
                    continue
                return  # the socket was shut by stop()
            if not self._slots.acquire(blocking=False):
                self.refused += 1
                connection.close()
                continue
            try:
                threading.Thread(target=self._serve, args=(connection, peer), name=f"{self.name}-client",
                                 daemon=True).start()
            except RuntimeError:  # no thread to be had now: this connection only is refused
                self._slots.release()
                self.refused += 1
                connection.close()
                self._stop.wait(ACCEPT_PAUSE_SECONDS)

    def _serve(self, connection: socket.socket, peer: tuple[str, int]) -> None:
        try:
            connection.settimeout(IO_TIMEOUT_SECONDS)
            if self._tls is not None:
                connection = self._tls.wrap_socket(connection, server_side=True)
            self._handler(connection, peer, self)
        except (OSError, ValueError):
            pass  # a failed handshake, a client gone or too slow: only that connection ends
        finally:
            with contextlib.suppress(OSError):
                connection.close()
            self._slots.release()


def _server_context(tls: TlsConfig) -> ssl.SSLContext:
    """TLS that serves only clients with a certificate of the cluster's CA, as the daemons' gRPC does."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls.cert_file, tls.key_file)
    context.load_verify_locations(cadata=tls.ca_pem.decode("ascii"))
    context.verify_mode = ssl.CERT_REQUIRED
    return context
