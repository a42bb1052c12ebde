"""What the LED shows: colours, animations and the per-state look table (config + maths, no I/O)."""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

from toyd import State, setting

Animation = Literal["solid", "pulse", "blink", "off"]
Color = tuple[float, float, float]


def parse_color(value: str | tuple[int, int, int]) -> Color:
    """'#rrggbb' / 'rrggbb' / [r, g, b] (0-255) → (r, g, b) in 0..1."""
    if isinstance(value, str):
        text = value.strip().removeprefix("#")
        if len(text) == 3:
            text = "".join(c * 2 for c in text)
        if len(text) != 6:
            raise ValueError(f"colour {value!r} is not #rrggbb")
        try:
            rgb = tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            raise ValueError(f"colour {value!r} is not #rrggbb") from None
    else:
        rgb = tuple(value)
        if any(not 0 <= c <= 255 for c in rgb):
            raise ValueError(f"colour {list(value)} needs three values 0-255")
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


@dataclasses.dataclass(frozen=True)
class Look:
    """A colour and how it moves."""

    color: str | tuple[int, int, int] = setting("#000000", doc="'#rrggbb' or [r, g, b] with 0-255 values.")
    animation: Animation = setting("solid", doc="solid, pulse (fades in and out), blink (on/off) or off.")
    period: float = setting(1.0, min=0.05, max=30.0, doc="Seconds per pulse or blink cycle.")

    def __post_init__(self) -> None:
        parse_color(self.color)  # fail at validation, naming the key

    @property
    def rgb(self) -> Color:
        return parse_color(self.color)


def _look(color: str, animation: Animation = "solid", period: float = 1.0) -> Look:
    return Look(color=color, animation=animation, period=period)


@dataclasses.dataclass(frozen=True)
class StateLooks:
    """One look per conversation state."""

    idle: Look = setting(_look("#101010"), doc="Awake and waiting: dim white.")
    listening: Look = setting(_look("#0000ff"), doc="Hearing the child: solid blue.")
    thinking: Look = setting(_look("#8000ff", "pulse", 1.2), doc="Waiting for the answer: pulsing violet.")
    speaking: Look = setting(_look("#00ff00"), doc="Talking: green.")
    sleeping: Look = setting(_look("#000000", "off"), doc="Asleep: off.")
    muted: Look = setting(_look("#300000"), doc="Microphone muted: dim red.")
    error: Look = setting(_look("#ff0000", "blink", 0.5), doc="Something is broken: red blink.")

    def of(self, state: State) -> Look:
        """The look of ``state``."""
        return getattr(self, state.value)


def level(look: Look, t: float) -> float:
    """Brightness factor 0..1 of ``look`` at ``t`` seconds into its animation."""
    if look.animation == "off":
        return 0.0
    if look.animation == "solid":
        return 1.0
    phase = (t % look.period) / look.period
    if look.animation == "blink":
        return 1.0 if phase < 0.5 else 0.0
    return 0.5 - 0.5 * math.cos(2 * math.pi * phase)  # pulse: 0 → 1 → 0, smooth


def is_static(look: Look) -> bool:
    """True when the look never changes (no animation task needed)."""
    return look.animation in ("solid", "off")


def scaled(rgb: Color, factor: float) -> Color:
    """``rgb`` times ``factor``, clamped to 0..1."""
    return tuple(min(1.0, max(0.0, c * factor)) for c in rgb)  # type: ignore[return-value]
