"""``toyd audio-devices``: what PortAudio sees, and which rates each device takes.

The first thing a maker needs when the toy is deaf or mute: the names to put in
``audio.pyaudio.input_device`` / ``output_device`` and whether toyd will resample.
"""

from __future__ import annotations

import argparse
import json
import textwrap
from typing import Any

from toyd import CliCommand

EPILOG = textwrap.dedent(
    """\
    examples:
      toyd audio-devices            table of devices, channels and supported rates
      toyd audio-devices --json     the same as JSON

    Put part of a NAME (or its INDEX) in the config:
      audio:
        pyaudio: {input_device: seeed, output_device: USB}
    """
)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _rates(portaudio: Any, device: dict[str, Any], kind: str) -> list[int]:
    from .pyaudio_backend import PROBE_RATES

    key = "maxInputChannels" if kind == "input" else "maxOutputChannels"
    if device[key] <= 0:
        return []
    supported = []
    for rate in PROBE_RATES:
        for channels in (1, 2):
            if channels > device[key]:
                continue
            try:
                ok = portaudio.pa.is_format_supported(
                    rate,
                    **{
                        f"{kind}_device": device["index"],
                        f"{kind}_channels": channels,
                        f"{kind}_format": portaudio.pyaudio.paInt16,
                    },
                )
            except ValueError:
                ok = False
            if ok:
                supported.append(rate)
                break
    return sorted(supported)


def list_devices() -> list[dict[str, Any]]:
    """Every PortAudio device with its channels, default rate and the probed 16-bit rates."""
    from .pyaudio_backend import PortAudio

    portaudio = PortAudio()
    try:
        defaults = {}
        for kind, getter in (
            ("input", portaudio.pa.get_default_input_device_info),
            ("output", portaudio.pa.get_default_output_device_info),
        ):
            try:
                defaults[kind] = getter()["index"]
            except OSError:
                defaults[kind] = None
        out = []
        for d in portaudio.devices():
            out.append(
                {
                    "index": d["index"],
                    "name": d["name"],
                    "inputs": d["maxInputChannels"],
                    "outputs": d["maxOutputChannels"],
                    "default_rate": int(d["defaultSampleRate"]),
                    "input_rates": _rates(portaudio, d, "input"),
                    "output_rates": _rates(portaudio, d, "output"),
                    "default_input": defaults["input"] == d["index"],
                    "default_output": defaults["output"] == d["index"],
                }
            )
        return out
    finally:
        portaudio.pa.terminate()


def _run(args: argparse.Namespace) -> int:
    devices = list_devices()
    if args.json:
        print(json.dumps(devices, indent=1))
        return 0
    if not devices:
        print(
            "no audio devices found (is the sound card's driver or overlay loaded? try `aplay -l`)"
        )
        return 1
    print(f"{'INDEX':>5}  {'IN':>3} {'OUT':>3}  {'16-BIT RATES (Hz)':<40} NAME")
    for d in devices:
        rates = sorted(set(d["input_rates"]) | set(d["output_rates"]))
        marks = " (default input)" * d["default_input"] + " (default output)" * d["default_output"]
        note = "" if 16000 in rates or not rates else "  [toyd resamples]"
        print(
            f"{d['index']:>5}  {d['inputs']:>3} {d['outputs']:>3}  {', '.join(map(str, rates)) or '-':<40} "
            f"{d['name']}{marks}{note}"
        )
    return 0


COMMAND = CliCommand(
    "audio-devices",
    "list sound devices and the rates they take (for audio.pyaudio)",
    add_arguments=_add_arguments,
    run=_run,
    description="List the sound devices PortAudio sees: index, channels, supported 16-bit "
    "rates and name. Use part of a name, or the index, for "
    "audio.pyaudio.input_device / output_device.",
)
