"""Property test: thousands of random and mutated frames never crash the gateway or leak a task."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from linkkit import TOKEN, cloud_config, speech
from toyd.audio import FRAME_BYTES
from toyd.audio.opus import OpusEncoder
from toyd.testing import free_port, running_daemon

HEADERS = {"Authorization": f"Bearer {TOKEN}", "Device-Id": "toy-1", "Protocol-Version": "1"}
HELLO = {
    "type": "hello",
    "version": 1,
    "audio_params": {"format": "opus", "sample_rate": 16000, "channels": 1, "frame_duration": 20},
}
OPUS = OpusEncoder().encode(bytes(FRAME_BYTES))


class GatewayThread:
    """A real cloud daemon on its own event loop in a thread, so a sync client can hammer it."""

    def __init__(self, tmp) -> None:  # type: ignore[no-untyped-def]
        self.port = free_port()
        self.tmp = tmp
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.app: Any = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="gateway-under-test", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            config = cloud_config(self.port, hello_timeout=1.0, stage_timeout=5.0)
            async with running_daemon(config, state_dir=self.tmp / "cloud") as app:
                self.app = app
                self.ready.set()
                await self._stop.wait()

        try:
            self.loop.run_until_complete(main())
        finally:
            self.loop.close()

    def call(self, coro: Any, timeout: float = 10.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # not this one

        return self.call(count())

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)


@pytest.fixture
def gateway(tmp_path) -> Iterator[GatewayThread]:
    server = GatewayThread(tmp_path)
    server.thread.start()
    assert server.ready.wait(15), "the cloud daemon did not start"
    yield server
    server.stop()


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
types = st.sampled_from(
    ["hello", "listen", "abort", "playback", "say", "ping", "stt", "tts", "", "LISTEN", "mcp"]
)
messages = st.builds(
    lambda kind, fields: {"type": kind, **fields},
    types,
    st.dictionaries(
        st.sampled_from(
            [
                "state",
                "mode",
                "turn_id",
                "text",
                "reason",
                "response_id",
                "version",
                "audio_params",
                "persona",
                "language",
                "interrupted",
                "request_id",
                "id",
            ]
        ),
        json_values | st.sampled_from(["start", "stop", "detect", "done", "push_to_talk", "auto"]),
        max_size=5,
    ),
)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid-looking message with a few characters replaced, dropped or inserted."""
    text = json.dumps(draw(messages))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        text = text[:i] + draw(st.text(max_size=3)) + text[i + draw(st.integers(0, 3)) :]
    return text


binary = st.one_of(
    st.binary(min_size=0, max_size=200),
    st.just(OPUS),
    st.binary(min_size=1, max_size=8).map(lambda b: OPUS[: -len(b)] + b),
    st.integers(1400, 1600).map(bytes),
)
frames = st.one_of(
    messages.map(json.dumps), mutated(), st.text(max_size=50), json_values.map(json.dumps), binary
)
openings = st.sampled_from(
    [[], [json.dumps(HELLO)], [json.dumps(HELLO), json.dumps({"type": "listen", "state": "start"})]]
)


def throw(port: int, opening: list[str], body: list[str | bytes]) -> int:
    """Send one connection's worth of frames; returns how many went out."""
    sent = 0
    with connect(
        f"ws://127.0.0.1:{port}",
        additional_headers=HEADERS,
        proxy=None,
        compression=None,
        open_timeout=5,
        close_timeout=5,
    ) as conn:
        try:
            for frame in [*opening, *body]:
                conn.send(frame)
                sent += 1
            if opening:
                conn.send(json.dumps({"type": "ping", "id": 424242}))
                drain_until_pong(conn)
        except ConnectionClosed:
            pass  # the gateway may close a connection that misbehaves: cleanly, with a code
    return sent


def drain_until_pong(conn: ClientConnection, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            frame = conn.recv(timeout=max(deadline - time.monotonic(), 0.01))
        except TimeoutError:
            return
        if isinstance(frame, str) and '"pong"' in frame and "424242" in frame:
            return


def full_turn(port: int) -> dict[str, Any]:
    """A well-behaved toy's turn; returns the tts stop message."""
    from toyd.audio import frames as cut

    encoder = OpusEncoder()
    with connect(
        f"ws://127.0.0.1:{port}", additional_headers=HEADERS, proxy=None, compression=None
    ) as conn:
        conn.send(json.dumps(HELLO))
        conn.recv(timeout=5)
        conn.send(json.dumps({"type": "listen", "state": "start", "turn_id": "ok"}))
        for frame in list(cut(speech()))[:80]:
            conn.send(encoder.encode(frame))
        conn.send(json.dumps({"type": "listen", "state": "stop", "turn_id": "ok"}))
        while True:
            frame = conn.recv(timeout=10)
            if (
                isinstance(frame, str)
                and json.loads(frame).get("type") == "tts"
                and json.loads(frame)["state"] == "stop"
            ):
                return json.loads(frame)


def test_random_and_mutated_frames_never_crash_the_gateway_nor_leak_tasks(gateway, caplog):
    caplog.set_level(logging.ERROR)
    baseline = gateway.tasks()
    counts: list[int] = []

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(opening=openings, body=st.lists(frames, min_size=1, max_size=20))
    def one_connection(opening: list[str], body: list[str | bytes]) -> None:
        counts.append(throw(gateway.port, opening, body))

    one_connection()
    assert sum(counts) >= 1000, f"only {sum(counts)} frames were thrown"
    # the gateway still answers a well-behaved toy in full
    assert full_turn(gateway.port)["reason"] == "done"
    # every session and every task of those connections is gone
    deadline = time.monotonic() + 10
    while (
        gateway.tasks() > baseline or gateway.app.host.plugins["gateway"].gateway.sessions
    ) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.tasks() <= baseline
    assert not gateway.app.host.plugins["gateway"].gateway.sessions
    failures = [
        r
        for r in caplog.records
        if r.name.startswith(("websockets", "toyd", "asyncio"))
        and r.levelno >= logging.ERROR
        and "turn" not in r.getMessage()
    ]
    assert failures == [], [r.getMessage() for r in failures]
