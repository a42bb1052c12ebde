"""A gpiozero pin factory over the kernel's GPIO character device (``/dev/gpiochipN``).

Debian's kernel has no ``/dev/gpiomem`` and PyPI's aarch64 ``lgpio`` wheel is empty, so
gpiozero's own factories find nothing on the SD image. libgpiod's Python bindings
(``gpiod`` >= 2, wheels with the library inside) talk to the character device that every
Linux kernel since 5.10 provides, on any Pi model and any distribution.

Each gpiozero pin holds one line request (consumer ``toyd``, visible in ``gpioinfo``).
Edges arrive on one reader thread per watched pin; PWM (the LED) is done in software by one
thread per factory that sleeps when every duty cycle is 0 or 1, so a steady LED costs
nothing.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import gpiod
from gpiod.line import Bias, Direction, Edge, Value
from gpiozero.exc import (
    PinFixedPull,
    PinInvalidBounce,
    PinInvalidFunction,
    PinInvalidPull,
    PinPWMFixedValue,
    PinSetInput,
    PinUnknownPi,
)
from gpiozero.pins.local import get_pi_revision
from gpiozero.pins.pi import PiFactory, PiPin

from .errors import GpioError

log = logging.getLogger(__name__)

CONSUMER = "toyd"
# Labels of the chip that drives the 40-pin header (upstream and Raspberry Pi kernels).
HEADER_LABELS = ("pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1")
# A 40-pin Pi 3 B: the header layout gpiozero assumes when the firmware gave no board revision
# (QEMU loads the device tree itself and adds none).
FALLBACK_REVISION = 0xA02082
PULLS = {"up": Bias.PULL_UP, "down": Bias.PULL_DOWN, "floating": Bias.DISABLED}
EDGES = {"both": Edge.BOTH, "rising": Edge.RISING, "falling": Edge.FALLING, "none": Edge.NONE}


@dataclass(frozen=True)
class ChipInfo:
    """One ``/dev/gpiochipN``: its path, driver label and number of lines."""

    path: str
    label: str
    lines: int

    def __str__(self) -> str:
        return f"{self.path} ({self.label})"


def list_chips(dev: Path = Path("/dev")) -> list[ChipInfo]:
    """Every GPIO character device this process can open, in name order."""
    chips = []
    for path in sorted(dev.glob("gpiochip*"), key=lambda p: (len(p.name), p.name)):
        if not gpiod.is_gpiochip_device(str(path)):
            continue
        try:
            with gpiod.Chip(str(path)) as chip:
                info = chip.get_info()
        except OSError as exc:
            raise GpioError(
                f"cannot open {path}: {exc.strerror} (is this user in the gpio group?)"
            ) from exc
        chips.append(ChipInfo(str(path), info.label, info.num_lines))
    return chips


def header_chip(chips: list[ChipInfo]) -> ChipInfo:
    """The chip behind the 40-pin header: the Pi's pin controller, else the first chip."""
    if not chips:
        raise GpioError(
            "no GPIO chip (/dev/gpiochip*) on this machine; not a Raspberry Pi? "
            "Run with --simulate to try toyd without hardware"
        )
    for chip in chips:
        if chip.label in HEADER_LABELS:
            return chip
    return chips[0]


class CdevFactory(PiFactory):
    """gpiozero pins on one gpiochip, numbered like the Pi's BCM GPIOs."""

    def __init__(self, chip: ChipInfo | None = None) -> None:
        super().__init__()
        self.chip = chip or header_chip(list_chips())
        self.pin_class = CdevPin
        self.pwm = SoftPwm()

    def _get_revision(self) -> int:
        try:
            return get_pi_revision()
        except PinUnknownPi:
            log.info("no Raspberry Pi revision in the device tree; assuming a 40-pin header")
            return FALLBACK_REVISION

    def close(self) -> None:
        super().close()
        self.pwm.stop()

    @staticmethod
    def ticks() -> float:
        return time.monotonic()

    @staticmethod
    def ticks_diff(later: float, earlier: float) -> float:
        return later - earlier

    def __repr__(self) -> str:
        return f"CdevFactory({self.chip})"


