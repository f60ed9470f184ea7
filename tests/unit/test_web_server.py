"""The daemons' small HTTP server (daemons/web/server.py), over real loopback sockets: routes and
their errors, the connection limit, deadlines on slow clients, streams whose client goes, a port
another process holds, stop(), and TLS that serves only clients of the cluster's CA."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemons.config import Address, TlsConfig
from daemons.security.certs import CLUSTER_KEY_FILE, write_cluster
from daemons.web import server as web_module
from daemons.web.server import Request, Response, Route, WebServer
from tests.waiting import wait_for

IO_TIMEOUT = 0.3  # the server's deadline per read and write in these tests (10 s in a daemon)
ANY_PORT = Address("127.0.0.1", 0)


def hello(_request: Request) -> Response:
    return Response(body=b"hello\n", headers={"X-Test": "yes"})


def echo(request: Request) -> Response:
    return Response(body=f"{request.path} {sorted(request.query.items())} {request.headers.get('x-who')}".encode())


def boom(_request: Request) -> Response:
    raise RuntimeError("the page broke")


ROUTES: dict[str, Route] = {"/": hello, "/echo": echo, "/boom": boom}


@pytest.fixture
def make(monkeypatch) -> Iterator[Callable[..., WebServer]]:
    """Makes WebServers with short deadlines (set before construction: the handler class keeps its
    own), each stopped when the test ends."""
    monkeypatch.setattr(web_module, "IO_TIMEOUT_SECONDS", IO_TIMEOUT)
    monkeypatch.setattr(web_module, "PORT_RETRY_SECONDS", 0.05)
    made: list[WebServer] = []

    def construct(routes: dict[str, Route] = ROUTES, max_connections: int = 4, tls: TlsConfig | None = None,
                  address: Address = ANY_PORT, name: str = "web", **callbacks) -> WebServer:
        server = WebServer(name, address, routes, tls, max_connections, **callbacks)
        made.append(server)
        return server

    yield construct
    for server in made:
        server.stop()


@pytest.fixture
def serve(make) -> Callable[..., WebServer]:
    def started(*args, **kwargs) -> WebServer:
        server = make(*args, **kwargs)
        assert server.start()
        return server

    return started


def request(port: int, path: str = "/", method: str = "GET", headers: dict[str, str] | None = None,
            context: ssl.SSLContext | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    else:
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def once_a_slot_is_free(port: int, path: str = "/", context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    """(status, body) of a request, tried again while the server refuses it for want of a slot: a slot
    comes back only after the server has closed the connection that held it, a moment after its
    client saw the close."""

    def attempt() -> tuple[int, bytes] | None:
        try:
            status, _headers, body = request(port, path, context=context)
        except (ConnectionError, ssl.SSLEOFError):  # closed at once: every slot is taken
            return None
        return status, body

    return wait_for(attempt, 3, f"a free slot to serve {path}")


def silent_client(port: int) -> socket.socket:
    """A connection that sends nothing, reading with a deadline well beyond the server's."""
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def read_until(client: socket.socket, marker: bytes) -> bytes:
    """What the client receives up to and including `marker`; an error if the server closes first."""
    received = b""
    while marker not in received:
        piece = client.recv(4096)
        assert piece, f"closed before {marker!r}, after {received!r}"
        received += piece
    return received


