"""`sos-voice`: listen and answer on a microphone, a WAV file, typed text, or as a server.

Subcommands with their own arguments are dispatched first: ``sos-voice train …`` and
``sos-voice eval …`` (training/), ``sos-voice catalog …`` (catalog tools). Everything a kiosk
operator can get wrong (no sound card, a bad config value, an unknown dataset) ends with one
clear line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.datasets import Catalog, CatalogError
from cli.config import Config, load_config
from cli.console import ConsoleView
from settings import ConfigError
from voice.audio import (
    AudioDeviceError,
    AudioSink,
    MicrophoneSource,
    SpeakerSink,
    WavSink,
    WavSource,
)

if TYPE_CHECKING:
    from voice.exhibit import Exhibit
    from voice.services import Services

log = logging.getLogger("sos-voice")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sos-voice",
        description="Voice assistant for Science On a Sphere exhibits. "
        "Subcommands: `sos-voice train|eval …` (training), `sos-voice catalog …`.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--text", metavar="QUESTION", help="answer a typed question (no STT)")
    src.add_argument("--wav", metavar="FILE", type=Path, help="answer the questions in a WAV file")
    src.add_argument("--serve", action="store_true", help="run the WebSocket service")
    src.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--device", metavar="N|NAME", help="microphone (index or name)")
    p.add_argument("--output-device", metavar="N|NAME", help="speaker (index or name)")
    p.add_argument("--out", metavar="FILE", type=Path, help="write the spoken answer to a WAV")
    p.add_argument("--no-play", action="store_true", help="do not play the answer")
    p.add_argument("--realtime", action="store_true", help="feed --wav at real-time pace")
    p.add_argument("--config", metavar="FILE", type=Path, help="TOML file over the defaults")
    p.add_argument("--showing", metavar="DATASET", help="dataset on the sphere (URL/slug/title)")
    p.add_argument("--audience", choices=["kids", "general", "educator"], help="answer style")
    p.add_argument("--host", default=None, help="--serve: address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="--serve: port (default 8765)")
    p.add_argument("-v", "--verbose", action="store_true", help="per-turn timings and logs")
    p.add_argument("--version", action="version", version=f"sos-voice {_version()}")
    return p


def _version() -> str:
    """The installed distribution's version: what an operator quotes in a bug report."""
    try:
        return importlib.metadata.version("sos-voice")
    except importlib.metadata.PackageNotFoundError:
        return "(not installed: run from a source tree)"


def _config_from_args(args: argparse.Namespace) -> Config:
    cfg = load_config(args.config)
    audio: dict[str, object] = {}
    if args.device is not None:
        audio["input_device"] = str(args.device)
    if args.output_device is not None:
        audio["output_device"] = str(args.output_device)
    if args.no_play:
        audio["play"] = False
    return cfg.replace(audio=audio) if audio else cfg


def _output_sink(args: argparse.Namespace, cfg: Config, *, live: bool) -> AudioSink | None:
    """Where answers are heard: --out WAV, else the speaker when playing is on.

    For file and text modes a missing speaker is not an error (there is still text and --out);
    for the live microphone loop it is.
    """
    if args.out is not None:
        return WavSink(args.out)
    if not cfg.audio.play:
        return None
    try:
        return SpeakerSink(cfg.audio.output_device)
    except AudioDeviceError as exc:
        if live:
            raise
        log.warning("not playing the answer: %s (use --out FILE.wav)", exc)
        return None


async def _run(args: argparse.Namespace, cfg: Config) -> int:
    from voice.exhibit import Exhibit
    from voice.pipeline import Session
    from voice.services import Services

    view = ConsoleView(verbose=args.verbose)
    live = not (args.text or args.wav or args.serve)
    if args.showing:
        # An unknown dataset fails in a second, before minutes of model loading.
        catalog = await asyncio.to_thread(Catalog.load, cfg.catalog.path or None)
        catalog.resolve(args.showing)
    if live:
        # Open the microphone before loading models: a kiosk without one fails in a second.
        mic = MicrophoneSource(cfg.audio.input_device, cfg.audio.frame_ms)
        await mic.__aenter__()
    services = await Services.load(cfg)
    try:
        exhibit = Exhibit(services.catalog)  # the installation's sphere, shared by its sessions
        exhibit.subscribe(lambda c: view.set_showing(c.showing.title if c.showing else ""))
        if args.showing:
            exhibit.set(args.showing, source="cli")
        if args.serve:
            return await _serve(args, cfg, services, exhibit)
        sink = _output_sink(args, cfg, live=live)
        session = Session(services, view, output=sink, exhibit=exhibit)
        changes: dict[str, object] = {}
        if args.audience:
            changes["audience"] = args.audience
        if args.wav:
            changes["barge_in"] = False  # a recording is not interrupted by its own next question
        if changes:
            session.update(**changes)
        try:
            if args.text:
                session.ask(args.text)
            elif args.wav:
                source = WavSource(args.wav, cfg.audio.frame_ms, realtime=args.realtime)
                async for frame in source.frames():
                    session.feed_audio(frame)
                session.end_of_audio()
            else:
                async for frame in mic.frames():
                    session.feed_audio(frame)
            await session.wait_idle()
        finally:
            await session.aclose()
            if sink is not None:
                await sink.aclose()
            if live:
                await mic.__aexit__(None, None, None)
        if not view.done:
            print("no question was heard", file=sys.stderr)
            return 1
        return 0 if all(d.status == "completed" for d in view.done) else 1
    finally:
        await services.aclose()


async def _serve(
    args: argparse.Namespace, cfg: Config, services: Services, exhibit: Exhibit | None = None
) -> int:
    from server.app import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    await serve(cfg, services, cfg.server, host=host, port=port, stop=stop, exhibit=exhibit)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "eval"):
        from training.cli import main as training_main

        return training_main(argv)
    if argv and argv[0] == "catalog":
        from catalog.cli import main as catalog_main

        return catalog_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        if args.list_devices:
            from voice.audio import list_devices

            print(list_devices())
            return 0
        cfg = _config_from_args(args)
        return asyncio.run(_run(args, cfg))
    except KeyboardInterrupt:
        print("\nbye", file=sys.stderr)
        return 0
    except (ConfigError, AudioDeviceError, CatalogError, ValueError) as exc:
        print(f"sos-voice: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
