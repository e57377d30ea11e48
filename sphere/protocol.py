"""The SOS Automation Interface on the wire: encoding commands and parsing replies, no I/O.

Every detail that NOAA's documentation leaves open (which query gives the current clip, the
format of ``get_clip_info``, line endings) lives here, in one adapter, so an installer whose
SOS host answers differently changes one place (see docs/sphere.md). ``[doc]`` and ``[seen]``
mark what is documented and what was only seen in third-party clients, as in the summary.

The Tcl-list parser is our own: the only library that parses Tcl lists in the standard library
is ``tkinter`` (``Tcl().splitlist``), which needs Tk installed and would drag a GUI toolkit into
a headless kiosk service for one function.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CONTROL_COMMANDS",
    "PORT",
    "ProtocolError",
    "Reply",
    "encode",
    "is_control",
    "parse_clip_info",
    "parse_int",
    "parse_name_values",
    "parse_reply",
]

PORT = 2468  # [doc]
ENABLE = "enable"  # [doc] the first line on every connection
MAX_LINE = 4096  # a reply line longer than this is not the SOS protocol

# Commands that change what the sphere does. The client refuses them unless control is on.
CONTROL_COMMANDS = frozenset(
    {
        "play",
        "stop",
        "next_clip",
        "prev_clip",
        "pause",
        "step",
        "skip",
        "open_playlist",
        "shutdown",
        "fadein",
        "fadeout",
        "audio",
    }
)

# The unsettled parts, in one place.
CURRENT_CLIP_QUERY = "get_clip_number"  # [seen]: bare digits, 1-based; 0 = nothing loaded
CLIP_COUNT_QUERY = "get_clip_count"  # [doc]
CLIP_PAIRS_QUERY = "get_all_name_value_pairs"  # [doc] preferred source of a clip's name
CLIP_INFO_QUERY = "get_clip_info"  # [seen] fallback: "1,Name", "1 Name" or "Name"
ANIMATING_QUERY = "get_animating"  # [doc] 1 animating, 0 paused or nothing loaded

_WORD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_RE = re.compile(r"^E\d\d$")


class ProtocolError(ValueError):
    """A command that cannot be encoded, or a reply that is not the SOS protocol."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply line: ``kind`` is "ok" (``R``), "error" (``E04``; ``code`` = 4) or "value"."""

    kind: str
    text: str
    code: int = 0


def encode(command: str, *args: str | int) -> bytes:
    """One command line (``\\n``-terminated ASCII, as the clients we saw send it).

    Arguments may not contain line breaks: a newline inside an argument would be a second
    command the caller never meant to send (``play 1\\nshutdown``).
    """
    if not _WORD_RE.match(command):
        raise ProtocolError(f"not an SOS command name: {command!r}")
    parts = [command, *(str(a) for a in args)]
    line = " ".join(parts)
    if any(c in line for c in "\r\n\0") or not line.isascii():
        raise ProtocolError(f"SOS commands are one line of ASCII: {line!r}")
    return (line + "\n").encode("ascii")


def is_control(command: str) -> bool:
    """Does ``command`` change the sphere (as opposed to asking about it)?"""
    return command in CONTROL_COMMANDS


def parse_reply(raw: bytes) -> Reply:
    """One reply line; ``\\r\\n`` and ``\\n`` endings are both accepted (not documented)."""
    if len(raw) > MAX_LINE:
        raise ProtocolError(f"reply line over {MAX_LINE} bytes")
    text = raw.decode("ascii", errors="replace").rstrip("\r\n")
    if text == "R":
        return Reply("ok", text)
    if _ERROR_RE.match(text):
        return Reply("error", text, int(text[1:]))
    return Reply("value", text)


def parse_int(reply: Reply) -> int:
    """A numeric query's value (``get_clip_count``, ``get_clip_number``)."""
    try:
        return int(reply.text.strip())
    except ValueError as exc:
        raise ProtocolError(f"expected a number, got {reply.text!r}") from exc


def tcl_words(text: str) -> list[str]:
    """Split a Tcl list: words separated by white space, ``{...}`` groups (nested, taken
    verbatim), ``"..."`` strings and backslash escapes ([doc] for name/value pairs)."""
    words: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        if text[i] == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                if text[j] == "\\":
                    j += 2
                    continue
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                j += 1
            if depth:
                raise ProtocolError(f"unbalanced braces in {text!r}")
            words.append(text[i + 1 : j - 1])
            i = j
            continue
        quoted = text[i] == '"'
        j = i + 1 if quoted else i
        word: list[str] = []
        while j < n and (text[j] != '"' if quoted else not text[j].isspace()):
            if text[j] == "\\" and j + 1 < n:
                word.append({"n": "\n", "t": "\t"}.get(text[j + 1], text[j + 1]))
                j += 2
                continue
            word.append(text[j])
            j += 1
        if quoted:
            if j >= n:
                raise ProtocolError(f"unterminated quote in {text!r}")
            j += 1
        words.append("".join(word))
        i = j
    return words


def parse_name_values(text: str) -> dict[str, str]:
    """``get_all_name_value_pairs`` -> ``{"name": "Blue Marble", ...}`` (later keys win)."""
    words = tcl_words(text)
    if len(words) % 2:
        raise ProtocolError(f"odd number of words in name/value pairs: {text!r}")
    return {words[k].lower(): words[k + 1] for k in range(0, len(words), 2)}


def parse_clip_info(text: str, number: int) -> str:
    """``get_clip_info N`` -> the clip's name, in any of the forms seen: ``1,Name``,
    ``1 Name`` or the bare name."""
    text = text.strip()
    for sep in (",", " "):
        head, found, rest = text.partition(sep)
        if found and head.strip() == str(number) and rest.strip():
            return rest.strip()
    return text
