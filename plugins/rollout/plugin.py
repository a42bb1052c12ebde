"""The ``rollout`` plugin (cloud role): ``toyd cloud rollout`` updates a stage of the fleet.

A stage is a percentage: each toy's place is a hash of the version and its device id, so
``--percent 5`` picks the same 5 % every time and ``--percent 25`` later adds 20 % more
(the first 5 % answer "done" at once: they already run the version). The command is the
parents' ``cmd/update`` over MQTT; the toys' progress (``event/update``) is printed as it
arrives, so an operator watches the first stage before widening it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import hashlib
import json
import logging
import re
import time
from pathlib import Path

from toyd import PluginDeclaration, hookimpl, setting
from toyd.errors import ToydError
from toyd.mqtt import BrokerSettings
from toyd.mqtt.bridge import MqttBridge
from toyd.plugin import CliCommand

log = logging.getLogger(__name__)
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
DEFAULT_CONFIG = "/etc/toyd/cloud.yaml"


@dataclasses.dataclass(frozen=True)
class RolloutSettings(BrokerSettings):
    """Settings of the ``rollout`` section: the broker the toys listen on."""

    toys_file: str = setting(
        "", doc="File listing the fleet's device ids, one a line (for --percent without --toys)."
    )


def stage_of(version: str, device_id: str) -> int:
    """0-99: the toy is in a ``--percent P`` rollout of ``version`` when this is below P."""
    return (
        int.from_bytes(hashlib.sha256(f"{version}\0{device_id}".encode()).digest()[:4], "big") % 100
    )


def pick(toys: list[str], version: str, percent: int) -> list[str]:
    return [t for t in toys if stage_of(version, t) < percent]


def _args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="where toys download the bundle (http:// or https://)")
    parser.add_argument("--sha256", required=True, help="SHA-256 of the bundle (sha256sum)")
    parser.add_argument("--version", required=True, help="the bundle's version (its RELEASE)")
    parser.add_argument(
        "--percent", type=int, default=100, help="stage: this share of the fleet (default 100)"
    )
    parser.add_argument("--toys", help="comma-separated device ids (default: rollout.toys_file)")
    parser.add_argument(
        "--wait", type=float, default=0, help="seconds to print the toys' progress (default 0)"
    )
    parser.add_argument(
        "-c",
        "--config",
        default=DEFAULT_CONFIG,
        help=f"the cloud config (default {DEFAULT_CONFIG})",
    )


async def run(args: argparse.Namespace) -> int:
    from toyd.config import load_file
    from toyd.registry import Registry

    if not 0 < args.percent <= 100:
        raise ToydError("--percent must be 1-100")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", args.sha256):
        raise ToydError("--sha256 must be 64 hex digits")
    registry = Registry()
    config = load_file(args.config, registry.schema, registry.names)
    if "rollout" not in config.core.plugins:
        raise ToydError(f"{args.config}: the rollout plugin is not enabled")
    settings: RolloutSettings = config.section("rollout")
    if args.toys:
        fleet = [t.strip() for t in args.toys.split(",") if t.strip()]
    elif settings.toys_file:
        fleet = [
            line.strip()
            for line in Path(settings.toys_file).read_text().splitlines()  # noqa: ASYNC240 - once, at start
            if line.strip()
        ]
    else:
        raise ToydError("name the toys: --toys a,b,c or rollout.toys_file")
    bad = [t for t in fleet if not DEVICE_ID.match(t)]
    if bad:
        raise ToydError(f"not a device id: {bad[0]!r}")
    chosen = pick(fleet, args.version, args.percent)
    print(
        f"rollout {args.version}: {len(chosen)} of {len(fleet)} toys in the {args.percent} % stage"
    )
    seen: dict[str, str] = {}
    prefix = settings.topic_prefix

    def on_message(topic: str, payload: bytes, retained: bool) -> None:
        device = topic.split("/")[-3] if topic.count("/") >= 3 else "?"
        try:
            data = json.loads(payload)
            line = (
                f"{data.get('stage')} {data.get('percent', '')}% {data.get('error') or ''}".strip()
            )
        except ValueError:
            return
        if device in chosen and seen.get(device) != line:
            seen[device] = line
            print(f"  {device}: {line}")

    connected = asyncio.Event()
    bridge = MqttBridge(
        settings,
        client_id=f"toyd-rollout-{int(time.time())}",
        subscriptions=lambda: [f"{prefix}/+/event/update"],
        on_message=on_message,
        on_connected=connected.set,
    )
    await bridge.start()
    try:
        async with asyncio.timeout(15):
            await connected.wait()
        request_id = f"rollout-{args.version}"[:128]
        for device in chosen:
            payload = {
                "url": args.url,
                "sha256": args.sha256.lower(),
                "version": args.version,
                "request_id": request_id,
            }
            await bridge.publish(f"{prefix}/{device}/cmd/update", json.dumps(payload), qos=1)
        print(f"sent cmd/update to {len(chosen)} toys")
        if args.wait:
            await asyncio.sleep(args.wait)
    except TimeoutError:
        raise ToydError(f"cannot reach the MQTT broker {settings.host}:{settings.port}") from None
    finally:
        await bridge.stop()
    return 0


class RolloutPlugin:
    """Only a command; nothing runs in the daemon."""

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=RolloutSettings,
            summary="`toyd cloud rollout`: staged over-the-air updates of the fleet",
        )

    @hookimpl
    def toyd_cli_commands(self) -> list[CliCommand]:
        return [
            CliCommand(
                "rollout",
                "send an update bundle to a stage (a share) of the fleet",
                _args,
                run,
                description="Send cmd/update to --percent of the toys (the same ones each time for "
                "a version), then optionally watch their progress.\n\nexample: toyd cloud "
                "rollout https://dl.example.com/toyd-0.2.0.raucb --sha256 ... "
                "--version 0.2.0 --percent 5 --wait 600",
                parent="cloud",
            )
        ]
