"""The GPIO boundary the button and LED plugins share: one gpiozero pin factory per daemon.

Real hardware by default: on Linux with ``/dev/gpiochipN`` the kernel's character device
through libgpiod (:mod:`toyd.gpio_cdev`; Debian's kernel on the SD image has nothing else),
otherwise gpiozero's own choice. ``GPIOZERO_PIN_FACTORY`` in the environment still wins, as
gpiozero documents. With ``--simulate`` every GPIO plugin gets the same
``MockFactory(pin_class=MockPWMPin)``, so tests and demos drive input pins (``drive_low()``)
and read PWM output pins (``state``) with no Raspberry Pi. The first plugin to
:func:`acquire` chooses the factory; the last to :func:`release` restores what was before.

gpiozero and gpiod are imported only here, on first use: the core never needs them.
Their callbacks run on their own threads: code in them must enter asyncio only through
``app.bus.publish_threadsafe`` or ``loop.call_soon_threadsafe``.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import Any

from .errors import GpioError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_users = 0
_previous: Any = None
_factory: Any = None


def acquire(simulate: bool) -> Any:
    """The pin factory every GPIO plugin of this daemon uses (chosen by the first caller)."""
    global _users, _previous, _factory
    from gpiozero import Device

    with _lock:
        if _users == 0:
            _previous = Device.pin_factory
            if simulate:
                from gpiozero.pins.mock import MockFactory, MockPWMPin

                _factory = MockFactory(pin_class=MockPWMPin)
                log.info("GPIO simulated with gpiozero mock pins")
            else:
                _factory = _real_factory(Device)
            Device.pin_factory = _factory
        _users += 1
        return _factory


def _real_factory(device: Any, dev: Path = Path("/dev")) -> Any:
    """The kernel's character device when there is one, else gpiozero's own choice."""
    if device.pin_factory is not None:
        return device.pin_factory
    if not os.environ.get("GPIOZERO_PIN_FACTORY") and any(dev.glob("gpiochip*")):
        try:
            from .gpio_cdev import CdevFactory
        except ImportError as exc:
            raise GpioError(
                f"GPIO needs libgpiod's Python bindings ({exc}); "
                "install them with: pip install 'gpiod>=2.2'"
            ) from exc
        factory = CdevFactory()
        log.info("GPIO through %s", factory.chip)
        return factory
    try:
        return device._default_pin_factory()
    except Exception as exc:  # noqa: BLE001 - gpiozero raises several kinds here
        raise GpioError(
            f"no GPIO pin library works here ({type(exc).__name__}: {exc}); "
            "on a Raspberry Pi check /dev/gpiochip0, elsewhere run with --simulate"
        ) from exc


def release() -> None:
    """Give the factory back; the last user closes it and restores the previous one."""
    global _users, _previous, _factory
    from gpiozero import Device

    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users:
            return
        factory, _factory = _factory, None
        Device.pin_factory = _previous
        _previous = None
    try:
        if factory is not None:
            factory.close()
    except Exception as exc:  # noqa: BLE001 - closing must not break shutdown
        log.warning("closing the GPIO pin factory failed: %s", exc)


def current() -> Any:
    """The factory in use (tests drive mock pins through it), or None when no plugin holds one."""
    return _factory


def pin_error(what: str, pin: int | str, exc: Exception) -> GpioError:
    """A one-line error naming the plugin's pin (and its chip, when the factory knows it)."""
    if isinstance(exc, GpioError):
        return GpioError(f"{what}: {exc}")
    return GpioError(f"{what}: GPIO {pin} cannot be used: {type(exc).__name__}: {exc}")
