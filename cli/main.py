"""`sos-voice`: listen and answer on a microphone, a WAV file, typed text, or as a server.

Subcommands with their own arguments are dispatched first: ``sos-voice train …`` and
``sos-voice eval …`` (training/), ``sos-voice catalog …`` (catalog tools), ``sos-voice sos-sim …``
(an SOS host simulator, sphere/simulator.py). Everything a kiosk
operator can get wrong (no sound card, a bad config value, an unknown dataset) ends with one
clear line and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.datasets import Catalog, CatalogError
from cli.config import Config, load_config
from cli.console import ConsoleView
from cli.logs import ConsoleLogHandler, quiet_progress_bars, setup_logging
from settings import ConfigError
from voice.audio.devices import AudioDeviceError
from voice.audio.microphone import MicrophoneSource
from voice.audio.speaker import AudioSink, SpeakerSink
from voice.audio.wav import WavSink, WavSource
from voice.stt import SttError, resolve_model
from voice.tts import TtsError, resolve_voice

if TYPE_CHECKING:
    from curator.recorder import Recorder
    from sphere.service import Sphere
    from voice.audio.echo import EchoReference
    from voice.exhibit import Exhibit
    from voice.listening import KioskListener
    from voice.pipeline import Session
    from voice.services import Services

log = logging.getLogger("sos-voice")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sos-voice",
        description="Voice assistant for Science On a Sphere exhibits. "
        "Subcommands: `sos-voice train|eval …` (training), `sos-voice catalog …`, "
        "`sos-voice sos-sim …` (SOS host simulator).",
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
    p.add_argument("--sos-host", metavar="HOST", help="follow the SOS host ([sos] host)")
    p.add_argument("-v", "--verbose", action="store_true", help="per-turn timings and logs")
    p.add_argument("--log-file", metavar="FILE", help="log to a rotating file ([log] file)")
    p.add_argument("--log-json", action="store_true", help="log JSON lines ([log] format)")
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
    if audio:
        cfg = cfg.replace(audio=audio)
    logs: dict[str, object] = {}
    if args.log_file:
        logs["file"] = args.log_file
    if args.log_json:
        logs["format"] = "json"
    if logs:
        cfg = cfg.replace(log=logs)
    return cfg.replace(sos={"host": args.sos_host}) if args.sos_host else cfg


def _output_sink(
    args: argparse.Namespace, cfg: Config, *, live: bool, reference: EchoReference | None = None
) -> AudioSink | None:
    """Where answers are heard: --out WAV, else the speaker when playing is on (telling
    ``reference``, for the echo canceller, what it plays).

    For file and text modes a missing speaker is not an error (there is still text and --out);
    for the live microphone loop it is.
    """
    if args.out is not None:
        return WavSink(args.out)
    if not cfg.audio.play:
        return None
    try:
        return SpeakerSink(cfg.audio.output_device, reference=reference)
    except AudioDeviceError as exc:
        if live:
            raise
        log.warning("not playing the answer: %s (use --out FILE.wav)", exc)
        return None


def _check_args(args: argparse.Namespace, cfg: Config) -> None:
    """Everything wrong with the arguments and settings that needs no model, as a ConfigError
    in a second (the models take many seconds to load, and a kiosk operator should not wait
    for them to learn about a typo)."""
    if args.text is not None and not args.text.strip():
        raise ConfigError("--text needs a question (it was empty)")
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be 0..65535, not {args.port}")
    if args.wav is not None and not args.wav.is_file():
        raise ConfigError(f"--wav: no such file: {args.wav}")
    if args.out is not None:
        _check_writable(args.out)
    resolve_voice(cfg.tts)  # a missing voice file or folder: TtsError/SttError with the key
    model, _, _ = resolve_model(cfg.stt)
    if "/" not in model and not Path(model).exists():  # a model name, not a hub id or folder
        from faster_whisper import available_models

        if model not in available_models():
            raise SttError(
                f"stt.model: {model!r} is not a Whisper model name; use one of "
                f"{', '.join(available_models())}, a hub id, a local folder or 'auto'"
            )


def _check_writable(path: Path) -> None:
    """--out must name a file that can be written (it is written after the answer)."""
    if path.is_dir():
        raise ConfigError(f"--out {path} is a folder; give a file name such as answer.wav")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise ConfigError(f"--out {path}: no such folder: {folder}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--out {path}: not allowed to write there")


async def _open_recorder(
    args: argparse.Namespace, cfg: Config, cleanup: contextlib.AsyncExitStack
) -> Recorder | None:
    """The curator's recorder (database opened and purged, writer started; closed by
    ``cleanup``), or None: only real visitors are recorded (the server's sessions, the kiosk
    microphone), never a one-off --text or --wav run."""
    if not cfg.curator.enabled or args.text or args.wav:
        return None
    from curator.recorder import Recorder
    from curator.store import CuratorStore

    store = await asyncio.to_thread(CuratorStore.open, cfg.curator)
    cleanup.push_async_callback(asyncio.to_thread, store.close)
    return Recorder(store, "server" if args.serve else "kiosk")


async def _run(args: argparse.Namespace, cfg: Config, logs: ConsoleLogHandler | None = None) -> int:
    view = ConsoleView(verbose=args.verbose)
    if logs is not None:
        logs.attach(view)  # log records on stderr step around the answer line
    try:
        async with contextlib.AsyncExitStack() as cleanup:
            return await _run_with(args, cfg, cleanup, view)
    finally:
        if logs is not None:
            logs.attach(None)


async def _run_with(
    args: argparse.Namespace,
    cfg: Config,
    cleanup: contextlib.AsyncExitStack,
    view: ConsoleView,
) -> int:
    from voice.exhibit import Exhibit
    from voice.listening import KioskListener
    from voice.pipeline import Session
    from voice.services import Services

    live = args.text is None and args.wav is None and not args.serve
    _check_args(args, cfg)
    if args.serve:
        from server.app import check_listen

        host, port = _address(args, cfg)
        await check_listen(cfg.server, host, port)  # before the models: fails in a second
    if args.showing:
        # An unknown dataset fails in a second, before minutes of model loading.
        catalog = await asyncio.to_thread(Catalog.load, cfg.catalog.path or None)
        catalog.resolve(args.showing)
    if live:
        # Open the microphone before loading models: a kiosk without one fails in a second.
        mic = MicrophoneSource(cfg.audio.input_device, cfg.audio.frame_ms)
        await mic.__aenter__()
    # A bad curator.db_path fails here too, before the models load.
    recorder = await _open_recorder(args, cfg, cleanup)
    services = await Services.load(cfg)
    if cfg.llm.answerer == "auto":
        # The operator asked the program to choose: say what it chose and why, -v or not.
        view.note(f"answerer: {services.answerer.name} ({services.answerer_reason})")
    try:
        exhibit = Exhibit(services.catalog)  # the installation's sphere, shared by its sessions
        exhibit.subscribe(lambda c: view.set_showing(c.showing.title if c.showing else ""))
        if args.showing:
            exhibit.set(args.showing, source="cli")
        sphere = await _start_sphere(cfg, services, exhibit)
        if args.serve:
            try:
                return await _serve(args, cfg, services, exhibit, recorder, sphere)
            finally:
                if sphere is not None:
                    await sphere.aclose()
        speaker = live and args.out is None and cfg.audio.play
        reference = KioskListener.reference_for(cfg.audio.echo_cancellation, speaker=speaker)
        sink = _output_sink(args, cfg, live=live, reference=reference)
        session_services = sphere.session_services(services) if sphere else services
        session = Session(session_services, view, output=sink, exhibit=exhibit)
        if recorder is not None:
            recorder.attach(session)
        changes: dict[str, object] = {}
        if args.audience:
            changes["audience"] = args.audience
        if args.wav:
            changes["barge_in"] = False  # a recording is not interrupted by its own next question
        if changes:
            session.update(**changes)
        try:
            if args.text is not None:
                session.ask(args.text)
            elif args.wav is not None:
                source = WavSource(args.wav, cfg.audio.frame_ms, realtime=args.realtime)
                async for frame in source.frames():
                    session.feed_audio(frame)
                session.end_of_audio()
            else:
                listener = _kiosk_listener(cfg, session, sink, mic, reference)
                if await _listen_until_stopped(mic, listener):
                    print("\nbye", file=sys.stderr)
                    return 0
            await session.wait_idle()
        finally:
            await session.aclose()
            if sink is not None:
                await sink.aclose()
            if live:
                await mic.__aexit__(None, None, None)
            if sphere is not None:
                await sphere.aclose()
        answers = [d for d in view.done if d.reprompt is None]  # not "didn't catch that"
        if not answers:
            print("no question was heard", file=sys.stderr)
            return 1
        return 0 if all(d.status == "completed" for d in answers) else 1
    finally:
        await services.aclose()


async def _listen_until_stopped(mic: MicrophoneSource, listener: KioskListener) -> bool:
    """Feed the microphone to the kiosk until SIGINT or SIGTERM (True) or the input ends.

    Why signal handlers and not Python's KeyboardInterrupt alone: a kiosk run by systemd is
    stopped with SIGTERM, and a process started in the background inherits SIGINT ignored;
    either way the devices, the session and the curator's database must close cleanly.
    Device errors from the microphone are raised as before.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)

    async def listen() -> None:
        async for frame, captured_at in mic.timed_frames():
            listener.feed(frame, captured_at)

    listening = asyncio.create_task(listen())
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        stopping.cancel()
        if not listening.done():
            listening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listening
    if not stop.is_set():
        listening.result()  # the microphone's own error, if it had one
    return stop.is_set()


