"""A hostile or careless client on the service's port: DNS rebinding, broken HTTP, floods.

Each case is what an adversarial run against ``sos-voice --serve`` found (issue 16): requests
sent byte for byte on a real socket to the real server on 127.0.0.1, and two real WebSocket
clients where one floods. The server must answer each with a clear status or error, log no
traceback, and go on serving everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from server.app import Server
from tests.reliability.conftest import ask_over_ws, running_server, ws_client

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]

HANDSHAKE = (
    "GET /v1/realtime HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
)


class Reply:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1]) if lines[0].startswith("HTTP/") else 0
        self.headers = {
            k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])
        }

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"Reply({self.raw[:300]!r})"


def _exchange(port: int, data: bytes) -> Reply:
    """Send ``data``; read the reply until the server closes (or, for a 101, the head)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
            if raw.startswith(b"HTTP/1.1 101") and b"\r\n\r\n" in raw:
                break
    return Reply(raw)


async def exchange(server: Server, data: str | bytes) -> Reply:
    payload = data.encode("latin-1") if isinstance(data, str) else data
    return await asyncio.to_thread(_exchange, server.port, payload)


def request(method: str, path: str, host: str, body: bytes = b"", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("latin-1") + body


class Tracebacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


@pytest.fixture
def tracebacks() -> Iterator[Tracebacks]:
    """ERROR records from the server's code, from websockets (which logs the traceback of
    anything the server let escape during a handshake) and from asyncio (which logs what a
    protocol's data_received let escape)."""
    handler = Tracebacks()
    loggers = [logging.getLogger(name) for name in ("server", "websockets", "asyncio")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


async def test_dns_rebinding_names_are_refused(services: Any, tracebacks: Tracebacks) -> None:
    """A page on evil.example re-pointed at 127.0.0.1 sends its own name as Host and Origin:
    no WebSocket, and the exhibit cannot be moved or cleared."""
    async with running_server(services) as server:
        port = server.port
        evil = f"evil.example:{port}"
        server.exhibit.set("tsunami-locations-2000-bce-2014", source="test")
        reply = await exchange(
            server, HANDSHAKE.format(host=f"Host: {evil}\r\n", extra=f"Origin: http://{evil}\r\n")
        )
        assert reply.status == 403 and reply.json()["error"]["code"] == "host_not_allowed"
        body = json.dumps({"dataset": "hurricane-season-2012"}).encode()
        for method, payload in (("POST", body), ("DELETE", b""), ("GET", b"")):
            extra = f"Origin: http://{evil}\r\n"
            reply = await exchange(
                server, request(method, "/exhibit/showing", evil, payload, extra)
            )
            assert reply.status == 403, (method, reply)
        assert server.exhibit.describe()["slug"] == "tsunami-locations-2000-bce-2014"
        assert server.sessions == 0

        # The names that do mean this server still work, page origin and all.
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST.:{port}"):
            origin = f"Origin: http://{host.lower()}\r\n"
            reply = await exchange(server, HANDSHAKE.format(host=f"Host: {host}\r\n", extra=origin))
            assert reply.status == 101, (host, reply)
            reply = await exchange(server, request("GET", "/exhibit/showing", host, extra=origin))
            assert reply.status == 200 and reply.json()["showing"]["slug"].startswith("tsunami")
    assert not tracebacks.records

    async with running_server(services, allowed_hosts="sphere.local, .museum.example") as server:
        for host, status in (
            ("sphere.local", 101),
            ("kiosk3.museum.example", 101),
            ("museum.example.evil.example", 403),
        ):
            reply = await exchange(
                server, HANDSHAKE.format(host=f"Host: {host}:{server.port}\r\n", extra="")
            )
            assert reply.status == status, (host, reply)


async def test_repeated_headers_are_a_400_not_a_traceback(
    services: Any, tracebacks: Tracebacks
) -> None:
    async with running_server(services) as server:
        host = f"127.0.0.1:{server.port}"
        cases = [
            HANDSHAKE.format(host=f"Host: {host}\r\nHost: {host}\r\n", extra=""),
            HANDSHAKE.format(
                host=f"Host: {host}\r\n", extra="Origin: http://a\r\nOrigin: http://b\r\n"
            ),
            HANDSHAKE.format(
                host=f"Host: {host}\r\n",
                extra="Authorization: Bearer a\r\nAuthorization: Bearer b\r\n",
            ),
            request("GET", "/healthz", host, extra=f"Host: {host}\r\n"),
            request(
                "POST", "/exhibit/showing", host, b"{}", "Origin: http://a\r\nOrigin: http://b\r\n"
            ),
        ]
        for data in cases:
            reply = await exchange(server, data)
            assert reply.status == 400, (data, reply)
            assert reply.json()["error"]["code"] == "bad_request"
        # Not HTTP at all, and a head that never ends: clear refusals too.
        assert (await exchange(server, b"\x16\x03\x01 not http\r\n\r\n")).status == 400
        huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 70_000 + b"\r\n\r\n"
        assert (await exchange(server, huge)).status == 431
        assert server.sessions == 0
        done, _ = await ask_over_ws(server, "What causes a tsunami?")
        assert done["response"]["status"] == "completed"
    assert not tracebacks.records


async def test_hostile_bodies_get_clear_errors(services: Any, tracebacks: Tracebacks) -> None:
    async with running_server(services) as server:
        host = f"127.0.0.1:{server.port}"
        nested = b'{"dataset": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        reply = await exchange(server, request("POST", "/exhibit/showing", host, nested))
        assert reply.status == 400 and reply.json()["error"]["code"] == "invalid_json"

        # 1 MB with a real HTTP client: it sends the whole body, then reads the answer.
        url = server.http_url.rstrip("/") + "/exhibit/showing"

        def post_megabyte() -> tuple[int, Any]:
            body = b'{"dataset": "' + b"x" * 1_000_000 + b'"}'
            req = urllib.request.Request(url, data=body, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    return resp.status, json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                return exc.code, json.loads(exc.read())

        status, body = await asyncio.to_thread(post_megabyte)
        assert status == 413 and body["error"]["code"] == "body_too_large"
        # A claim of a huge body is refused at once, without waiting for it.
        claim = (
            f"POST /exhibit/showing HTTP/1.1\r\nHost: {host}\r\nContent-Length: 10000000000\r\n\r\n"
        )
        reply = await exchange(server, claim)
        assert reply.status == 413
        # Chunked bodies are read by the same rules.
        chunked = (
            f"POST /exhibit/showing HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
            '23\r\n{"dataset": "hurricane-season-2012"\r\n1\r\n}\r\n0\r\n\r\n'
        )
        reply = await exchange(server, chunked)
        assert reply.status == 200, reply
        assert reply.json()["showing"]["slug"] == "hurricane-season-2012"
        head = (
            f"POST /exhibit/showing HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
        reply = await exchange(server, head.encode() + chunk * 80)  # 5 MB, and no end in sight
        assert reply.status == 413
        # curl's "Expect: 100-continue" before a body over 1 KB is answered at once.
        status, interim = await asyncio.to_thread(_expect_continue, server.port)
        assert interim.startswith(b"HTTP/1.1 100 ") and status == 200
    assert not tracebacks.records


def _expect_continue(port: int) -> tuple[int, bytes]:
    body = json.dumps({"dataset": "hurricane-season-2012", "pad": "x" * 2000}).encode()
    head = (
        f"POST /exhibit/showing HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.encode())
        interim = sock.recv(65536)  # before the body is sent
        sock.sendall(body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    return Reply(raw).status, interim
    assert not tracebacks.records


async def test_only_get_and_head_on_read_only_routes(services: Any, tracebacks: Tracebacks) -> None:
    async with running_server(services, serve_web=True) as server:
        host = f"127.0.0.1:{server.port}"
        for path in ("/", "/healthz", "/metrics", "/metrics.json", "/index.html"):
            for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
                reply = await exchange(server, request(method, path, host, b"{}"))
                assert reply.status == 405, (method, path, reply)
                assert reply.headers["allow"] == "GET, HEAD"
                assert reply.json()["error"]["code"] == "method_not_allowed"
            get = await exchange(server, request("GET", path, host))
            head = await exchange(server, request("HEAD", path, host))
            assert get.status == head.status == 200 and get.body
            assert head.body == b"", (path, head)
            assert head.headers["content-length"] == str(len(get.body))
            assert head.headers["content-type"] == get.headers["content-type"]
        reply = await exchange(server, request("HEAD", "/exhibit/showing", host))
        assert reply.status == 200 and reply.body == b""
        reply = await exchange(server, request("PATCH", "/exhibit/showing", host, b"{}"))
        assert reply.status == 405 and "POST" in reply.headers["allow"]
        # A WebSocket handshake on a path that is not the WebSocket's.
        reply = await exchange(
            server,
            HANDSHAKE.replace("/v1/realtime", "/healthz").format(
                host=f"Host: {host}\r\n", extra=""
            ),
        )
        assert reply.status == 404
    assert not tracebacks.records


async def test_a_flooding_client_is_limited_and_the_other_is_answered(services: Any) -> None:
    """One client sends unknown events as fast as it can; it gets rate_limited errors and is
    then closed with 1008, while a client asking a question at the same time gets its whole
    answer with no error."""
    settings = {"rate_limit_messages_per_s": 50.0, "rate_limit_burst": 100}
    async with running_server(services, rate_limit_close_after=3000, **settings) as server:
        errors: list[str] = []
        async with ws_client(server) as flooder:
            await flooder.recv()  # session.created

            async def read() -> None:
                with contextlib.suppress(ConnectionClosed):
                    async for message in flooder:
                        if isinstance(message, str):
                            event = json.loads(message)
                            if event["type"] == "error":
                                errors.append(event["error"]["code"])

            async def flood() -> int:
                """Frames in batches of 1000 per write, as a client sending tens of thousands
                a second puts them on the wire (built by the client's own sans-I/O protocol)."""
                sent = 0
                junk = json.dumps({"type": "no.such.event", "event_id": "x"}).encode()
                while sent < 200_000 and flooder.protocol.state is State.OPEN:
                    for _ in range(1000):
                        flooder.protocol.send_text(junk)
                    flooder.transport.write(b"".join(flooder.protocol.data_to_send()))
                    sent += 1000
                    await asyncio.sleep(0.01)  # let the reader read
                return sent

            loop = asyncio.get_running_loop()
            started = loop.time()
            reader = asyncio.create_task(read())
            flooding = asyncio.create_task(flood())
            done, seen = await ask_over_ws(server, "What causes a tsunami?")
            sent = await asyncio.wait_for(flooding, 60)
            await asyncio.wait_for(reader, 30)
            elapsed = loop.time() - started
        assert done["response"]["status"] == "completed"
        assert not [e for e in seen if isinstance(e, dict) and e["type"] == "error"]
        assert "rate_limited" in errors
        # The burst and the refill were served as usual (unknown_event_type, counted by the
        # server as it handles them); the rest, and everything that came after the server
        # started closing, was dropped unread.
        served = server.metrics.errors["unknown_event_type"]
        assert errors.count("unknown_event_type") >= 100
        assert 100 <= served <= 100 + 50 * elapsed + 5, (served, elapsed, sent)
        assert flooder.close_code == 1008 and "rate limit" in (flooder.close_reason or "")
        assert server.metrics.errors["rate_limited"] >= 3000
