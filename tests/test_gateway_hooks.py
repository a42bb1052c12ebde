"""The cloud AI-chain hooks as the gateway drives them: arguments, declining, raising."""

from __future__ import annotations

import asyncio
from typing import Any

from linkkit import RawToy, cloud, cloud_and_toy, play_reply, speak_turn, speech
from toyd import PluginDeclaration, hookimpl
from toyd import events as ev
from toyd.protocol import codes
from toyd.testing import next_event, wait_for
from toyd.turn import SafetyVerdict, Transcription


class Recorder:
    """Records every cloud hook call; ``behaviour`` picks what each hook does."""

    def __init__(self, **behaviour: Any) -> None:
        self.behaviour = behaviour
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed: list[str] = []

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(roles=("cloud",))

    def _act(self, hook: str, default: Any, **kwargs: Any) -> Any:
        self.calls.append((hook, kwargs))
        action = self.behaviour.get(hook, "answer")
        if action == "decline":
            return None
        if action == "raise":
            raise RuntimeError(f"{hook} broke")
        if callable(action):
            return action(**kwargs)
        return default

    @hookimpl
    def toyd_transcribe(self, turn, pcm, sample_rate):
        return self._act(
            "transcribe",
            Transcription(text="tell me a story", language="en"),
            turn=turn,
            pcm=pcm,
            sample_rate=sample_rate,
        )

    @hookimpl
    def toyd_check_text(self, turn, text, speaker):
        return self._act(
            "check", SafetyVerdict(safe=True, text=text), turn=turn, text=text, speaker=speaker
        )

    @hookimpl
    def toyd_reply(self, turn, text):
        async def stream():
            try:
                for piece in [
                    "Once upon a time ",
                    "there was a bear. ",
                    "The bear ",
                    "loved honey!",
                ]:
                    yield piece
            finally:
                self.closed.append("reply")

        return self._act("reply", stream(), turn=turn, text=text)

    @hookimpl
    def toyd_synthesize(self, turn, text):
        async def chunks():
            try:
                yield bytes(3200)
            finally:
                self.closed.append("synthesize")

        return self._act("synthesize", chunks(), turn=turn, text=text)

    def args(self, hook: str) -> list[dict[str, Any]]:
        return [kwargs for name, kwargs in self.calls if name == hook]


async def _turn(
    tmp_path, recorder: Recorder, *, plugins=("gateway", "recorder")
) -> tuple[list[dict], list[bytes]]:
    async with cloud(tmp_path, plugins=plugins, extra_plugins={"recorder": lambda: recorder}) as (
        app,
        port,
    ):
        toy = await RawToy(port).connect(persona="dragon", language="en")
        pcm = speech()
        await toy.talk(pcm, turn_id="turn-7")
        messages, audio = await toy.response()
        await toy.close()
        recorder.uplink_bytes = len(pcm)  # type: ignore[attr-defined]
        return messages, audio


def _errors(messages: list[dict]) -> list[str]:
    return [m["code"] for m in messages if m["type"] == "error"]


async def test_hook_toyd_transcribe(tmp_path):
    recorder = Recorder()
    messages, audio = await _turn(tmp_path, recorder)
    (call,) = recorder.args("transcribe")
    turn = call["turn"]
    assert (turn.device_id, turn.turn_id, turn.persona, turn.language) == (
        "toy-1",
        "turn-7",
        "dragon",
        "en",
    )
    assert turn.session_id and call["sample_rate"] == 16000
    assert abs(len(call["pcm"]) - recorder.uplink_bytes) < 640  # every uplink frame, decoded
    assert messages[0] == {
        "type": "stt",
        "text": "tell me a story",
        "final": True,
        "turn_id": "turn-7",
        "language": "en",
    }


async def test_hook_toyd_transcribe_declined_falls_through_then_fails_the_turn(tmp_path):
    # the recorder (registered last, asked first) declines: echochain answers
    messages, audio = await _turn(
        tmp_path, Recorder(transcribe="decline"), plugins=("gateway", "echochain", "recorder")
    )
    assert messages[0]["text"] == "echo"
    # nobody answers: the turn fails with a backend error, the session lives on
    messages, audio = await _turn(tmp_path / "b", Recorder(transcribe="decline"))
    assert _errors(messages) == [codes.BACKEND] and messages[-1]["reason"] == "error" and not audio


