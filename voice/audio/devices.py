"""Finding and opening sound cards, and saying clearly what is wrong when it fails.

Why sounddevice is imported lazily: without the PortAudio shared library, ``import
sounddevice`` raises OSError. A kiosk without a sound card must still answer ``--text`` and
``--wav`` questions, and ``--list-devices`` must explain what is missing instead of crashing,
so the import happens only when a device is actually needed and its failure becomes an
:class:`AudioDeviceError` that tells the user what to run.

Streams run at the device's native rate (many cards and USB microphones cannot do 16 kHz;
letting PortAudio or ALSA convert is lower quality and sometimes fails); the microphone and
the speaker resample themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any, Literal

log = logging.getLogger(__name__)

LIST_DEVICES_HINT = "run `sos-voice --list-devices`"

Kind = Literal["input", "output"]

STALL_TIMEOUT_S = 3.0
"""A running stream that moves no audio for this long is broken (device unplugged, sound
server hung): better a clear AudioDeviceError than a kiosk that silently stops listening or a
drain() that never returns."""

STARTUP_TIMEOUT_S = 10.0
"""Before a new stream's first audio, allow longer: through ALSA's pulse plugin on a busy
machine the first callback was seen to take 2 s."""

STREAM_LATENCY = "high"
"""PortAudio's latency class for our streams. Why not "low" (~9 ms buffers): the callbacks are
Python, competing for the GIL and, on a busy kiosk, for the CPU; through ALSA's pulse plugin
(the "default" device on most Linux desktops) such short buffers underrun and the stream
falls behind real time. "high" (~35 ms) is invisible next to the VAD's 500 ms end-of-turn
silence, and a barge-in stop() still silences the speaker within one such buffer."""


class AudioDeviceError(RuntimeError):
    """A sound device is missing, ambiguous or cannot be opened.

    The message always says how to find a working device (``sos-voice --list-devices``): the
    person reading it is standing at a kiosk, not reading a traceback.
    """


def sounddevice_module() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into a clear AudioDeviceError."""
    try:
        return importlib.import_module("sounddevice")
    except OSError as exc:  # sounddevice raises OSError when libportaudio is missing
        raise AudioDeviceError(
            f"the PortAudio library is not installed ({exc}); install it "
            f"(apt install libportaudio2), then {LIST_DEVICES_HINT}"
        ) from exc
    except ImportError as exc:
        raise AudioDeviceError(
            f"the sounddevice package is not installed ({exc}); pip install sounddevice, "
            f"then {LIST_DEVICES_HINT}"
        ) from exc


def _devices(sd: ModuleType) -> list[dict[str, Any]]:
    try:
        return [dict(d) for d in sd.query_devices()]
    except Exception as exc:  # PortAudioError: a broken host API should not be a traceback
        raise AudioDeviceError(f"cannot list audio devices: {exc}; {LIST_DEVICES_HINT}") from exc


def _channels_key(kind: Kind) -> str:
    return "max_input_channels" if kind == "input" else "max_output_channels"


def _default_index(sd: ModuleType, kind: Kind) -> int:
    """PortAudio's default device of this kind, or -1 if there is none."""
    try:
        pair = sd.default.device
        index = pair[0] if kind == "input" else pair[1]
        return int(index) if index is not None else -1
    except Exception:
        return -1


def list_devices() -> str:
    """A printable table of audio devices for ``sos-voice --list-devices``; never raises."""
    try:
        sd = sounddevice_module()
        devices = _devices(sd)
    except AudioDeviceError as exc:
        return f"No audio devices available: {exc}"
    if not devices:
        return (
            "No audio devices found: PortAudio sees no sound card (and no sound server such as "
            "PulseAudio).\nConnect a microphone/speaker, or use --wav FILE / --text QUESTION."
        )
    default_in, default_out = _default_index(sd, "input"), _default_index(sd, "output")
    try:
        apis = [a["name"] for a in sd.query_hostapis()]
    except Exception:
        apis = []
    lines = ["  index  in  out  rate(Hz)  name", "  -----  --  ---  --------  ----"]
    for i, dev in enumerate(devices):
        mark = ("*" if i == default_in else " ") + ("+" if i == default_out else " ")
        api = dev.get("hostapi")
        api_name = f" ({apis[api]})" if isinstance(api, int) and 0 <= api < len(apis) else ""
        lines.append(
            f"{mark}{i:>5}  {dev['max_input_channels']:>2}  {dev['max_output_channels']:>3}  "
            f"{int(dev['default_samplerate']):>8}  {dev['name']}{api_name}"
        )
    lines.append("")
    lines.append("* = default input, + = default output.")
    lines.append(
        "Choose with --device N|NAME (microphone) and --output-device N|NAME (speaker); "
        "NAME is any unique part of a name."
    )
    return "\n".join(lines)