def _kiosk_listener(
    cfg: Config,
    session: Session,
    sink: AudioSink | None,
    mic: MicrophoneSource,
    reference: EchoReference | None,
) -> KioskListener:
    """The microphone's way into the session, cancelling the speaker's echo as configured."""
    from voice.listening import KioskListener

    speaker = isinstance(sink, SpeakerSink)
    latency_s = mic.latency_s + (sink.latency_s if isinstance(sink, SpeakerSink) else 0.0)
    return KioskListener.create(
        session,
        cfg.audio.echo_cancellation,
        reference,
        speaker=speaker,
        delay_ms=round(latency_s * 1000),
        noise_suppression=cfg.audio.noise_suppression,
    )


async def _start_sphere(cfg: Config, services: Services, exhibit: Exhibit) -> Sphere | None:
    """Follow the SOS host when ``[sos] host`` (or --sos-host) names one."""
    if not cfg.sos.host:
        return None
    from sphere.service import Sphere

    sphere = Sphere(cfg.sos, exhibit, services.retriever)
    await sphere.start()
    return sphere


async def _serve(
    args: argparse.Namespace,
    cfg: Config,
    services: Services,
    exhibit: Exhibit | None = None,
    recorder: Recorder | None = None,
    sphere: Sphere | None = None,
) -> int:
    from server.app import serve

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    host, port = _address(args, cfg)
    await serve(
        cfg,
        services,
        cfg.server,
        host=host,
        port=port,
        stop=stop,
        exhibit=exhibit,
        curator=recorder,
        sphere=sphere,
    )
    return 0


def _address(args: argparse.Namespace, cfg: Config) -> tuple[str, int]:
    host = args.host or cfg.server.host
    port = args.port if args.port is not None else cfg.server.port
    return host, port


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("train", "eval"):
        from training.cli import main as training_main

        return training_main(argv)
    if argv and argv[0] == "catalog":
        from catalog.cli import main as catalog_main

        return catalog_main(argv[1:])
    if argv and argv[0] == "sos-sim":
        from sphere.simulator import main as simulator_main

        return simulator_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING)  # until [log]
    try:
        if args.list_devices:
            from voice.audio.devices import list_devices

            print(list_devices())
            return 0
        cfg = _config_from_args(args)
        logs = setup_logging(cfg.log, verbose=args.verbose)
        quiet_progress_bars(args.verbose)
        return asyncio.run(_run(args, cfg, logs))
    except KeyboardInterrupt:
        print("\nbye", file=sys.stderr)
        return 0
    except (ConfigError, AudioDeviceError, CatalogError, SttError, TtsError, ValueError) as exc:
        print(f"sos-voice: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
