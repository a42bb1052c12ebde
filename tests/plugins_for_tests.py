"""Deliberately well-behaved and faulty plugins the core tests load."""

from __future__ import annotations

import asyncio
import dataclasses
import time

from toyd import PluginDeclaration, Service, hookimpl, setting
from toyd.events import Event


@dataclasses.dataclass(frozen=True)
class CounterSettings:
    step: int = setting(1, min=1, max=10, doc="How much each tick adds.")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Tick(Event):
    source: str
    value: int


class CounterPlugin:
    """Publishes a Tick every 10 ms; reconfigurable live."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.value = 0

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(
            roles=("device", "cloud"), settings=CounterSettings, summary="test counter"
        )

    @hookimpl
    async def toyd_startup(self, app, settings):
        self.calls.append("startup")
        self.app, self.settings = app, settings

    @hookimpl
    def toyd_services(self, app):
        self.calls.append("services")
        return [Service("tick", self.tick)]

    async def tick(self) -> None:
        while True:
            self.value += self.settings.step
            self.app.bus.publish(Tick(source="counter", value=self.value))
            await asyncio.sleep(0.01)

    @hookimpl
    def toyd_reconfigure(self, app, settings):
        self.calls.append("reconfigure")
        self.settings = settings
        return True

    @hookimpl
    async def toyd_shutdown(self, app):
        self.calls.append("shutdown")


class RaisingPlugin:
    """Its service raises every time it runs."""

    runs = 0

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device", "cloud"))

    @hookimpl
    def toyd_services(self, app):
        return [Service("boom", self.boom)]

    async def boom(self) -> None:
        RaisingPlugin.runs += 1
        await asyncio.sleep(0)
        raise RuntimeError("deliberate failure")


class HangingStartupPlugin:
    """Never finishes starting."""

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device", "cloud"))

    @hookimpl
    async def toyd_startup(self, app, settings):
        await asyncio.Event().wait()


class StubbornServicePlugin:
    """Its service swallows cancellation (a bug); shutdown must still be bounded."""

    def __init__(self) -> None:
        self.running = asyncio.Event()
        self.release = False  # lets the test end the task after checking shutdown

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device", "cloud"))

    @hookimpl
    def toyd_services(self, app):
        return [Service("stubborn", self.run)]

    async def run(self) -> None:
        self.running.set()
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                if self.release:
                    raise
                continue

    @hookimpl
    async def toyd_shutdown(self, app):
        await asyncio.sleep(3600)


class FailingShutdownPlugin:
    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device", "cloud"))

    @hookimpl
    def toyd_shutdown(self, app):
        raise RuntimeError("cannot close")


class CloudOnlyPlugin:
    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("cloud",))


class BlockingStartupPlugin:
    """Blocks its thread briefly in run_blocking: the loop must stay responsive."""

    @hookimpl
    def toyd_declare(self):
        return PluginDeclaration(roles=("device",))

    @hookimpl
    async def toyd_startup(self, app, settings):
        self.result = await app.run_blocking(lambda: time.sleep(0.05) or "loaded")
