"""Over-the-air updates on the toy: cmd/update over MQTT, resumable checksummed download from a
real HTTP server, the signature checked by the real RAUC against the toy's keyring, progress on
MQTT. Installing into a slot needs the A/B image: that part runs in QEMU (image/update-test.sh).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
from aiohttp import web

from mqtt_support import Probe
from toyd import events as ev
from toyd.testing import free_port, next_event, running_daemon, start_mosquitto, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "image"))
from toyd_image import update  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which("rauc") and shutil.which("mksquashfs")),
    reason="needs rauc and squashfs-tools (apt)",
)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, Path]:
    """A real signed bundle, the same signed by a stranger, and the toy's keyring."""
    tmp = tmp_path_factory.mktemp("bundles")
    app = tmp / "app"
    (app / "venv/bin").mkdir(parents=True)
    (app / "RELEASE").write_text("0.2.0\n")
    (app / "venv/bin/toyd").write_bytes(
        bytes(range(256)) * 4000
    )  # some content that does not compress away
    slot = tmp / "slot.ext4"
    update.make_app_image(app, slot, 16)
    cert, key = update.dev_keys(tmp / "keys")
    other_cert, other_key = update.dev_keys(tmp / "stranger")
    return {
        "good": update.bundle(slot, "0.2.0", cert, key, tmp / "good.raucb"),
        "stranger": update.bundle(slot, "0.2.0", other_cert, other_key, tmp / "stranger.raucb"),
        "keyring": cert,
    }


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class BundleServer:
    """Serves files with Range support (aiohttp); the first GET of /flaky/* breaks off halfway."""

    def __init__(self, files: dict[str, Path]) -> None:
        self.files = files
        self.requests: list[tuple[str, str]] = []
        self.broke = False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        self.requests.append((request.path, request.headers.get("Range", "")))
        path = self.files[name]
        if request.path.startswith("/flaky/") and not self.broke:
            self.broke = True
            data = path.read_bytes()
            response = web.StreamResponse(headers={"Content-Length": str(len(data))})
            await response.prepare(request)
            await response.write(data[: len(data) // 2])
            request.transport.close()  # the Wi-Fi drops in the middle
            return response
        return web.FileResponse(path)

    async def __aenter__(self) -> str:
        app = web.Application()
        app.router.add_get("/files/{name}", self.handle)
        app.router.add_get("/flaky/{name}", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        self.port = free_port()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()
        return f"http://127.0.0.1:{self.port}"

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()


def fake_rauc(tmp: Path, log: Path) -> Path:
    """``rauc`` for a toy without slots: ``info`` is the real rauc, ``install`` reports progress."""
    script = tmp / "rauc"
    script.write_text(f"""#!/bin/sh
if [ "$1" = info ]; then exec {shutil.which("rauc")} "$@"; fi
echo "$@" >> {log}
echo "  0% Installing"; echo " 50% Copying image to toyd.1"; echo "100% Installing done."
""")
    script.chmod(0o755)
    return script


def toy(tmp: Path, mqtt_port: int, keyring: Path, **updater) -> dict:
    return {
        "role": "device",
        "device_id": "toy-1",
        "plugins": ["mqtt", "updater"],
        "mqtt": {"port": mqtt_port},
        "updater": {"keyring": str(keyring), **updater},
    }


async def test_cmd_update_downloads_resumes_verifies_installs_and_reports_on_mqtt(
    tmp_path, bundles
):
    log = tmp_path / "installs.log"
    server = BundleServer({"b.raucb": bundles["good"]})
    async with server as base:
        with start_mosquitto() as (_, mqtt_port):
            probe = Probe(mqtt_port, subscribe=("toyd/toy-1/#",))
            try:
                config = toy(
                    tmp_path, mqtt_port, bundles["keyring"], rauc=str(fake_rauc(tmp_path, log))
                )
                async with running_daemon(config, state_dir=tmp_path / "state") as app:
                    await wait_for(lambda: probe.on("toyd/toy-1/status"), timeout=10)
                    probe.publish(
                        "toyd/toy-1/cmd/update",
                        json.dumps(
                            {
                                "url": f"{base}/flaky/b.raucb",
                                "sha256": sha(bundles["good"]),
                                "version": "0.2.0",
                                "request_id": "u1",
                            }
                        ),
                    )

                    # the first attempt breaks off halfway: a second command resumes the download
                    def events() -> list[dict]:
                        return [json.loads(p) for p in probe.on("toyd/toy-1/event/update")]

                    await wait_for(
                        lambda: any(e["stage"] == "failed" for e in events()), timeout=15
                    )
                    probe.publish(
                        "toyd/toy-1/cmd/update",
                        json.dumps(
                            {
                                "url": f"{base}/flaky/b.raucb",
                                "sha256": sha(bundles["good"]),
                                "version": "0.2.0",
                                "request_id": "u2",
                            }
                        ),
                    )
                    await wait_for(
                        lambda: (app.state_dir / "reboot-requested").exists(), timeout=20
                    )
                stages = [(e["stage"], e["request_id"]) for e in events()]
                assert (
                    ("verify", "u2") in stages
                    and ("install", "u2") in stages
                    and ("reboot", "u2") in stages
                )
                assert any(e["stage"] == "install" and e["percent"] == 50 for e in events())
                assert log.read_text().split()[:2] == ["install", "--progress"]
                assert server.requests[0][1] == "" and server.requests[1][1].startswith(
                    "bytes="
                )  # resumed
            finally:
                probe.close()


async def test_resume_asks_for_the_rest_only(tmp_path, bundles):
    from toyd_plugins.updater.download import fetch

    server = BundleServer({"b.raucb": bundles["good"]})
    loop = asyncio.get_running_loop()

    async def blocking(func, *args):
        return await loop.run_in_executor(None, func, *args)

    async with server as base:
        with pytest.raises(Exception):
            await fetch(
                f"{base}/flaky/b.raucb",
                sha(bundles["good"]),
                tmp_path,
                max_bytes=10**9,
                run_blocking=blocking,
                progress=lambda d, t: None,
            )
        half = (tmp_path / f"{sha(bundles['good'])}.part").stat().st_size
        assert 0 < half < bundles["good"].stat().st_size
        path = await fetch(
            f"{base}/flaky/b.raucb",
            sha(bundles["good"]),
            tmp_path,
            max_bytes=10**9,
            run_blocking=blocking,
            progress=lambda d, t: None,
        )
    assert path.read_bytes() == bundles["good"].read_bytes()
    assert server.requests[1][1] == f"bytes={half}-"


@pytest.mark.parametrize("case", ["stranger", "tampered", "wrong_sha"])
async def test_a_bad_bundle_is_refused_and_nothing_is_installed(tmp_path, bundles, case):
    log = tmp_path / "installs.log"
    served = bundles["stranger"] if case == "stranger" else tmp_path / "tampered.raucb"
    if case == "tampered":
        data = bytearray(bundles["good"].read_bytes())
        data[len(data) // 3] ^= 0xFF  # one flipped byte inside the signed image
        served.write_bytes(bytes(data))
    digest = sha(served) if case != "wrong_sha" else "0" * 64
    if case == "wrong_sha":
        served = bundles["good"]
    async with BundleServer({"b.raucb": served}) as base:
        with start_mosquitto() as (_, mqtt_port):
            config = toy(
                tmp_path, mqtt_port, bundles["keyring"], rauc=str(fake_rauc(tmp_path, log))
            )
            async with running_daemon(config, state_dir=tmp_path / "state") as app:
                sub = app.bus.subscribe("test", (ev.UpdateProgress,))
                app.bus.publish(
                    ev.UpdateRequested(url=f"{base}/files/b.raucb", sha256=digest, version="0.2.0")
                )
                failed = await next_event(
                    sub, ev.UpdateProgress, timeout=20, where=lambda e: e.stage == "failed"
                )
                expected = "checksum mismatch" if case == "wrong_sha" else "verify failed"
                assert expected in failed.error
                assert not log.exists()  # rauc install never ran
                assert list((app.state_dir / "updates").iterdir()) == []  # the bad file is gone


async def test_staged_rollout_sends_cmd_update_to_a_stable_share_of_the_fleet(tmp_path, capsys):
    import yaml

    from toyd.cli import main as toyd_main
    from toyd_plugins.rollout.plugin import pick

    fleet = [f"toy-{n}" for n in range(60)]
    first, wider = pick(fleet, "0.2.0", 10), pick(fleet, "0.2.0", 50)
    assert 0 < len(first) < len(wider) < len(fleet) and set(first) <= set(wider)
    with start_mosquitto() as (_, mqtt_port):
        probe = Probe(mqtt_port, subscribe=("toyd/+/cmd/update",))
        try:
            (tmp_path / "fleet.txt").write_text("\n".join(fleet) + "\n")
            config = tmp_path / "cloud.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "role": "cloud",
                        "device_id": "cloud",
                        "state_dir": str(tmp_path),
                        "plugins": ["rollout"],
                        "rollout": {"port": mqtt_port, "toys_file": str(tmp_path / "fleet.txt")},
                    }
                )
            )
            code = await asyncio.to_thread(
                toyd_main,
                [
                    "cloud",
                    "rollout",
                    "http://dl.example/b.raucb",
                    "--sha256",
                    "a" * 64,
                    "--version",
                    "0.2.0",
                    "--percent",
                    "10",
                    "-c",
                    str(config),
                ],
            )
            assert code == 0
            await wait_for(lambda: len([m for m in probe.messages]) >= len(first), timeout=10)
            got = sorted(t.split("/")[1] for t, _, _ in probe.messages)
            assert got == sorted(first)
            payload = json.loads(probe.messages[0][1])
            assert payload["version"] == "0.2.0" and payload["sha256"] == "a" * 64
            assert f"{len(first)} of 60 toys" in capsys.readouterr().out
        finally:
            probe.close()