async def test_hook_toyd_transcribe_raising_fails_the_turn(tmp_path):
    messages, audio = await _turn(tmp_path, Recorder(transcribe="raise"))
    assert _errors(messages) == [codes.BACKEND] and "broke" in messages[0]["message"]
    assert messages[-1]["reason"] == "error"


async def test_hook_toyd_check_text(tmp_path):
    recorder = Recorder()
    messages, audio = await _turn(tmp_path, recorder)
    checks = [(c["speaker"], c["text"]) for c in recorder.args("check")]
    assert checks == [
        ("child", "tell me a story"),
        ("toy", "Once upon a time there was a bear."),
        ("toy", "The bear loved honey!"),
    ]
    assert audio


async def test_hook_toyd_check_text_declined_means_allowed(tmp_path):
    messages, audio = await _turn(tmp_path, Recorder(check="decline"))
    assert [m["text"] for m in messages if m.get("state") == "sentence_start"] == [
        "Once upon a time there was a bear.",
        "The bear loved honey!",
    ]


async def test_hook_toyd_check_text_raising_fails_closed(tmp_path):
    recorder = Recorder(check="raise")
    messages, audio = await _turn(tmp_path, recorder)
    assert recorder.args("reply") == []  # the child's words never reached the LLM
    start = next(m for m in messages if m.get("state") == "start")
    assert start["kind"] == "redirect"
    sentences = [m["text"] for m in messages if m.get("state") == "sentence_start"]
    assert sentences == ["Let's talk about something else!"]


async def test_hook_toyd_check_text_redirect_alerts_parents_on_both_sides(tmp_path):
    def judge(turn, text, speaker):
        if speaker == "child":
            return SafetyVerdict(
                safe=False,
                action="redirect",
                category="violence",
                severity="high",
                text="[redacted]",
                replacement="Let's play a game instead!",
                alert=True,
            )
        return SafetyVerdict(safe=True, text=text)

    recorder = Recorder(check=judge)
    async with cloud_and_toy(
        tmp_path, plugins=("gateway", "recorder"), extra_plugins={"recorder": lambda: recorder}
    ) as (cloud_app, toy, sub):
        cloud_sub = cloud_app.bus.subscribe("test", (ev.SafetyAlert,))
        await speak_turn(toy, sub, speech())
        alert = await next_event(sub, ev.SafetyAlert)
        assert (alert.category, alert.severity, alert.excerpt, alert.action) == (
            "violence",
            "high",
            "[redacted]",
            "redirect",
        )
        cloud_alert = await next_event(cloud_sub, ev.SafetyAlert)
        assert (cloud_alert.category, cloud_alert.device_id) == (
            "violence",
            "toy-1",
        )  # which toy, on the cloud bus
        await play_reply(toy, sub)
    assert [c["text"] for c in recorder.args("synthesize")] == ["Let's play a game instead!"]
    assert recorder.args("reply") == []


async def test_allowed_text_with_an_alert_reaches_the_llm_redacted_and_the_parents(tmp_path):
    def judge(turn, text, speaker):
        if speaker == "child":  # personal information: passed on redacted, and reported
            return SafetyVerdict(
                safe=True,
                category="personal_info",
                severity="medium",
                text="my address is [address]",
                alert=True,
            )
        return SafetyVerdict(safe=True, text=text)

    recorder = Recorder(check=judge)
    async with cloud_and_toy(
        tmp_path, plugins=("gateway", "recorder"), extra_plugins={"recorder": lambda: recorder}
    ) as (cloud_app, toy, sub):
        cloud_sub = cloud_app.bus.subscribe("test", (ev.SafetyAlert,))
        await speak_turn(toy, sub, speech())
        alert = await next_event(sub, ev.SafetyAlert)
        assert (alert.category, alert.excerpt, alert.action) == (
            "personal_info",
            "my address is [address]",
            "allow",
        )
        assert (await next_event(cloud_sub, ev.SafetyAlert)).device_id == "toy-1"
        await play_reply(toy, sub)
    assert [c["text"] for c in recorder.args("reply")] == ["my address is [address]"]


