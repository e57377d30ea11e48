"""The wire format: commands are one safe ASCII line, replies of every documented shape parse."""

from __future__ import annotations

import pytest

from sphere.protocol import (
    ProtocolError,
    encode,
    is_control,
    parse_clip_info,
    parse_int,
    parse_name_values,
    parse_reply,
)


def test_commands_are_one_ascii_line() -> None:
    assert encode("enable") == b"enable\n"
    assert encode("play", 3) == b"play 3\n"
    for bad in (("play", "1\nshutdown"), ("get_clip_info", "x\r"), ("play", "é")):
        with pytest.raises(ProtocolError):
            encode(*bad)
    with pytest.raises(ProtocolError):
        encode("play 1; shutdown")


def test_replies_of_every_shape_with_either_line_ending() -> None:
    assert parse_reply(b"R\r\n").kind == "ok"
    assert parse_reply(b"R\n").kind == "ok"
    error = parse_reply(b"E04\r\n")
    assert (error.kind, error.code) == ("error", 4)
    value = parse_reply(b"12\n")
    assert value.kind == "value" and parse_int(value) == 12
    with pytest.raises(ProtocolError):
        parse_int(parse_reply(b"twelve\n"))
    with pytest.raises(ProtocolError):
        parse_reply(b"x" * 5000 + b"\n")


def test_name_value_pairs_in_tcl_list_form() -> None:
    pairs = parse_name_values(r'name {Hurricane Season - 2005} data media/x.mp4 label "a \"b\""')
    assert pairs == {"name": "Hurricane Season - 2005", "data": "media/x.mp4", "label": 'a "b"'}
    assert parse_name_values(r"name Blue\ Marble")["name"] == "Blue Marble"
    assert parse_name_values("name {a {nested} b}")["name"] == "a {nested} b"
    for bad in ("name {unbalanced", "name", 'name "open'):
        with pytest.raises(ProtocolError):
            parse_name_values(bad)


def test_clip_info_in_each_form_seen() -> None:
    assert parse_clip_info("1,Earth_Blue_Marble", 1) == "Earth_Blue_Marble"
    assert parse_clip_info("2 Hurricane Season - 2005", 2) == "Hurricane Season - 2005"
    assert parse_clip_info("Aurora", 4) == "Aurora"
    assert parse_clip_info("10 Years of Storms", 3) == "10 Years of Storms"  # not clip 10


def test_control_commands_are_known() -> None:
    assert all(is_control(c) for c in ("play", "next_clip", "prev_clip", "pause", "shutdown"))
    assert not any(is_control(c) for c in ("enable", "get_clip_number", "get_clip_count"))
