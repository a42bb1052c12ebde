"""``toyd wakeword --wav FILE``: what each wake word model hears in a recording."""

from __future__ import annotations

import argparse
import dataclasses
import json
import textwrap
from pathlib import Path
from typing import Any

from toyd import CliCommand

DESCRIPTION = textwrap.dedent(
    """\
    Score a WAV recording with the wake word models of a config, exactly as the toy would,
    and print per model the highest score and the times (seconds into the file) at which
    it would trigger. This is the tool for "the wake word does nothing".

    What a score is: every 80 ms each model outputs a score from 0 to 1, its confidence
    that the last ~1.3 s of audio ended with its wake word. A model triggers when the
    score reaches its threshold (default 0.5) for `patience` consecutive chunks; it then
    stays quiet for `refractory` seconds. One second of silence is added after the file
    so a wake word at the very end is scored.

    Tuning the threshold:
      1. Record the wake word as the toy hears it (the toy's microphone, a child's voice,
         normal distance): `arecord -r 16000 -c 1 -f S16_LE -d 5 yes.wav`.
      2. Record ordinary talk, TV and room noise without the wake word: no.wav.
      3. Run this on both. Put the threshold between the max score of no.wav and the
         scores of yes.wav (lower = more eager, more false wakes; higher = stricter).
         --threshold tries a value without editing the config.
      4. If false wakes come from short spikes, raise `patience` to 2-3 instead.
    Set it in the config under wakeword.models[].threshold and check with this tool again.

    Without -c the models of the example config (config/toyd.yaml) are used, else the
    built-in defaults; pass -c /etc/toyd/toyd.yaml to test your toy's own models.
    The built-in pre-trained models are CC BY-NC-SA 4.0 (non-commercial).

    examples:
      toyd wakeword --wav yes.wav
      toyd wakeword --wav yes.wav -c /etc/toyd/toyd.yaml --threshold 0.3
      toyd wakeword --wav phone.wav --resample --json
    """
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``toyd wakeword``."""
    parser.add_argument(
        "--wav", required=True, metavar="FILE", help="16 kHz mono 16-bit WAV file to score"
    )
    parser.add_argument(
        "-c",
        "--config",
        metavar="FILE",
        help="config whose wakeword section to use (default: the example config)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help='print one JSON object: {"<model>": {"max_score": float, "triggers": [seconds, ...]}}',
    )
    parser.add_argument(
        "--threshold",
        type=float,
        metavar="T",
        help="use this threshold (0-1) for every model instead of the configured ones",
    )
    parser.add_argument(
        "--resample",
        action="store_true",
        help="accept other rates, stereo and 8/24/32-bit WAVs by converting them first",
    )


def example_config() -> Path | None:
    """config/toyd.yaml of the source tree this toyd runs from, if there is one."""
    import toyd

    candidate = Path(toyd.__file__).resolve().parent.parent / "config" / "toyd.yaml"
    return candidate if candidate.is_file() else None


def load_settings(path: str | Path | None) -> tuple[Any, Path]:
    """The wakeword section of ``path`` (or of the example config, or the defaults) and its folder."""
    from toyd.config import parse_yaml
    from toyd.errors import ConfigError
    from toyd.schema import Where, build

    from .settings import WakeWordSettings

    file = Path(path) if path is not None else example_config()
    if file is None:
        return WakeWordSettings(), Path.cwd()
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(file)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", source=str(file)) from None
    parsed = parse_yaml(text, str(file))
    section = parsed.data.get("wakeword") if isinstance(parsed.data, dict) else None
    settings = build(
        WakeWordSettings, section, where=Where(str(file), parsed.line), path="wakeword"
    )
    return settings, file.parent


def analyse(
    pcm: bytes, settings: Any, base: Path, threshold: float | None = None
) -> dict[str, dict[str, Any]]:
    """Max score and trigger times per model for ``pcm`` (16 kHz mono int16)."""
    from .detector import WakeWordDetector
    from .settings import model_paths

    melspec, embedding, specs = model_paths(settings, base)
    if threshold is not None:
        specs = [dataclasses.replace(s, threshold=threshold) for s in specs]
    detector = WakeWordDetector(melspec, embedding, specs, threads=settings.threads)
    scores, detections = detector.process(pcm + bytes(32000))  # +1 s so the end is scored
    result: dict[str, dict[str, Any]] = {
        name: {"max_score": round(score, 4), "triggers": []} for name, score in scores.items()
    }
    for hit in detections:
        result[hit.model]["triggers"].append(round(hit.time, 2))
    result = {name: result[name] for name in detector.names}
    for spec in specs:
        result[spec.name]["threshold"] = spec.threshold
    return result


def run(args: argparse.Namespace) -> int:
    """Score the file and print the table (or JSON)."""
    from toyd.audio.wav import read_wav
    from toyd.errors import ToydError

    if args.threshold is not None and not 0 < args.threshold <= 1:
        raise ToydError(f"--threshold must be between 0 and 1 (got {args.threshold})")
    pcm = read_wav(args.wav, convert=args.resample, needed_by="the wake word")
    settings, base = load_settings(args.config)
    result = analyse(pcm, settings, base, args.threshold)
    if args.json:
        print(
            json.dumps(
                {
                    name: {"max_score": r["max_score"], "triggers": r["triggers"]}
                    for name, r in result.items()
                }
            )
        )
        return 0
    print(f"{args.wav}: {len(pcm) / 32000:.2f} s of audio")
    width = max(len("MODEL"), *(len(n) for n in result))
    print(f"{'MODEL'.ljust(width)}  MAX SCORE  THRESHOLD  TRIGGERS (s)")
    for name, r in result.items():
        times = ", ".join(f"{t:.2f}" for t in r["triggers"]) or "none"
        print(f"{name.ljust(width)}  {r['max_score']:9.3f}  {r['threshold']:9.2f}  {times}")
    return 0


COMMAND = CliCommand(
    name="wakeword",
    help="score a WAV file with the wake word models: max score and trigger times per model",
    description=DESCRIPTION,
    add_arguments=add_arguments,
    run=run,
)
