"""The GPIO boundary: factory choice, one-line pin errors, chip choice, software PWM timing.

Real lines are exercised in the SD image's QEMU raspi3b boot test (tests/test_image.py);
here the parts that need no /dev/gpiochipN.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from toyd import gpio

gpiod = pytest.importorskip("gpiod")
from toyd.gpio_cdev import CdevFactory, ChipInfo, SoftPwm, header_chip  # noqa: E402


def test_core_imports_no_pin_library() -> None:
    code = "import sys, toyd, toyd.gpio; print(sorted({'gpiozero', 'gpiod'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_no_gpio_at_all_is_one_clear_line(tmp_path: Path) -> None:
    from gpiozero import Device

    before = Device.pin_factory
    Device.pin_factory = None
    try:
        with pytest.raises(gpio.GpioError) as info:
            gpio._real_factory(Device, dev=tmp_path)  # no gpiochip here, and no Pi
    finally:
        Device.pin_factory = before
    message = str(info.value)
    assert "no GPIO pin library works here" in message and "--simulate" in message
    assert "\n" not in message


def test_header_chip_is_the_pi_pin_controller() -> None:
    chips = [
        ChipInfo("/dev/gpiochip0", "raspberrypi-exp-gpio", 8),
        ChipInfo("/dev/gpiochip1", "pinctrl-bcm2711", 58),
    ]
    assert header_chip(chips).path == "/dev/gpiochip1"
    assert header_chip([ChipInfo("/dev/gpiochip0", "9030000.pl061", 8)]).label == "9030000.pl061"
    with pytest.raises(gpio.GpioError, match=r"no GPIO chip \(/dev/gpiochip\*\) on this machine"):
        header_chip([])


def test_missing_pin_names_chip_and_pin() -> None:
    factory = CdevFactory(ChipInfo("/dev/gpiochip0", "9030000.pl061", 8))
    try:
        with pytest.raises(gpio.GpioError) as info:
            factory.pin(17)
    finally:
        factory.close()
    error = gpio.pin_error("button", 17, info.value)
    assert str(error) == (
        "button: GPIO 17 on /dev/gpiochip0 (9030000.pl061): no such line (the chip has 8)"
    )


def test_pin_error_of_other_causes_names_the_pin() -> None:
    error = gpio.pin_error("led", "22/23/24", ValueError("bad"))
    assert str(error) == "led: GPIO 22/23/24 cannot be used: ValueError: bad"


class Line:
    """A PWM output that records what it was driven to (the hardware boundary)."""

    def __init__(self) -> None:
        self.writes: list[bool] = []

    def write(self, high: bool) -> None:
        self.writes.append(high)


def test_soft_pwm_cycles_by_duty_and_writes_only_changes() -> None:
    pwm, red, blue = SoftPwm(), Line(), Line()
    pwm._thread = object()  # drive _step by hand: no thread, no clock
    pwm._pins = {red: (0.25, 0.01, 0.0), blue: (0.5, 0.01, 0.0)}
    assert pwm._step(0.0) == pytest.approx(0.0025)  # red goes low first
    assert (red.writes, blue.writes) == ([True], [True])
    assert pwm._step(0.0025) == pytest.approx(0.0025)  # blue goes low at 0.005
    assert (red.writes, blue.writes) == ([True, False], [True])
    pwm._step(0.003)  # nothing changed: nothing written
    assert (red.writes, blue.writes) == ([True, False], [True])
    pwm._step(0.005)
    assert blue.writes == [True, False]
    pwm._step(0.0101)  # the next cycle
    assert (red.writes[-1], blue.writes[-1]) == (True, True)
    pwm._step(0.5)  # after a stall the cycle restarts at now, not in the past
    assert pwm._pins[red][2] == 0.5


def test_soft_pwm_holds_steady_levels_without_a_thread() -> None:
    pwm, line = SoftPwm(), Line()
    pwm.set(line, 1.0, 100)
    pwm.set(line, 0.0, 100)
    assert line.writes == [True, False]
    assert pwm._thread is None  # a solid or dark LED costs no wake-ups
    pwm.set(line, 0.5, 100)
    try:
        assert pwm._thread is not None
    finally:
        pwm.stop()
    assert pwm._thread is None