class CdevPin(PiPin):
    """One GPIO line, requested from the kernel for as long as the pin exists."""

    def __init__(self, factory: CdevFactory, info: Any) -> None:
        super().__init__(factory, info)
        self._chip = factory.chip
        self._settings = gpiod.LineSettings(direction=Direction.INPUT)
        self._frequency: float | None = None
        self._duty = 0.0
        self._edges = "both"
        self._bounce: float | None = None
        self._watcher: EdgeWatcher | None = None
        self._request = self._claim()

    def _where(self) -> str:
        return f"GPIO {self._number} on {self._chip}"

    def _claim(self) -> Any:
        if self._number >= self._chip.lines:
            raise GpioError(f"{self._where()}: no such line (the chip has {self._chip.lines})")
        try:
            return gpiod.request_lines(
                self._chip.path, consumer=CONSUMER, config={self._number: self._settings}
            )
        except OSError as exc:
            raise GpioError(f"{self._where()}: {self._holder() or exc.strerror}") from exc

    def _holder(self) -> str:
        """Who holds the line already, as the kernel reports it."""
        try:
            with gpiod.Chip(self._chip.path) as chip:
                line = chip.get_line_info(self._number)
        except OSError:
            return ""
        return f"in use by {line.consumer or 'the kernel'!r}" if line.used else ""

    def _apply(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self._settings, key, value)
        self._request.reconfigure_lines({self._number: self._settings})

    def close(self) -> None:
        self.when_changed = None
        self._set_frequency(None)
        if self._request:
            self._request.release()

    def _get_function(self) -> str:
        return "output" if self._settings.direction is Direction.OUTPUT else "input"

    def _set_function(self, value: str) -> None:
        if value not in ("input", "output"):
            raise PinInvalidFunction(f'invalid function "{value}" for pin {self!r}')
        if value == "output":
            self.when_changed = None
            self._apply(
                direction=Direction.OUTPUT,
                output_value=Value.INACTIVE,
                bias=Bias.AS_IS,
                edge_detection=Edge.NONE,
            )
        else:
            self._set_frequency(None)
            self._apply(direction=Direction.INPUT)

    def _get_state(self) -> float | bool:
        if self._frequency:
            return self._duty
        return self._request.get_value(self._number) is Value.ACTIVE

    def _set_state(self, value: float) -> None:
        if self._frequency:
            self._duty = min(1.0, max(0.0, float(value)))
            self.factory.pwm.set(self, self._duty, self._frequency)
        elif self._settings.direction is not Direction.OUTPUT:
            raise PinSetInput(f"cannot set the state of input pin {self!r}")
        else:
            self.write(bool(value))

    def write(self, high: bool) -> None:
        """Drive the line (called by the PWM thread too)."""
        if self._request:
            self._request.set_value(self._number, Value.ACTIVE if high else Value.INACTIVE)

    def _get_pull(self) -> str:
        return {Bias.PULL_UP: "up", Bias.PULL_DOWN: "down"}.get(self._settings.bias, "floating")

    def _set_pull(self, value: str) -> None:
        if self._settings.direction is Direction.OUTPUT:
            raise PinFixedPull(f"cannot set pull on output pin {self!r}")
        if value not in PULLS:
            raise PinInvalidPull(f'invalid pull "{value}" for pin {self!r}')
        self._apply(bias=PULLS[value])

    def _get_frequency(self) -> float | None:
        return self._frequency

    def _set_frequency(self, value: float | None) -> None:
        if value:
            if self._settings.direction is not Direction.OUTPUT:
                raise PinPWMFixedValue(f"cannot start PWM on input pin {self!r}")
            self._frequency = float(value)
            self.factory.pwm.set(self, self._duty, self._frequency)
        elif self._frequency:
            self._frequency, self._duty = None, 0.0
            self.factory.pwm.remove(self)
            self.write(False)

    def _get_bounce(self) -> float | None:
        return self._bounce

    def _set_bounce(self, value: float | None) -> None:
        if value is not None and value < 0:
            raise PinInvalidBounce("bounce must be 0 or greater")
        self._bounce = value or None
        self._apply(debounce_period=timedelta(seconds=value or 0))

    def _get_edges(self) -> str:
        return self._edges

    def _set_edges(self, value: str) -> None:
        if value not in EDGES:
            raise PinInvalidFunction(f'invalid edges "{value}" for pin {self!r}')
        self._edges = value
        if self._watcher is not None:
            self._apply(edge_detection=EDGES[value])

    def _enable_event_detect(self) -> None:
        self._apply(edge_detection=EDGES[self._edges])
        self._watcher = EdgeWatcher(self._request, self._on_edge, f"gpio{self._number}-edges")

    def _disable_event_detect(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        if self._request:
            self._apply(edge_detection=Edge.NONE)

    def _on_edge(self, event: Any) -> None:
        rising = event.event_type is gpiod.EdgeEvent.Type.RISING_EDGE
        self._call_when_changed(event.timestamp_ns / 1e9, rising)


class EdgeWatcher:
    """A thread that reads a line request's edge events until stopped."""

    def __init__(self, request: Any, callback: Any, name: str) -> None:
        self._request, self._callback = request, callback
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                ready, _, _ = select.select([self._request.fd, self._wake_r], [], [])
                if self._wake_r in ready:
                    return
                for event in self._request.read_edge_events():
                    self._callback(event)
        except Exception:  # noqa: BLE001 - a dead reader must be visible in the journal
            log.exception("GPIO edge reader stopped")
        finally:
            os.close(self._wake_r)

    def stop(self) -> None:
        os.write(self._wake_w, b"x")
        os.close(self._wake_w)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)


