"""Which Host headers name this server (the DNS-rebinding defence), case by case. The same
check on a real server and socket is in tests/reliability/test_hostile_clients.py."""

from __future__ import annotations

import pytest
from websockets.datastructures import Headers

from server.security import host_name, host_ok, origin_ok


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("Example.ORG:8765", "example.org"),
        ("example.org.", "example.org"),
        ("[::1]:8765", "::1"),
        ("[::1]", "::1"),
        ("127.0.0.1", "127.0.0.1"),
        ("host:port", None),
        ("[::1", None),
        ("[::1]x", None),
        (":8765", None),
        ("", None),
    ],
)
def test_host_name(value: str, name: str | None) -> None:
    assert host_name(value) == name


def _ok(host: str | list[str], bind: str = "127.0.0.1", allowed: tuple[str, ...] = ()) -> bool:
    values = host if isinstance(host, list) else [host]
    return host_ok(Headers([("Host", v) for v in values]), bind, allowed)


def test_loopback_and_the_bound_address_are_this_server() -> None:
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "127.0.0.2", "LocalHost"):
        assert _ok(host)
    assert _ok("192.168.1.5:8765", bind="192.168.1.5")
    assert _ok("sphere-pc.local:8765", bind="sphere-pc.local")
    assert not _ok("192.168.1.6:8765", bind="192.168.1.5")
    assert host_ok(Headers(), "127.0.0.1", ())  # HTTP/1.0 without Host: not a browser


def test_names_an_attacker_owns_are_refused() -> None:
    for host in ("evil.example:8765", "localhost.evil.example", "127.0.0.1.nip.io", "x:y"):
        assert not _ok(host)
        assert not _ok(host, bind="0.0.0.0")
    assert not _ok(["127.0.0.1", "evil.example"])  # a repeated Host is never trusted


def test_all_interfaces_accept_any_address_but_no_unknown_name() -> None:
    for bind in ("0.0.0.0", "::", ""):
        assert _ok("10.0.0.7:8765", bind=bind) and _ok("[fe80::1]:8765", bind=bind)
        assert not _ok("kiosk.example:8765", bind=bind)


def test_configured_names() -> None:
    allowed = ("sphere.local", ".museum.example")
    assert _ok("sphere.local:8765", allowed=allowed)
    assert _ok("museum.example", allowed=allowed) and _ok("a.b.museum.example", allowed=allowed)
    assert not _ok("evilmuseum.example", allowed=allowed)
    assert not _ok("museum.example.evil.example", allowed=allowed)
    assert _ok("anything.example", allowed=("*",))


def test_origin_must_be_the_page_itself_or_listed() -> None:
    def origin(value: list[str], host: str = "127.0.0.1:8765", allowed: tuple[str, ...] = ()):
        return origin_ok(Headers([("Host", host), *[("Origin", v) for v in value]]), allowed)

    assert origin([])
    assert origin(["http://127.0.0.1:8765"]) and origin(["https://127.0.0.1:8765/"])
    assert not origin(["http://127.0.0.1:9999"])  # another local web app
    assert not origin(["null"])
    assert origin(["https://kiosk.example"], allowed=("https://kiosk.example",))
    assert not origin(["http://127.0.0.1:8765", "http://127.0.0.1:8765"])  # repeated