def resolve_device(spec: str, kind: Kind) -> int | None:
    """Turn a ``--device`` value into a PortAudio index (None = the system default).

    ``""`` means the system default, ``"2"`` the device with index 2, anything else a unique
    case-insensitive part of a device name (an exact name wins over partial matches). The
    device must have channels of ``kind``. Anything that cannot work raises AudioDeviceError
    now, at start-up, instead of failing when the first visitor speaks.
    """
    spec = spec.strip()
    sd = sounddevice_module()
    devices = _devices(sd)
    key = _channels_key(kind)
    usable = [i for i, d in enumerate(devices) if d[key] > 0]
    if not usable:
        raise AudioDeviceError(f"no audio {kind} device found; {LIST_DEVICES_HINT}")
    if not spec:
        return None
    if spec.lstrip("-").isdigit():
        index = int(spec)
        if not 0 <= index < len(devices):
            raise AudioDeviceError(
                f"there is no audio device {index} (valid: 0..{len(devices) - 1}); "
                f"{LIST_DEVICES_HINT}"
            )
        if index not in usable:
            raise AudioDeviceError(
                f"audio device {index} ({devices[index]['name']}) has no {kind} channels; "
                f"{LIST_DEVICES_HINT}"
            )
        return index
    wanted = spec.lower()
    exact = [i for i in usable if devices[i]["name"].lower() == wanted]
    matches = exact or [i for i in usable if wanted in devices[i]["name"].lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AudioDeviceError(f"no audio {kind} device matches {spec!r}; {LIST_DEVICES_HINT}")
    names = ", ".join(f"{i}: {devices[i]['name']}" for i in matches)
    raise AudioDeviceError(
        f"{spec!r} matches several audio {kind} devices ({names}); use the index or a longer "
        f"name; {LIST_DEVICES_HINT}"
    )


def device_info(sd: ModuleType, index: int | None, kind: Kind) -> dict[str, Any]:
    try:
        return dict(
            sd.query_devices(index, kind=kind) if index is None else sd.query_devices(index)
        )
    except Exception as exc:
        raise AudioDeviceError(
            f"no default audio {kind} device is set ({exc}); pick one with "
            f"{'--device' if kind == 'input' else '--output-device'}; {LIST_DEVICES_HINT}"
        ) from exc


def open_stream(
    factory: Callable[..., Any], info: dict[str, Any], kind: Kind, spec: str, **kwargs: Any
) -> tuple[Any, int]:
    """Open a PortAudio stream, mono if the device allows it, else stereo (mixed/duplicated).

    Some hardware devices refuse mono; trying 1 then 2 channels covers them without asking
    the user to know their card's channel layout.
    """
    max_ch = int(info[_channels_key(kind)])
    errors = []
    for channels in dict.fromkeys((1, min(2, max_ch))):
        try:
            return factory(channels=channels, **kwargs), channels
        except Exception as exc:  # PortAudioError / ValueError from sounddevice
            errors.append(str(exc))
    what = spec or "default"
    raise AudioDeviceError(
        f"cannot open audio {kind} device {what!r} ({info.get('name', '?')}): "
        f"{'; '.join(errors)}; {LIST_DEVICES_HINT}"
    )


async def close_stream(stream: Any, timeout_s: float = 2.0) -> bool:
    """Abort and close a PortAudio stream off the event loop; False if it did not finish.

    On a hung sound server PortAudio's abort blocks for about a minute; on the loop that would
    freeze every session (and Ctrl-C). A daemon thread finishes it whenever it can.
    """

    def close() -> None:
        with contextlib.suppress(Exception):
            stream.abort(ignore_errors=True)
        with contextlib.suppress(Exception):
            stream.close(ignore_errors=True)

    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run() -> None:
        close()
        with contextlib.suppress(RuntimeError):  # the loop may be gone by then
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    threading.Thread(target=run, name="portaudio-close", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), timeout_s)
    except TimeoutError:
        log.warning("the audio device did not close within %.0f s; leaving it", timeout_s)
        return False
    return True