async def test_hook_toyd_check_text_blocked_toy_sentence_ends_the_reply(tmp_path):
    def judge(turn, text, speaker):
        if "honey" in text:
            return SafetyVerdict(
                safe=False, action="block", category="food", replacement="Bears are fluffy."
            )
        return SafetyVerdict(safe=True, text=text)

    recorder = Recorder(check=judge)
    messages, audio = await _turn(tmp_path, recorder)
    assert [c["text"] for c in recorder.args("synthesize")] == [
        "Once upon a time there was a bear.",
        "Bears are fluffy.",
    ]
    assert "reply" in recorder.closed


async def test_hook_toyd_reply(tmp_path):
    def redact(turn, text, speaker):
        return SafetyVerdict(
            safe=True, text="tell me a story, [name]" if speaker == "child" else text
        )

    recorder = Recorder(check=redact)
    messages, audio = await _turn(tmp_path, recorder)
    (call,) = recorder.args("reply")
    assert (
        call["text"] == "tell me a story, [name]" and call["turn"].turn_id == "turn-7"
    )  # the redacted text
    deltas = [m["text"] for m in messages if m["type"] == "llm" and not m["final"]]
    assert "".join(deltas) == "Once upon a time there was a bear. The bear loved honey!"
    assert [m for m in messages if m["type"] == "llm"][-1]["final"] is True
    assert "reply" in recorder.closed


async def test_hook_toyd_reply_declined_or_raising_fails_the_turn(tmp_path):
    for i, action in enumerate(("decline", "raise")):
        messages, audio = await _turn(tmp_path / str(i), Recorder(reply=action))
        assert (
            _errors(messages) == [codes.BACKEND] and messages[-1]["reason"] == "error" and not audio
        )


async def test_hook_toyd_synthesize(tmp_path):
    recorder = Recorder()
    messages, audio = await _turn(tmp_path, recorder)
    assert [c["text"] for c in recorder.args("synthesize")] == [
        "Once upon a time there was a bear.",
        "The bear loved honey!",
    ]
    assert len(audio) == 10  # 2 sentences x 100 ms = 10 frames of 20 ms
    assert recorder.closed.count("synthesize") == 2


async def test_hook_toyd_synthesize_declined_or_raising_fails_the_turn(tmp_path):
    for i, action in enumerate(("decline", "raise")):
        messages, audio = await _turn(tmp_path / str(i), Recorder(synthesize=action))
        assert (
            _errors(messages) == [codes.BACKEND] and messages[-1]["reason"] == "error" and not audio
        )


async def test_abort_closes_the_hook_iterators(tmp_path):
    def endless(turn, text):
        async def chunks():
            try:
                while True:
                    yield bytes(640)
                    await asyncio.sleep(0.02)
            finally:
                recorder.closed.append("synthesize")

        return chunks()

    recorder = Recorder(synthesize=endless)
    async with cloud(
        tmp_path, plugins=("gateway", "recorder"), extra_plugins={"recorder": lambda: recorder}
    ) as (app, port):
        toy = await RawToy(port).connect()
        await toy.talk(speech())
        await toy.expect("tts", state="start")
        await toy.send({"type": "abort", "reason": "barge_in"})
        await toy.expect("tts", state="stop", reason="aborted")
        await wait_for(
            lambda: "synthesize" in recorder.closed and "reply" in recorder.closed, timeout=2
        )
        await toy.close()


async def test_hook_toyd_synthesize_yielding_garbage_fails_the_turn_cleanly(tmp_path):
    def garbage(turn, text):
        async def chunks():
            yield "not audio"

        return chunks()

    messages, audio = await _turn(tmp_path, Recorder(synthesize=garbage))
    assert _errors(messages) == [codes.BACKEND] and "not PCM bytes" in messages[-2]["message"]
    assert messages[-1]["reason"] == "error"


async def test_hook_toyd_reply_with_one_huge_delta_stays_within_the_limits(tmp_path):
    from toyd.protocol import parse

    story = "The bear walked on and on " * 100  # 2600 characters in one piece, no sentence end

    def one_piece(turn, text):
        async def stream():
            yield story

        return stream()

    recorder = Recorder(reply=one_piece)
    messages, audio = await _turn(tmp_path, recorder)
    import json

    for message in messages:  # every message passes the toy's own validation
        parse(json.dumps(message), "down")
    deltas = [m["text"] for m in messages if m["type"] == "llm" and not m["final"]]
    assert "".join(deltas) == story and all(len(d) <= 1000 for d in deltas)
    assert messages[-1]["reason"] == "done"
