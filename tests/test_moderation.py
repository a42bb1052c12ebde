"""The moderation plugin against a local stand-in for the paid /v1/moderations API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from toyd.errors import ConfigError
from toyd.schema import build
from toyd.testing import running_daemon
from toyd.turn import Turn
from toyd_plugins.moderation import ModerationClient, ModerationError, ModerationSettings

TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")
KEY = "sk-test-123"
# The stand-in flags a text when it contains one of these words, in that API category.
FLAG_WORDS = {
    "unicornkill": ("violence", 0.95),
    "sadtrigger": ("self-harm/intent", 0.9),
    "rudeword": ("harassment", 0.6),
    "weirdcat": ("unmapped/category", 0.99),
}


class StandIn(ThreadingHTTPServer):
    """An OpenAI-compatible /v1/moderations server with scripted answers and failure modes."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"  # ok | error | malformed | slow
        self.received: list[dict[str, Any]] = []
        self.auth: list[str | None] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.received.append(body)
        self.server.auth.append(self.headers.get("Authorization"))
        if self.path != "/v1/moderations":
            return self._send(404, b'{"error": "not found"}')
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            return self._send(401, b'{"error": {"message": "Incorrect API key provided"}}')
        mode = self.server.mode
        if mode == "error":
            return self._send(500, b'{"error": "overloaded"}')
        if mode == "malformed":
            return self._send(200, b'{"results": "nope"}')
        if mode == "slow":
            time.sleep(1.0)
        text = body["input"].lower()
        cats = {name: False for name, _ in FLAG_WORDS.values()}
        scores = {name: 0.01 for name, _ in FLAG_WORDS.values()}
        for word, (name, score) in FLAG_WORDS.items():
            if word in text:
                cats[name], scores[name] = True, score
        result = {"flagged": any(cats.values()), "categories": cats, "category_scores": scores}
        self._send(
            200, json.dumps({"id": "modr-1", "model": body["model"], "results": [result]}).encode()
        )

    def _send(self, status: int, payload: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout test)


@pytest.fixture
def api() -> Iterator[StandIn]:
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, name="moderation-stand-in", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def cloud(api: StandIn, plugins: list[str] | None = None, **moderation: Any) -> dict[str, Any]:
    section = {"base_url": api.base_url, "api_key": KEY, "timeout": 0.5, **moderation}
    return {"role": "cloud", "plugins": plugins or ["safety", "moderation"], "moderation": section}


async def check(app: Any, text: str, speaker: str = "child") -> Any:
    return await app.host.call_first("toyd_check_text", turn=TURN, text=text, speaker=speaker)


async def test_api_flag_becomes_a_verdict_under_the_safety_policy(
    api: StandIn, state_dir: Path
) -> None:
    config = cloud(api)
    config["safety"] = {"categories": {"violence": {"lines": ["Gentle hands!"]}}}
    async with running_daemon(config, state_dir=state_dir) as app:
        verdict = await check(app, "the unicornkill thing")
        assert (verdict.category, verdict.severity, verdict.action) == ("violence", "high", "block")
        assert verdict.replacement == "Gentle hands!" and verdict.alert
        caring = await check(app, "sadtrigger")
        assert (
            caring.category == "self_harm"
            and caring.alert
            and "grown-up you trust" in caring.replacement
        )
        mild = await check(app, "rudeword")
        assert (mild.category, mild.severity, mild.action) == (
            "hate_bullying",
            "medium",
            "redirect",
        )
    assert api.auth[0] == f"Bearer {KEY}" and api.received[0]["model"] == "omni-moderation-latest"


async def test_clean_api_answer_lets_the_local_filter_decide(api: StandIn, state_dir: Path) -> None:
    async with running_daemon(cloud(api), state_dir=state_dir) as app:
        # the API sees nothing; the local lexicon still catches grooming and redacts
        groom = await check(app, "Where do you live?", "toy")
        assert groom.category == "grooming"
        clean = await check(app, "my number is 555-123-4567")
        assert clean.text == "my number is [phone]" and clean.safe
        # an API category nobody mapped is ignored, the local filter answers
        assert (await check(app, "weirdcat")).category is None
    assert len(api.received) == 3


async def test_personal_information_never_reaches_the_api(api: StandIn, state_dir: Path) -> None:
    async with running_daemon(cloud(api), state_dir=state_dir) as app:
        await check(app, "my email is kid@example.com and I live at 42 Maple Street")
    assert api.received[0]["input"] == "my email is [email] and I live at [address]"


