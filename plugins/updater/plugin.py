"""The ``updater`` plugin (device role): over-the-air updates of toyd with RAUC.

On ``UpdateRequested`` (a parent's ``cmd/update`` over MQTT, or the cloud's staged rollout,
which sends the same command) it downloads the bundle (resumable, SHA-256 checked), checks its
signature against the toy's keyring (``rauc info``), lets RAUC install it into the other
slot (``rauc install``), waits until the toy is idle and reboots into it. The new slot runs
on trial: ``toyd-health`` marks it good once toyd is READY, or rolls back (docs/image.md).
Every step is an ``UpdateProgress`` event, which the mqtt plugin publishes on
``<prefix>/<id>/event/update``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from pathlib import Path

from toyd import App, PluginDeclaration, Service, State, hookimpl, setting
from toyd import events as ev
from toyd.errors import BackendError

from .download import fetch

log = logging.getLogger(__name__)
PERCENT = re.compile(rb"(\d{1,3})%")
IDLE_WAIT_MAX = 600.0  # seconds to wait for the child to finish talking before rebooting anyway


@dataclasses.dataclass(frozen=True)
class UpdaterSettings:
    """Settings of the ``updater`` section."""

    keyring: str = setting(
        "/etc/rauc/keyring.pem", doc="Certificates a bundle must be signed with."
    )
    folder: str = setting(
        "updates", doc="Download folder (relative = in state_dir); partial downloads resume."
    )
    max_bytes: int = setting(
        2_000_000_000, min=1_000_000, max=100_000_000_000, doc="Largest bundle accepted."
    )
    rauc: str = setting("rauc", doc="The rauc command.")
    reboot_command: tuple[str, ...] = setting(
        factory=tuple,
        doc="How to reboot into the new slot; empty = create "
        "<state_dir>/reboot-requested (the SD image reboots on it: toyd is unprivileged).",
    )
    reboot: bool = setting(
        True, doc="Reboot once installed (false: the new version runs from the next boot)."
    )
    release_file: str = setting(
        "/opt/toyd/RELEASE",
        doc="The running release (the SD image writes it); a "
        "request for this version is answered done at once.",
    )
    command_timeout: float = setting(
        1800.0, min=10, max=7200, doc="Seconds rauc may take to verify or install."
    )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


class UpdaterPlugin:
    """One update at a time; a second request while busy is refused on the progress topic."""

    def __init__(self) -> None:
        self.settings = UpdaterSettings()
        self.busy = False
        self.installed = 0

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("device",),
            settings=UpdaterSettings,
            summary="Over-the-air updates: signed RAUC bundles into the other A/B slot",
        )

    @hookimpl
    def toyd_startup(self, app: App, settings: UpdaterSettings) -> None:
        self.app, self.settings = app, settings
        self._events = app.bus.subscribe("updater", (ev.UpdateRequested,), maxsize=10)

    @hookimpl
    def toyd_services(self, app: App) -> list[Service]:
        return [Service("requests", self._run)]

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: UpdaterSettings) -> bool:
        self.settings = settings
        return True

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        self._events.close()

    def _report(
        self, request: ev.UpdateRequested, stage: str, percent: int = 0, error: str = ""
    ) -> None:
        self.app.bus.publish(
            ev.UpdateProgress(
                stage=stage,
                percent=percent,
                version=request.version,
                error=error,
                request_id=request.request_id,
            )
        )

    async def _run(self) -> None:
        async for request in self._events:
            if self.busy:
                self._report(request, "failed", error="another update is running")
                continue
            self.busy = True
            self.app.spawn(self._update(request), "updater:update")

    async def _update(self, request: ev.UpdateRequested) -> None:
        try:
            await self.update(request)
        except asyncio.CancelledError:
            raise
        except (BackendError, OSError) as exc:
            log.error("update %s failed: %s", request.version or request.sha256[:12], exc)
            self._report(request, "failed", error=str(exc))
        finally:
            self.busy = False

    async def update(self, request: ev.UpdateRequested) -> None:
        """Download, verify, install, reboot; raises BackendError naming the step that failed."""
        s, app = self.settings, self.app
        running = await app.run_blocking(_read, Path(s.release_file))
        if request.version and request.version == running:
            log.info("update %s: already running it", request.version)
            self._report(request, "done", 100)
            return
        folder = Path(s.folder) if Path(s.folder).is_absolute() else app.state_dir / s.folder
        await app.run_blocking(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        log.info("update %s: downloading %s", request.version, request.url)
        last = [-1]

        def downloaded(done: int, total: int) -> None:
            percent = done * 100 // total if total else 0
            if percent >= last[0] + 10:
                last[0] = percent
                self._report(request, "download", percent)

        bundle = await fetch(
            request.url,
            request.sha256,
            folder,
            max_bytes=s.max_bytes,
            run_blocking=app.run_blocking,
            progress=downloaded,
        )
        self._report(request, "verify")
        try:
            await self._rauc("verify", "info", f"--keyring={s.keyring}", str(bundle))
        except BackendError:
            await app.run_blocking(bundle.unlink, missing_ok=True)  # a bad bundle is not kept
            raise
        self._report(request, "install")
        await self._rauc("install", "install", "--progress", str(bundle), progress=request)
        await app.run_blocking(bundle.unlink, missing_ok=True)
        self.installed += 1
        log.info("update %s installed into the other slot", request.version)
        if not s.reboot:
            self._report(request, "done", 100)
            return
        await self._wait_idle()
        self._report(request, "reboot", 100)
        if s.reboot_command:
            await self._command("reboot", list(s.reboot_command))
        else:
            await app.run_blocking(
                (app.state_dir / "reboot-requested").write_text, f"{request.version}\n"
            )

    async def _wait_idle(self) -> None:
        """Never reboot in the middle of a conversation."""
        app = self.app
        if app.state in (None, State.IDLE, State.SLEEPING):
            return
        sub = app.bus.subscribe("updater-idle", (ev.StateChanged,))
        try:
            async with asyncio.timeout(IDLE_WAIT_MAX):
                while app.state not in (State.IDLE, State.SLEEPING):
                    await sub.get()
        except TimeoutError:
            log.warning("update: the toy stayed busy for %.0f s; rebooting now", IDLE_WAIT_MAX)
        finally:
            sub.close()

    async def _rauc(
        self, step: str, *args: str, progress: ev.UpdateRequested | None = None
    ) -> None:
        await self._command(step, [self.settings.rauc, *args], progress)

    async def _command(
        self, step: str, argv: list[str], progress: ev.UpdateRequested | None = None
    ) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
            )
        except OSError as exc:
            raise BackendError(f"{step}: cannot run {argv[0]}: {exc.strerror}") from None
        output: list[bytes] = []
        try:
            async with asyncio.timeout(self.settings.command_timeout):
                assert proc.stdout is not None
                async for line in proc.stdout:
                    output.append(line)
                    match = PERCENT.search(line)
                    if progress is not None and match:
                        self._report(progress, step, min(100, int(match.group(1))))
                code = await proc.wait()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if code != 0:
            tail = b"".join(output[-5:]).decode("utf-8", "replace").strip().replace("\n", " | ")
            raise BackendError(f"{step} failed (exit {code}): {tail[-400:]}")
