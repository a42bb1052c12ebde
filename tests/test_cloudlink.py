"""The toy's cloud link against a real gateway: barge-in, reconnect, refusal, reply timeout, say, TLS."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from linkkit import cloud_and_toy, cloud_config, device_config, play_reply, speak_turn, speech
from toyd import PluginDeclaration, State, hookimpl
from toyd import events as ev
from toyd.testing import free_port, next_event, running_daemon, wait_for


async def test_barge_in_drops_every_stale_frame(tmp_path):
    # a 2 s lead puts most of the old reply on the wire before the child interrupts
    async with cloud_and_toy(
        tmp_path, gateway={"downlink_lead_ms": 2000}, sections={"echochain": {"repeat": 4}}
    ) as (cloud, toy, sub):
        await speak_turn(toy, sub, speech())
        first = await next_event(sub, ev.ReplyAudio, timeout=10)
        toy.bus.publish(ev.PlaybackStarted(response_id=first.response_id))
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.SPEAKING)
        for _ in range(10):
            await next_event(sub, ev.ReplyAudio)
        toy.bus.publish(ev.ButtonPressed())  # barge-in
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
        toy.bus.publish(ev.PlaybackFinished(response_id=first.response_id, interrupted=True))
        # everything from here on: not one frame of the old response may reach the speaker
        await speak_turn_from_listening(toy, sub, speech("what is your name"))
        seen: list[ev.Event] = []
        while True:
            event = await next_event(sub, (ev.ReplyAudio, ev.ReplyAudioEnd), timeout=10)  # type: ignore[arg-type]
            seen.append(event)
            if isinstance(event, ev.ReplyAudioEnd):
                break
        old = [e for e in seen if e.response_id == first.response_id]
        assert old == []
        assert seen[-1].response_id != first.response_id and len(seen) > 10
        gateway = cloud.host.plugins["gateway"].gateway
        assert gateway.sessions["toy-1"].phase.value == "idle"  # the old response's work is gone


async def test_frames_a_server_keeps_sending_after_abort_never_reach_the_speaker(tmp_path):
    """Even a lagging server that streams on after the abort cannot get a stale frame played."""
    from websockets.asyncio.server import serve

    from toyd.audio import FRAME_BYTES
    from toyd.audio.opus import OpusEncoder
    from toyd.protocol import ServerHello, Tts, encode, pack_audio, parse

    aborted = asyncio.Event()
    packet = OpusEncoder().encode(bytes(FRAME_BYTES))

    async def lagging_server(conn):
        turn = None
        response = 0
        async for frame in conn:
            if isinstance(frame, bytes):
                continue
            msg = parse(frame, "up")
            if msg.type == "hello":
                await conn.send(encode(ServerHello(session_id="s1")))
            elif msg.type == "listen" and msg.state == "start":
                turn = msg.turn_id
            elif msg.type == "listen" and msg.state == "stop":
                response += 1
                await conn.send(encode(Tts(state="start", response_id=response, turn_id=turn)))
                if response == 1:
                    for seq in range(1000):  # streams on, abort or not
                        await conn.send(pack_audio(response, seq, packet))
                        await asyncio.sleep(0.002)
                        if aborted.is_set() and seq > 40:
                            break
                    for seq in range(1000, 1050):  # and 50 more after it saw the abort
                        await conn.send(pack_audio(response, seq, packet))
                else:
                    for seq in range(20):
                        await conn.send(pack_audio(response, seq, packet))
                await conn.send(encode(Tts(state="stop", response_id=response, turn_id=turn)))
            elif msg.type == "abort":
                aborted.set()

    port = free_port()
    async with serve(lagging_server, "127.0.0.1", port):
        async with running_daemon(device_config(port), state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test", maxsize=100000)
            await next_event(sub, ev.CloudOnline, timeout=10)
            receiver = toy.host.plugins["cloudlink"].downlink
            await speak_turn(toy, sub, speech("hi"))
            first = await next_event(sub, ev.ReplyAudio, timeout=5)
            toy.bus.publish(ev.PlaybackStarted(response_id=first.response_id))
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.SPEAKING)
            toy.bus.publish(ev.ButtonPressed())  # barge-in while frames pour in
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
            await asyncio.wait_for(aborted.wait(), 5)
            await speak_turn_from_listening(toy, sub, speech("hi"))
            seen = []
            while not seen or not isinstance(seen[-1], ev.ReplyAudioEnd):
                seen.append(await next_event(sub, (ev.ReplyAudio, ev.ReplyAudioEnd), timeout=10))  # type: ignore[arg-type]
            assert [e for e in seen if e.response_id == first.response_id] == []
            assert len(seen) == 21 and receiver.stale_frames >= 50


async def speak_turn_from_listening(toy, sub, pcm: bytes) -> None:
    """The rest of a turn whose LISTENING already began (barge-in)."""
    from toyd.audio import frames

    for seq, frame in enumerate(frames(pcm)):
        toy.bus.publish(ev.AudioFrame(pcm=frame, seq=seq))
        await asyncio.sleep(0.01)
    toy.bus.publish(ev.SpeechEnded())
    await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.THINKING)


def _start_cloud_process(config_file, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "toyd", "cloud", "-c", str(config_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc


async def test_device_reconnects_after_the_server_is_killed(tmp_path):
    import yaml

    port = free_port()
    config_file = tmp_path / "cloud.yaml"
    config_file.write_text(
        yaml.safe_dump({**cloud_config(port), "state_dir": str(tmp_path / "cloud")})
    )
    proc = _start_cloud_process(config_file, port)
    try:
        async with running_daemon(
            device_config(port, backoff_max=0.3), state_dir=tmp_path / "toy"
        ) as toy:
            sub = toy.bus.subscribe("test", (ev.CloudOnline, ev.CloudOffline))
            await next_event(sub, ev.CloudOnline, timeout=15)
            proc.kill()  # no close frame, no goodbye
            proc.wait(5)
            offline = await next_event(
                sub, ev.CloudOffline, timeout=45
            )  # keepalive or EOF notices it
            assert offline.backend == "cloudlink" and offline.reason
            proc = _start_cloud_process(config_file, port)
            await next_event(sub, ev.CloudOnline, timeout=15)
            assert toy.host.plugins["cloudlink"].link.connects == 2
    finally:
        proc.kill()
        proc.wait(5)


async def test_bad_token_keeps_the_toy_offline(tmp_path):
    port = free_port()
    async with running_daemon(cloud_config(port), state_dir=tmp_path / "cloud"):
        async with running_daemon(
            device_config(port, token="not-the-token"), state_dir=tmp_path / "toy"
        ) as toy:
            sub = toy.bus.subscribe("test", (ev.CloudOnline, ev.CloudOffline))
            offline = await next_event(sub, (ev.CloudOnline, ev.CloudOffline), timeout=10)  # type: ignore[arg-type]
            assert isinstance(offline, ev.CloudOffline) and offline.reason == "refused: HTTP 401"
            assert toy.offline


class SlowChain:
    """A chain whose speech-to-text never finishes in time."""

    def __init__(self) -> None:
        self.cancelled = asyncio.Event()

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud",))

    @hookimpl
    async def toyd_transcribe(self, turn, pcm, sample_rate):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


async def test_reply_timeout_hands_the_turn_to_a_local_backend(tmp_path):
    async with cloud_and_toy(
        tmp_path,
        plugins=("gateway", "echochain", "slow"),
        extra_plugins={"slow": SlowChain},
        link={"reply_timeout": 0.5},
    ) as (cloud, toy, sub):
        await speak_turn(toy, sub, speech())
        timeout = await next_event(sub, ev.ReplyTimeout, timeout=5)
        assert timeout.reason == "reply_timeout" and timeout.turn_id
        # the cloud was told: the slow work for that turn is cancelled, and no audio comes
        await asyncio.wait_for(cloud.host.plugins["slow"].cancelled.wait(), 5)
        with pytest.raises(TimeoutError):
            await next_event(sub, ev.ReplyAudio, timeout=0.5)


async def test_an_utterance_the_cloud_cuts_ends_the_turn_on_the_toy(tmp_path):
    """The gateway cuts at max_listen_seconds: the toy stops listening (SpeechEnded max_length), stops
    sending, and plays the answer to what was heard; nothing counts as a protocol error."""
    from toyd.audio import frames

    async with cloud_and_toy(tmp_path, gateway={"max_listen_seconds": 1.0}) as (cloud, toy, sub):
        toy.bus.publish(ev.ButtonPressed())
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
        link = toy.host.plugins["cloudlink"]

        async def child_keeps_talking() -> (
            None
        ):  # 4 s at real time: the microphone does not know about the cut
            for seq, frame in enumerate(
                frames(speech("once upon a time there was a little bear") * 2)
            ):
                toy.bus.publish(ev.AudioFrame(pcm=frame, seq=seq))
                await asyncio.sleep(0.02)

        talking = asyncio.ensure_future(child_keeps_talking())
        try:
            ended = await next_event(sub, ev.SpeechEnded, timeout=5)
            assert ended.reason == "max_length"
            await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.THINKING)
            _, reply = await play_reply(toy, sub)
            assert 45 <= len(reply) <= 55  # the echo of the 1 s that was heard
            assert not talking.done(), "the toy moved on while the child was still talking"
        finally:
            talking.cancel()
            await asyncio.gather(talking, return_exceptions=True)
        session = cloud.host.plugins["gateway"].gateway.sessions["toy-1"]
        assert session.errors == 0
        assert (
            link.frames_sent <= 50 + session.uplink.frames_after_cut
        )  # nothing was sent once the stop arrived


async def test_say_is_spoken_when_idle(tmp_path):
    async with cloud_and_toy(tmp_path, sections={"echochain": {"silence_ms": 400}}) as (
        cloud,
        toy,
        sub,
    ):
        toy.bus.publish(ev.SayRequested(text="Time for bed!", request_id="r1"))
        response_id, frames = await play_reply(toy, sub)
        assert len(frames) == 20  # 400 ms
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.IDLE)


def _self_signed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_wss_with_a_private_ca(tmp_path):
    cert, key = _self_signed(tmp_path)
    port = free_port()
    config = cloud_config(port, tls_cert=str(cert), tls_key=str(key))
    async with running_daemon(config, state_dir=tmp_path / "cloud"):
        trusted = device_config(port, ca_file=str(cert))
        trusted["cloudlink"]["url"] = f"wss://127.0.0.1:{port}"
        async with running_daemon(trusted, state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test", (ev.CloudOnline, ev.CloudOffline))
            assert isinstance(
                await next_event(sub, (ev.CloudOnline, ev.CloudOffline), timeout=10), ev.CloudOnline
            )  # type: ignore[arg-type]
        untrusted = device_config(port, device_id="toy-1")
        untrusted["cloudlink"]["url"] = f"wss://127.0.0.1:{port}"
        async with running_daemon(untrusted, state_dir=tmp_path / "toy2") as toy:
            sub = toy.bus.subscribe("test", (ev.CloudOnline, ev.CloudOffline))
            offline = await next_event(sub, (ev.CloudOnline, ev.CloudOffline), timeout=10)  # type: ignore[arg-type]
            assert (
                isinstance(offline, ev.CloudOffline)
                and "CERTIFICATE_VERIFY_FAILED" in offline.reason
            )


async def test_persona_and_mode_reach_the_cloud(tmp_path):
    async with cloud_and_toy(tmp_path) as (cloud, toy, sub):
        gateway = cloud.host.plugins["gateway"].gateway
        toy.bus.publish(ev.PersonaSet(persona="dragon"))
        await speak_turn(toy, sub, speech())
        session = await wait_for(lambda: gateway.sessions.get("toy-1"))
        assert (session.persona, session.mode) == ("dragon", "push_to_talk")
        await play_reply(toy, sub)
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.IDLE)
        toy.bus.publish(ev.WakeWordDetected(model="hey_bear", score=0.9))
        await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
        await wait_for(lambda: session.mode == "wake_word")


async def test_reconfigure_applies_timeouts_live_and_asks_a_restart_for_a_new_url(tmp_path):
    from toyd.config import validate
    from toyd.registry import Registry

    registry = Registry()

    def config(port: int, **link):  # type: ignore[no-untyped-def]
        data = {**device_config(port, **link), "state_dir": str(tmp_path / "toy")}
        return validate(data, registry.schema, known_plugins=registry.names)

    async with cloud_and_toy(tmp_path) as (cloud, toy, sub):
        port = int(toy.config.section("cloudlink").url.rsplit(":", 1)[1])
        plugin = toy.host.plugins["cloudlink"]
        assert await toy.apply_config(config(port, reply_timeout=2.5, persona="owl")) == []
        assert plugin.downlink.reply_timeout == 2.5 and plugin.persona == "owl"
        assert await toy.apply_config(config(port + 1)) == ["cloudlink"]


async def test_a_turn_whose_link_dropped_is_handed_to_a_local_backend_at_once(tmp_path):
    import contextlib

    from toyd.audio import frames

    port = free_port()
    cloud_stack = contextlib.AsyncExitStack()
    try:
        await cloud_stack.enter_async_context(
            running_daemon(cloud_config(port), state_dir=tmp_path / "cloud")
        )
        async with running_daemon(device_config(port), state_dir=tmp_path / "toy") as toy:
            sub = toy.bus.subscribe("test", maxsize=100000)
            await next_event(sub, ev.CloudOnline, timeout=10)
            for attempt in ("down", "back"):
                toy.bus.publish(ev.ButtonPressed())
                await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.LISTENING)
                for frame in list(frames(speech()))[:10]:
                    toy.bus.publish(ev.AudioFrame(pcm=frame))
                await cloud_stack.aclose()  # the cloud goes away mid-utterance
                await next_event(sub, ev.CloudOffline, timeout=10)
                if attempt == "back":  # ... and comes back before the child stops talking
                    await cloud_stack.enter_async_context(
                        running_daemon(cloud_config(port), state_dir=tmp_path / "c2")
                    )
                    await next_event(sub, ev.CloudOnline, timeout=10)
                toy.bus.publish(ev.SpeechEnded())
                lost = await next_event(
                    sub, ev.ReplyTimeout, timeout=1
                )  # at once, not after reply_timeout
                assert lost.reason == "link_lost" and lost.turn_id
                toy.bus.publish(ev.TurnFailed(reason="test: no local backend"))
                await next_event(sub, ev.StateChanged, where=lambda e: e.new is State.IDLE)
                if attempt == "down":
                    await cloud_stack.enter_async_context(
                        running_daemon(cloud_config(port), state_dir=tmp_path / "c1")
                    )
                    await next_event(sub, ev.CloudOnline, timeout=10)
    finally:
        await cloud_stack.aclose()
