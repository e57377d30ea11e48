"""An SOS host simulator: the documented Automation Interface on a TCP port, for trying the
assistant without a sphere and for testing the client against a real socket.

It speaks the documented behaviour (``enable`` first, ``R`` / ``E04`` replies, clips numbered
from 1, ``get_all_name_value_pairs`` in Tcl-list form) plus the forms only seen in client code
(``get_clip_number``, ``get_clip_info N`` as ``1,Name`` / ``1 Name`` / ``Name``,
``get_clip_info *``), selectable, so an installer can compare it with a real host (see
docs/sphere.md). Fault knobs for tests: drop the connection after some commands, answer slowly,
answer errors (or garbage) to chosen commands. Every command received is recorded in
:attr:`received`.

    python -m sphere.simulator --port 2468 --clip "Blue Marble" --clip "Hurricane Season - 2005"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sphere.protocol import PORT, is_control

log = logging.getLogger(__name__)

__all__ = ["Faults", "SosSimulator", "main"]

DEFAULT_CLIPS = (
    "Blue Marble",
    "Hurricane Season - 2005",
    "Japan Tsunami: Wave Propagation - March 11, 2011",
    "Aurora",
    "Sea Surface Temperature Anomalies - 1980 - 1999",
)


@dataclass
class Faults:
    """What goes wrong, changeable while running (tests flip these between polls)."""

    delay_s: float = 0.0  # before every reply
    drop_after: int = 0  # close the connection after this many commands on it (0 = never)
    error_commands: set[str] = field(default_factory=set)  # answer E04 to these
    garbled_commands: set[str] = field(default_factory=set)  # answer a line that fits nothing


def _tcl_word(value: str) -> str:
    if value and not any(c.isspace() or c in '{}"\\' for c in value):
        return value
    return "{" + value.replace("\\", "\\\\").replace("{", "\\{").replace("}", "\\}") + "}"


class SosSimulator:
    """One simulated SOS host. ``await start()``, ``await stop()``; state is public."""

    def __init__(
        self,
        clips: Sequence[str] = DEFAULT_CLIPS,
        *,
        host: str = "127.0.0.1",
        port: int = PORT,
        clip_info_form: str = "comma",
        line_ending: str = "\r\n",
        faults: Faults | None = None,
        advance_s: float = 0.0,
    ) -> None:
        if clip_info_form not in ("comma", "space", "name"):
            raise ValueError("clip_info_form must be comma, space or name")
        self.clips = list(clips)
        self.host, self.port = host, port
        self.clip_info_form = clip_info_form
        self.eol = line_ending
        self.faults = faults or Faults()
        self.advance_s = advance_s
        self.playlist_name = "/home/sos/playlists/sos-voice-sim.sos"
        self.current = 1 if self.clips else 0
        self.animating = bool(self.clips)
        self.received: list[str] = []
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._advance: asyncio.Task[None] | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.advance_s > 0:
            self._advance = asyncio.create_task(self._auto_advance())
        log.info("SOS simulator on %s:%d with %d clips", self.host, self.port, len(self.clips))

    async def stop(self) -> None:
        if self._advance is not None:
            self._advance.cancel()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            await self._server.wait_closed()

    def control_commands(self) -> list[str]:
        """The received commands that would have changed the sphere."""
        return [c for c in self.received if is_control(c.split(" ", 1)[0])]

    async def _auto_advance(self) -> None:
        """Move along the playlist like an unattended exhibit."""
        while True:
            await asyncio.sleep(self.advance_s)
            if self.clips and self.animating:
                self.current = self.current % len(self.clips) + 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        enabled = False
        handled = 0
        try:
            while raw := await reader.readline():
                line = raw.decode("ascii", errors="replace").strip()
                if not line:
                    continue
                self.received.append(line)
                handled += 1
                if self.faults.drop_after and handled > self.faults.drop_after:
                    break
                if not enabled:
                    if line != "enable":
                        break  # [doc] the first line must be enable: anything else is a scan
                    enabled = True
                    replies = ["R"]
                else:
                    replies = self._answer(line)
                if self.faults.delay_s:
                    await asyncio.sleep(self.faults.delay_s)
                writer.write("".join(r + self.eol for r in replies).encode("ascii", "replace"))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()  # cancelled when the simulator stops: that is fine

    def _answer(self, line: str) -> list[str]:
        command, _, rest = line.partition(" ")
        args = rest.split()
        if command in self.faults.error_commands:
            return ["E04"]
        if command in self.faults.garbled_commands:
            return ["%%garbled reply%%"]
        n = len(self.clips)
        try:
            if command == "get_clip_count":
                return [str(n)]
            if command == "get_clip_number":
                return [str(self.current)]
            if command == "get_animating":
                return ["1" if self.animating and self.current else "0"]
            if command == "get_playlist_name":
                return [self.playlist_name]
            if command == "get_all_name_value_pairs":
                k = int(args[0]) if args else self.current
                return [f"name {_tcl_word(self.clips[k - 1])} data {{media/clip{k}}}"]
            if command == "get_clip_info":
                if args and args[0] == "*":
                    return [f"{i} {name}" for i, name in enumerate(self.clips, 1)] + ["R"]
                k = int(args[0]) if args else self.current
                name = self.clips[k - 1]
                form = {"comma": f"{k},{name}", "space": f"{k} {name}", "name": name}
                return [form[self.clip_info_form]]
            if command == "play":
                k = int(args[0]) if args else self.current
                if not 1 <= k <= n:
                    return ["E04"]
                self.current, self.animating = k, True
                return ["R"]
            if command in ("next_clip", "prev_clip"):
                step = 1 if command == "next_clip" else -1
                self.current = (self.current - 1 + step) % n + 1 if n else 0
                return ["R"]
            if command in ("pause", "stop"):
                self.animating = False
                return ["R"]
            if command == "help":
                return ["enable get_clip_count get_clip_number play pause next_clip prev_clip"]
        except (IndexError, ValueError):
            return ["E04"]
        return ["E04"]


def _read_clips(path: Path) -> list[str]:
    """Clip names from a file: one per line, or the ``name = …`` lines of .sos playlists."""
    names = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if sep and key.strip() == "name":
            names.append(value.strip())
        elif not sep:
            names.append(line)
    return names


async def _run(sim: SosSimulator) -> None:
    await sim.start()
    print(f"SOS simulator listening on {sim.host}:{sim.port}: {len(sim.clips)} clips", flush=True)
    try:
        await asyncio.Future()
    finally:
        await sim.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="sos-voice sos-sim", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--clip", action="append", help="a clip name (repeat); default: 5 datasets")
    p.add_argument("--playlist", type=Path, help="file of clip names or .sos 'name =' lines")
    p.add_argument("--advance-s", type=float, default=0.0, help="next clip every N seconds")
    p.add_argument("--clip-info-form", choices=["comma", "space", "name"], default="comma")
    p.add_argument("--lf", action="store_true", help="end replies with \\n, not \\r\\n")
    p.add_argument("--delay-s", type=float, default=0.0, help="fault: answer this late")
    p.add_argument("--drop-after", type=int, default=0, help="fault: drop after N commands")
    p.add_argument("--error", action="append", default=[], help="fault: E04 to this command")
    args = p.parse_args(argv)
    clips = args.clip or (_read_clips(args.playlist) if args.playlist else list(DEFAULT_CLIPS))
    faults = Faults(args.delay_s, args.drop_after, set(args.error))
    sim = SosSimulator(
        clips,
        host=args.host,
        port=args.port,
        clip_info_form=args.clip_info_form,
        line_ending="\n" if args.lf else "\r\n",
        faults=faults,
        advance_s=args.advance_s,
    )
    logging.basicConfig(level=logging.INFO)
    try:
        asyncio.run(_run(sim))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        print(f"sos-sim: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
