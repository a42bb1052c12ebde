"""The example toy config, made private for a test: its own broker, no cloud, a device id of its own.

The example points at the machine's shared broker (127.0.0.1:1883) and cloud (:8765), where
anyone's `toyd cloud -c config/cloud.yaml` leaves a retained config for `demo-toy` (quiet
hours 20:00-07:00): a test using the example as is would depend on that state and the time.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

from toyd.testing import free_port

ROOT = Path(__file__).resolve().parents[1]


def private_toy_config(
    dest: Path, *, mqtt_port: int | None = None, mic_input: str | None = None
) -> Path:
    """Write ``config/toyd.yaml`` to ``dest`` with a private broker port (default: a closed one),
    an unused cloud port and a unique device id; returns ``dest``."""
    text = (ROOT / "config" / "toyd.yaml").read_text(encoding="utf-8")
    replacements = [
        (r"(?m)^device_id: demo-toy\b", f"device_id: test-{uuid.uuid4().hex[:12]}"),
        (
            r"(?m)^(mqtt:\n  host: 127\.0\.0\.1\n  port: )1883\b",
            rf"\g<1>{mqtt_port or free_port()}",
        ),
        (r"(?m)^(  url: ws://127\.0\.0\.1:)8765\b", rf"\g<1>{free_port()}"),
    ]
    if mic_input is not None:
        replacements.append((r'(?m)^(    input: )""', lambda m: m.group(1) + json.dumps(mic_input)))
    for pattern, repl in replacements:
        text, count = re.subn(pattern, repl, text)
        assert count == 1, f"config/toyd.yaml changed: {pattern!r} matched {count} times"
    dest.write_text(text, encoding="utf-8")
    return dest