class SoftPwm:
    """Software PWM for any number of pins on one thread; idle while every duty is 0 or 1."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pins: dict[Any, tuple[float, float, float]] = {}  # pin -> (duty, period, cycle start)
        self._levels: dict[Any, bool] = {}  # what each pin shows now: write only changes
        self._thread: threading.Thread | None = None
        self._stopped = False

    def set(self, pin: Any, duty: float, frequency: float) -> None:
        """Show ``duty`` on ``pin``: a steady level for 0 and 1, pulses otherwise."""
        with self._cond:
            if duty <= 0.0 or duty >= 1.0:
                self._pins.pop(pin, None)
                self._levels.pop(pin, None)
                pin.write(duty >= 1.0)
                return
            if pin not in self._pins:
                self._pins[pin] = (duty, 1.0 / frequency, time.monotonic())
            else:
                self._pins[pin] = (duty, 1.0 / frequency, self._pins[pin][2])
            if self._thread is None:
                self._stopped = False
                self._thread = threading.Thread(target=self._run, name="gpio-pwm", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, pin: Any) -> None:
        with self._cond:
            self._pins.pop(pin, None)
            self._levels.pop(pin, None)
            self._cond.notify()

    def stop(self) -> None:
        with self._cond:
            self._stopped, thread = True, self._thread
            self._pins.clear()
            self._levels.clear()
            self._cond.notify()
        if thread is not None:
            thread.join(timeout=1.0)
        self._thread = None

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                if not self._pins:
                    self._cond.wait()
                    continue
                self._cond.wait(self._step(time.monotonic()))

    def _step(self, now: float) -> float:
        """Drive every pin for ``now``; seconds until the next edge."""
        wait = 1.0
        for pin, (duty, period, start) in list(self._pins.items()):
            if now - start >= period:  # next cycle (resynchronised after a stall)
                start = start + period if now - start < 2 * period else now
                self._pins[pin] = (duty, period, start)
            off_at = start + duty * period
            if self._levels.get(pin) != (now < off_at):
                self._levels[pin] = now < off_at
                pin.write(now < off_at)
            wait = min(wait, (off_at if now < off_at else start + period) - now)
        return max(wait, 0.0)