@pytest.mark.parametrize("mode", ["error", "malformed", "slow", "down", "badkey"])
async def test_api_failure_falls_back_to_the_local_filter(
    api: StandIn, state_dir: Path, mode: str
) -> None:
    config = cloud(api)
    if mode == "down":
        config["moderation"]["base_url"] = "http://127.0.0.1:9/v1"
    elif mode == "badkey":
        config["moderation"]["api_key"] = "wrong"
    else:
        api.mode = mode
    async with running_daemon(config, state_dir=state_dir) as app:
        assert (await check(app, "I want to kill myself")).category == "self_harm"
        assert (await check(app, "unicornkill")).category is None  # only the API knew this word
        assert (await check(app, "hello there")).safe


async def test_api_failure_fails_closed_when_configured(api: StandIn, state_dir: Path) -> None:
    api.mode = "error"
    async with running_daemon(cloud(api, on_error="block"), state_dir=state_dir) as app:
        unchecked = await check(app, "hello there")
        assert (unchecked.safe, unchecked.action, unchecked.category) == (
            False,
            "redirect",
            "unchecked",
        )
        assert unchecked.replacement and not unchecked.alert
        local = await check(app, "I want to kill myself")  # the local verdict keeps its alert
        assert local.category == "self_harm" and local.alert


async def test_api_flag_in_an_allowed_category_is_ignored(api: StandIn, state_dir: Path) -> None:
    config = cloud(api)
    config["safety"] = {"categories": {"violence": {"action": "allow"}}}
    async with running_daemon(config, state_dir=state_dir) as app:
        assert (
            await check(app, "unicornkill")
        ).safe  # the policy says allow: the local filter answers


async def test_category_mapping_overrides_and_ignores(api: StandIn, state_dir: Path) -> None:
    mapping = {"violence": "ignore", "harassment": "profanity", "unmapped/category": "sexual"}
    async with running_daemon(cloud(api, categories=mapping), state_dir=state_dir) as app:
        assert (
            await check(app, "unicornkill")
        ).category is None  # ignored: the local filter answered
        assert (await check(app, "rudeword")).category == "profanity"
        assert (await check(app, "weirdcat")).category == "sexual"
        assert (await check(app, "sadtrigger")).category == "self_harm"  # built-in entries stay


async def test_speakers_setting_skips_the_api(api: StandIn, state_dir: Path) -> None:
    async with running_daemon(cloud(api, speakers=["child"]), state_dir=state_dir) as app:
        assert (await check(app, "unicornkill", "toy")).category is None
        assert (await check(app, "unicornkill", "child")).category == "violence"
    assert len(api.received) == 1


async def test_threshold_uses_scores(api: StandIn, state_dir: Path) -> None:
    async with running_daemon(cloud(api, threshold=0.7), state_dir=state_dir) as app:
        assert (await check(app, "rudeword")).category is None  # flagged by the API, but scored 0.6
        assert (await check(app, "unicornkill")).category == "violence"


async def test_moderation_alone_declines_clean_texts(api: StandIn, state_dir: Path) -> None:
    async with running_daemon(cloud(api, plugins=["moderation"]), state_dir=state_dir) as app:
        assert await check(app, "hello") is None  # no local filter: the gateway's default applies
        assert (await check(app, "unicornkill")).category == "violence"


def test_client_errors_are_clear(api: StandIn) -> None:
    client = ModerationClient(api.base_url, "m", KEY, timeout=0.3)
    api.mode = "malformed"
    with pytest.raises(ModerationError, match="malformed response"):
        client.moderate("x")
    api.mode = "error"
    with pytest.raises(ModerationError, match="HTTP 500"):
        client.moderate("x")
    api.mode = "slow"
    with pytest.raises(ModerationError, match="no answer within 0.3 s"):
        client.moderate("x")
    with pytest.raises(ModerationError, match="cannot connect"):
        ModerationClient("http://127.0.0.1:9/v1", "m", None, 0.5).moderate("x")


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"categories": {"violence": "gore"}}, "unknown safety category 'gore'"),
        ({"on_error": "explode"}, "moderation.on_error"),
        ({"base_url": "api.example.com"}, "must start with http"),
        ({"timeout": 0}, "out of range"),
    ],
)
def test_settings_errors_are_clear(data: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        build(ModerationSettings, data, path="moderation")
