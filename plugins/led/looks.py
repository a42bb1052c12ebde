"""What the LED shows: colours, animations and the per-state look table (config + maths, no I/O).

A look in the config may give only some of its keys (``listening: {animation: pulse}``);
the others keep that state's default, so overriding one detail never blanks the colour.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal, NamedTuple

from toyd import State, setting

Animation = Literal["solid", "pulse", "blink", "off"]
Color = tuple[float, float, float]


def parse_color(value: str | tuple[int, int, int] | list[int]) -> Color:
    """'#rrggbb' / '#rgb' / [r, g, b] (0-255) → (r, g, b) in 0..1."""
    if isinstance(value, str):
        text = value.strip().removeprefix("#")
        if len(text) == 3:
            text = "".join(c * 2 for c in text)
        if len(text) != 6:
            raise ValueError(f"colour {value!r} is not #rrggbb")
        try:
            rgb = tuple(int(text[i : i + 2], 16) for i in (0, 2, 4))
        except ValueError:
            raise ValueError(f"colour {value!r} is not #rrggbb") from None
    else:
        rgb = tuple(value)
        if any(not 0 <= c <= 255 for c in rgb):
            raise ValueError(f"colour {list(value)} needs three values 0-255")
    return (rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)


@dataclasses.dataclass(frozen=True)
class Look:
    """A colour and how it moves; a key left out (null) keeps the state's default."""

    color: str | tuple[int, int, int] | None = setting(
        None, doc="'#rrggbb' or [r, g, b] with 0-255 values; null = the state's default."
    )
    animation: Animation | None = setting(
        None,
        doc="solid, pulse (fades in and out), blink (on/off) or off; null = the state's default.",
    )
    period: float | None = setting(
        None,
        min=0.05,
        max=30.0,
        doc="Seconds per pulse or blink cycle; null = the state's default.",
    )

    def __post_init__(self) -> None:
        if self.color is not None:
            parse_color(self.color)  # fail at validation, naming the key


class Shown(NamedTuple):
    """A fully resolved look, ready to drive the pins."""

    rgb: Color
    animation: Animation
    period: float


DEFAULTS: dict[str, Shown] = {
    "idle": Shown(parse_color("#101010"), "solid", 1.0),
    "listening": Shown(parse_color("#0000ff"), "solid", 1.0),
    "thinking": Shown(parse_color("#8000ff"), "pulse", 1.2),
    "speaking": Shown(parse_color("#00ff00"), "solid", 1.0),
    "sleeping": Shown(parse_color("#000000"), "off", 1.0),
    "muted": Shown(parse_color("#300000"), "solid", 1.0),
    "error": Shown(parse_color("#ff0000"), "blink", 0.5),
    "offline": Shown(parse_color("#ff8000"), "solid", 1.0),
}


def resolve(look: Look, name: str) -> Shown:
    """``look`` with every missing key taken from the default look ``name``."""
    default = DEFAULTS[name]
    return Shown(
        parse_color(look.color) if look.color is not None else default.rgb,
        look.animation or default.animation,
        look.period if look.period is not None else default.period,
    )


@dataclasses.dataclass(frozen=True)
class StateLooks:
    """One look per conversation state."""

    idle: Look = setting(Look(), doc="Awake and waiting. Default: dim white #101010, solid.")
    listening: Look = setting(Look(), doc="Hearing the child. Default: blue #0000ff, solid.")
    thinking: Look = setting(
        Look(), doc="Waiting for the answer. Default: violet #8000ff, pulse, period 1.2."
    )
    speaking: Look = setting(Look(), doc="Talking. Default: green #00ff00, solid.")
    sleeping: Look = setting(Look(), doc="Asleep. Default: off.")
    muted: Look = setting(Look(), doc="Microphone muted. Default: dim red #300000, solid.")
    error: Look = setting(
        Look(), doc="Something is broken. Default: red #ff0000, blink, period 0.5."
    )

    def of(self, state: State) -> Shown:
        """The resolved look of ``state``."""
        return resolve(getattr(self, state.value), state.value)


def level(look: Shown, t: float) -> float:
    """Brightness factor 0..1 of ``look`` at ``t`` seconds into its animation."""
    if look.animation == "off":
        return 0.0
    if look.animation == "solid":
        return 1.0
    phase = (t % look.period) / look.period
    if look.animation == "blink":
        return 1.0 if phase < 0.5 else 0.0
    return 0.5 - 0.5 * math.cos(2 * math.pi * phase)  # pulse: 0 → 1 → 0, smooth


def is_static(look: Shown) -> bool:
    """True when the look never changes (no animation task needed)."""
    return look.animation in ("solid", "off")


def scaled(rgb: Color, factor: float) -> Color:
    """``rgb`` times ``factor``, clamped to 0..1."""
    return tuple(min(1.0, max(0.0, c * factor)) for c in rgb)  # type: ignore[return-value]
