"""The ``activation`` plugin (device role): a fresh toy gets its own cloud token, no typing.

On start, and whenever the cloud link drops, it checks in with the cloud's OTA URL (with
the stored token, if any). A live token: nothing to do. No token, or a revoked one: the
toy speaks and blinks the activation code the cloud hands out (``ActivationCode``) and
polls, proving the challenge with an HMAC, until a parent has claimed the code; then it
stores the token (``toyd.credentials``, mode 0600) and tells the cloud link to reconnect
(``CloudTokenStored``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid

from toyd import App, PluginDeclaration, Service, credentials, hookimpl, setting
from toyd import events as ev
from toyd.audio import frames
from toyd.errors import BackendError
from toyd.httpclient import check_base_url
from toyd.protocol.activation import Activation, spoken_code
from toyd.turn import Turn

from . import client

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ActivationSettings:
    """Settings of the ``activation`` section."""

    url: str = setting(
        "",
        doc="The cloud's OTA/activation URL, e.g. http://cloud.example:8766/toyd/ota/ "
        "(empty = activation off).",
    )
    license_key: str = setting(
        "",
        doc="This toy's licence key for the challenge HMAC; use {$file: ...} "
        "(empty = none, as most toys).",
    )
    poll_interval: float = setting(
        3.0, min=0.2, max=60, doc="Seconds between asks whether a parent claimed the code."
    )
    repeat_every: float = setting(
        30.0, min=5, max=3600, doc="Seconds between repeats of the spoken code."
    )
    retry_max: float = setting(
        60.0, min=1, max=3600, doc="Longest wait after a failed check-in, seconds."
    )
    message: str = setting(
        "To set me up, a grown-up enters the code {code}.",
        doc="Spoken when the cloud sends no message; {code} becomes the digits.",
    )
    language: str | None = setting(
        None, doc="Language of the spoken code (for the synthesizer); unset = default."
    )

    def __post_init__(self) -> None:
        if self.url:
            check_base_url(self.url, "url")


class ActivationPlugin:
    """Checks in, runs the code flow when needed, keeps the token file."""

    def __init__(self) -> None:
        self.settings = ActivationSettings()
        self.activations = 0
        self._recheck = asyncio.Event()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=ActivationSettings,
            summary="First-boot activation: speaks a code, stores the toy's own token",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: ActivationSettings) -> None:
        self.app, self.settings = app, settings
        if not settings.url:
            log.warning("activation: no url configured; the toy cannot get a token by itself")
        self._events = app.bus.subscribe("activation", (ev.CloudOffline,), maxsize=20)

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        if not self.settings.url:
            return []
        return [Service("activate", self._run), Service("events", self._watch)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: ActivationSettings) -> bool:
        changed = settings.url != self.settings.url
        self.settings = settings
        return not changed

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._events.close()

    async def _watch(self) -> None:
        """A dropped or refused link may mean a revoked token: check in again."""
        async for event in self._events:
            log.debug("activation: cloud offline (%s); checking the token", event.reason)
            self._recheck.set()

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.check_in()
                delay = 1.0
            except BackendError as exc:
                log.warning("activation: %s; retrying in %.0f s", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.settings.retry_max)
                continue
            await self._recheck.wait()
            self._recheck.clear()

    async def check_in(self) -> None:
        """One check-in; runs the whole code flow when the toy has no live token."""
        app, url = self.app, self.settings.url
        token = await app.run_blocking(credentials.read_token, app.state_dir)
        reply = await client.check_in(url, app.device_id, token)
        if reply.activation is None:
            log.info("activation: this toy's token is live")
            return
        if token and await app.run_blocking(credentials.delete_token, app.state_dir):
            log.warning(
                "activation: the cloud no longer accepts this toy's token (revoked); "
                "asking for a new code"
            )
        if await self._wait_for_claim(reply.activation):
            await app.run_blocking(credentials.write_token, app.state_dir, reply.token)
            self.activations += 1
            log.info(
                "activation: claimed; token stored in %s", credentials.token_path(app.state_dir)
            )
            app.bus.publish(ev.CloudTokenStored())
        self._recheck.set()  # claimed: confirm the token; expired: ask for a new code

    async def _wait_for_claim(self, activation: Activation) -> bool:
        """Show the code and poll until claimed (True) or the code expired (False)."""
        s, app = self.settings, self.app
        lifetime = activation.timeout_ms / 1000 if activation.timeout_ms > 0 else 600.0
        deadline = time.monotonic() + lifetime
        text = activation.message or s.message.format(code=spoken_code(activation.code))
        log.warning(
            "activation: not activated; code %s (a parent enters it to claim this toy)",
            activation.code,
        )
        announced = float("-inf")
        try:
            while time.monotonic() < deadline:
                if time.monotonic() - announced >= s.repeat_every:
                    announced = time.monotonic()
                    app.bus.publish(
                        ev.ActivationCode(code=activation.code, expires_in=deadline - announced)
                    )
                    await self._speak(text)
                try:
                    if await client.poll(s.url, app.device_id, activation.challenge, s.license_key):
                        return True
                except client.Refused as exc:
                    if exc.status in (404, 410):  # expired or replaced: a new code
                        log.info("activation: code no longer valid (%s)", exc)
                        return False
                    log.warning("activation: poll refused: %s", exc)
                except BackendError as exc:
                    log.warning("activation: poll failed: %s", exc)
                await asyncio.sleep(s.poll_interval)
            return False
        finally:
            app.bus.publish(ev.ActivationCode(code=""))

    async def _speak(self, text: str) -> None:
        """Through whichever plugin implements ``toyd_synthesize`` (else only the LED shows it)."""
        app = self.app
        turn = Turn(
            device_id=app.device_id,
            session_id="activation",
            turn_id=uuid.uuid4().hex[:12],
            language=self.settings.language,
        )
        try:
            stream = await app.host.call_first("toyd_synthesize", turn=turn, text=text)
            if stream is None:
                log.warning(
                    "activation: no speech synthesizer enabled; the code is only blinked and logged"
                )
                return
            pcm = b"".join([chunk async for chunk in stream])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken synthesizer must not stop activation
            log.error("activation: cannot speak the code: %s: %s", type(exc).__name__, exc)
            return
        response_id = f"activation:{turn.turn_id}"
        for frame in frames(pcm):
            app.bus.publish(ev.ReplyAudio(response_id=response_id, pcm=frame))
        app.bus.publish(ev.ReplyAudioEnd(response_id=response_id))