def threads_named(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


# -- routes -----------------------------------------------------------------------------------------


def test_a_get_is_answered_by_the_route_for_its_path(serve):
    server = serve()
    status, headers, body = request(server.port)
    assert (status, body) == (200, b"hello\n")
    assert headers["Content-Length"] == "6" and headers["X-Test"] == "yes"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert server.url == "http://127.0.0.1:0/"  # as configured: the first route, at the address named


def test_a_head_gets_the_headers_of_the_get_without_its_body(serve):
    server = serve()
    status, headers, body = request(server.port, method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "6"


def test_the_route_gets_the_path_without_its_query_and_the_query_parsed(serve):
    server = serve()
    _status, _headers, body = request(server.port, "/echo?since=5&name=a&name=b", headers={"X-Who": "tester"})
    assert body == b"/echo [('name', ['a', 'b']), ('since', ['5'])] tester"


def test_an_unknown_path_is_404_naming_it(serve):
    server = serve()
    status, _headers, body = request(server.port, "/nowhere?x=1")
    assert (status, body) == (404, b"nothing at /nowhere\n")


def test_a_route_that_raises_answers_500_with_the_error_and_the_server_serves_on(serve):
    server = serve(max_connections=1)  # the failed request's slot must come back
    for _ in range(3):
        assert once_a_slot_is_free(server.port, "/boom") == (500, b"RuntimeError: the page broke\n")
    assert once_a_slot_is_free(server.port) == (200, b"hello\n")


def test_a_stream_is_sent_as_it_comes_and_ends_with_its_iterator(serve):
    def pieces(_request: Request) -> Response:
        return Response(content_type="text/event-stream", stream=(f"data: {n}\n\n".encode() for n in range(3)))

    server = serve({"/events": pieces})
    status, headers, body = request(server.port, "/events")
    assert (status, body) == (200, b"data: 0\n\ndata: 1\n\ndata: 2\n\n")
    assert headers["Content-Type"] == "text/event-stream" and headers["Cache-Control"] == "no-store"
    assert "Content-Length" not in headers and headers["Connection"] == "close"  # it ends with the connection


def test_a_connection_is_kept_for_request_after_request(serve):
    server = serve(max_connections=1)
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        answers = []
        for method, path in (("GET", "/"), ("HEAD", "/"), ("GET", "/nowhere"), ("GET", "/boom"), ("GET", "/")):
            connection.request(method, path)
            response = connection.getresponse()
            answers.append((response.status, response.read()))
            if method == "GET" and path == "/":
                kept = connection.sock
            assert connection.sock is not None and connection.sock is kept, (method, path)  # not reopened
    finally:
        connection.close()
    assert answers == [(200, b"hello\n"), (200, b""), (404, b"nothing at /nowhere\n"),
                       (500, b"RuntimeError: the page broke\n"), (200, b"hello\n")]
    assert server.refused == 0


def test_a_kept_connection_that_falls_silent_is_closed_after_the_deadline(serve):
    server = serve(max_connections=1)
    client = silent_client(server.port)
    client.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert read_until(client, b"hello\n").endswith(b"\r\n\r\nhello\n")
    began = time.monotonic()
    assert client.recv(1024) == b""  # no second request came: closed
    assert IO_TIMEOUT * 0.8 <= time.monotonic() - began < IO_TIMEOUT + 3
    client.close()
    assert once_a_slot_is_free(server.port) == (200, b"hello\n")


# -- streams whose client goes ----------------------------------------------------------------------


KEPT: list[Iterator[bytes]] = []  # the streams stay referenced: only the server's close() can end them early


def endless(piece: bytes, ended: threading.Event, started: threading.Event) -> Route:
    """A route streaming `piece` for ever, a little apart, that says when its generator was closed."""

    def stream() -> Iterator[bytes]:
        started.set()
        try:
            while True:
                yield piece
                ended.wait(0.005)
        finally:
            ended.set()

    def route(_request: Request) -> Response:
        KEPT.append(stream())
        return Response(content_type="text/event-stream", stream=KEPT[-1])

    return route


def test_a_stream_whose_client_disconnects_has_its_generator_closed(serve):
    ended, started = threading.Event(), threading.Event()
    server = serve({"/events": endless(b"data: tick\n\n", ended, started)})
    client = silent_client(server.port)
    client.sendall(b"GET /events HTTP/1.0\r\n\r\n")
    received = read_until(client, b"data: tick")
    assert received.split(b"\r\n")[0].split(b" ")[1] == b"200"
    assert not ended.is_set()
    client.close()
    wait_for(ended.is_set, 3, "the stream's finally to run once its client went")


def test_a_stream_whose_client_stops_reading_is_dropped_after_the_deadline(serve):
    ended, started = threading.Event(), threading.Event()
    server = serve({"/": hello, "/events": endless(b"x" * 65536, ended, started)}, max_connections=1)
    client = silent_client(server.port)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sendall(b"GET /events HTTP/1.0\r\n\r\n")
    wait_for(started.is_set, 3, "the stream to start")
    # The client reads nothing more: the server's writes fill the buffers, then block until the deadline.
    wait_for(ended.is_set, 5, "the stream to be given up on a client that does not read")
    client.close()
    assert once_a_slot_is_free(server.port) == (200, b"hello\n")  # the dropped stream's slot


# -- the connection limit and deadlines -------------------------------------------------------------


def test_a_client_beyond_the_limit_is_closed_at_once_and_served_once_a_slot_frees(serve, monkeypatch):
    monkeypatch.setattr(web_module, "IO_TIMEOUT_SECONDS", 0.6)  # long enough to tell "at once" from it
    server = serve(max_connections=2)
    silent = [silent_client(server.port) for _ in range(2)]
    extra = silent_client(server.port)
    began = time.monotonic()
    assert extra.recv(1024) == b""  # closed by the server without a word
    assert time.monotonic() - began < 0.4
    assert server.refused == 1
    extra.close()
    for client in silent:  # each is dropped at its deadline, which frees its slot
        assert client.recv(1024) == b""
        client.close()
    assert once_a_slot_is_free(server.port) == (200, b"hello\n")


def test_a_client_that_never_finishes_its_request_is_dropped_after_the_deadline(serve):
    server = serve(max_connections=1)
    slow = silent_client(server.port)
    slow.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the headers never end
    began = time.monotonic()
    assert slow.recv(1024) == b""  # no answer: the connection is closed
    waited = time.monotonic() - began
    assert IO_TIMEOUT * 0.8 <= waited < IO_TIMEOUT + 3
    slow.close()
    assert server.refused == 0
    assert once_a_slot_is_free(server.port) == (200, b"hello\n")  # its one slot is free again


def test_a_client_trickling_its_request_a_byte_at_a_time_is_dropped_at_the_deadline(serve):
    """Each byte comes well within the deadline of a read; the whole request does not."""
    server = serve(max_connections=1)
    slow = silent_client(server.port)
    began = time.monotonic()
    closed = False
    for byte in b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Never: " + b"a" * 200:
        try:
            slow.sendall(bytes([byte]))
        except OSError:  # reset: the server has closed it
            closed = True
            break
        slow.settimeout(IO_TIMEOUT / 6)
        try:
            if slow.recv(1024) == b"":
                closed = True
                break
        except TimeoutError:
            continue
    waited = time.monotonic() - began
    slow.close()
    assert closed and waited < IO_TIMEOUT * 3
    assert once_a_slot_is_free(server.port) == (200, b"hello\n")


# -- the port -------------------------------------------------------------------------------------


def test_stop_ends_the_accept_thread_and_frees_the_port(serve, make):
    server = serve(name="stopping")
    port = server.port
    assert request(port)[0] == 200
    assert threads_named("stopping-accept")
    server.stop()
    wait_for(lambda: not threads_named("stopping-accept"), 3, "the accept thread to end")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)
    again = make(address=Address("127.0.0.1", port))
    assert again.start()
    assert request(port)[0] == 200


def test_a_port_held_by_another_process_is_retried_until_it_is_free(make):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    held: list[str] = []
    bound = []
    server = make(address=Address("127.0.0.1", port), name="held", on_held=held.append,
                  on_bound=lambda: bound.append(True))
    try:
        assert server.start() is False
        assert len(held) == 1 and "in use" in held[0].lower()
        assert server.port == port
        assert not bound
    finally:
        holder.close()
    wait_for(lambda: bound, 3, "on_bound once the port is free")
    assert request(port)[0] == 200
    assert bound == [True] and len(held) == 1
    wait_for(lambda: not threads_named("held-port"), 3, "the retry thread to end once bound")


def test_a_server_stopped_while_its_port_is_held_never_binds_it(make):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    bound = []
    server = make(address=Address("127.0.0.1", port), name="given-up", on_bound=lambda: bound.append(True))
    assert server.start() is False
    server.stop()
    wait_for(lambda: not threads_named("given-up-port"), 3, "the retry thread to end with stop()")
    holder.close()
    assert not bound
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_an_address_not_of_this_host_is_an_error_not_a_retry(make):
    held: list[str] = []
    server = make(address=Address("192.0.2.1", 0), on_held=held.append)  # TEST-NET-1: no host here has it
    with pytest.raises(OSError, match="assign"):  # EADDRNOTAVAIL: "Cannot assign requested address"
        server.start()
    assert not held


# -- TLS --------------------------------------------------------------------------------------------


def cluster_tls(folder: Path) -> TlsConfig:
    write_cluster(folder, {"gateway_a": ["127.0.0.1"]})
    cert_file, key_file = folder / "gateway_a" / "cert.pem", folder / "gateway_a" / "key.pem"
    return TlsConfig((folder / "ca.pem").read_bytes(), cert_file.read_bytes(), key_file.read_bytes(), cert_file,
                     key_file, (folder / CLUSTER_KEY_FILE).read_bytes())


def client_context(ca: Path, certificate_folder: Path | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if certificate_folder is not None:
        context.load_cert_chain(certificate_folder / "cert.pem", certificate_folder / "key.pem")
    return context


def test_with_tls_a_client_of_the_cluster_ca_is_served_and_others_are_not(serve, tmp_path):
    server = serve(tls=cluster_tls(tmp_path / "cluster"))
    assert server.url.startswith("https://")
    ca = tmp_path / "cluster" / "ca.pem"
    assert request(server.port, context=client_context(ca, tmp_path / "cluster" / "client"))[:3:2] == (200, b"hello\n")

    with pytest.raises((ssl.SSLError, ConnectionError)):  # no certificate
        request(server.port, context=client_context(ca, None))
    write_cluster(tmp_path / "elsewhere", {})
    with pytest.raises((ssl.SSLError, ConnectionError)):  # a certificate of another CA
        request(server.port, context=client_context(ca, tmp_path / "elsewhere" / "client"))
    with pytest.raises((ConnectionError, http.client.HTTPException)):  # plain HTTP
        request(server.port)
    # The refused ones gave their slots back.
    assert once_a_slot_is_free(server.port, context=client_context(ca, tmp_path / "cluster" / "client"))[0] == 200


def test_with_tls_a_client_that_never_starts_its_handshake_is_dropped_after_the_deadline(serve, tmp_path):
    server = serve(tls=cluster_tls(tmp_path), max_connections=1)
    silent = silent_client(server.port)
    began = time.monotonic()
    assert silent.recv(1024) == b""
    assert IO_TIMEOUT * 0.8 <= time.monotonic() - began < IO_TIMEOUT + 3
    silent.close()
    assert once_a_slot_is_free(server.port, context=client_context(tmp_path / "ca.pem", tmp_path / "client")) == (
        200, b"hello\n")


def test_on_loopback_only_local_names_are_answered(serve):
    """A page of another site in a browser on this host could name us under a name of its own that
    it made resolve here (DNS rebinding): such requests are refused."""
    server = serve()
    for host, status in (("localhost", 200), (f"127.0.0.1:{server.port}", 200), (f"[::1]:{server.port}", 200),
                         (f"localhost:{server.port}", 200), ("attacker.example", 421),
                         (f"attacker.example:{server.port}", 421), ("10.0.0.1", 421)):
        assert request(server.port, headers={"Host": host})[0] == status, host
    client = silent_client(server.port)
    client.sendall(b"GET / HTTP/1.0\r\n\r\n")  # no Host at all: an old client, not a browser
    assert read_until(client, b"hello\n").startswith(b"HTTP/1.1 200")
    client.close()
