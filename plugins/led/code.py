"""Blink an activation code: each digit as that many flashes (0 as ten), a pause between digits."""

from __future__ import annotations

FLASH = 0.25  # seconds on, then the same off
DIGIT_GAP = 1.2  # seconds dark between digits
CODE_GAP = 3.0  # seconds dark before the code starts again
COLOR = (0.0, 0.6, 1.0)  # cyan: not one of the state colours


def code_pattern(code: str) -> list[tuple[bool, float]]:
    """``(lit, seconds)`` steps of one pass over ``code``; non-digits are skipped."""
    steps: list[tuple[bool, float]] = []
    for char in code:
        if not char.isdigit():
            continue
        for _ in range(int(char) or 10):
            steps += [(True, FLASH), (False, FLASH)]
        steps.append((False, DIGIT_GAP))
    if steps:
        steps.append((False, CODE_GAP))
    return steps
