"""The safety plugin in a real cloud daemon, and the ``toyd safety`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from toyd.testing import running_daemon
from toyd.turn import SafetyVerdict, Turn

ROOT = Path(__file__).resolve().parent.parent
TOYD = [sys.executable, "-m", "toyd"]
TURN = Turn(device_id="toy-1", session_id="s1", turn_id="t1")


async def test_hook_toyd_check_text(state_dir: Path) -> None:
    config = {
        "role": "cloud",
        "plugins": ["safety"],
        "safety": {"categories": {"profanity": {"action": "block"}}},
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        verdict = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="I want to kill myself", speaker="child"
        )
        assert isinstance(verdict, SafetyVerdict)
        assert (verdict.category, verdict.alert, verdict.safe) == ("self_harm", True, False)
        clean = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="tell me a story about a dragon", speaker="child"
        )
        assert clean == SafetyVerdict(safe=True, text="tell me a story about a dragon")
        redacted = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="my number is 555-123-4567", speaker="child"
        )
        assert redacted.text == "my number is [phone]" and redacted.safe
        toy = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="Oh shit.", speaker="toy"
        )
        assert toy.action == "block" and toy.replacement  # the config's action is in force


async def test_hook_toyd_safety_verdict(state_dir: Path) -> None:
    config = {
        "role": "cloud",
        "plugins": ["safety"],
        "safety": {"categories": {"profanity": {"action": "allow"}}},
    }
    async with running_daemon(config, state_dir=state_dir) as app:

        async def ask(
            category: str, text: str = "some text", severity: str = "high"
        ) -> SafetyVerdict | None:
            return await app.host.call_first(
                "toyd_safety_verdict",
                turn=TURN,
                text=text,
                speaker="child",
                category=category,
                severity=severity,
            )

        found = await ask("violence")
        assert (found.category, found.action, found.alert) == (
            "violence",
            "block",
            True,
        ) and found.replacement
        assert await ask("profanity") is None  # allowed by the config
        unchecked = await ask("unchecked", "hello there", "none")
        assert (unchecked.action, unchecked.category, unchecked.alert) == (
            "redirect",
            "unchecked",
            False,
        )
        local = await ask(
            "unchecked", "I want to kill myself", "none"
        )  # the lexicon's own verdict wins
        assert local.category == "self_harm" and local.alert


async def test_reconfigure_swaps_the_policy_live(state_dir: Path) -> None:
    from toyd.config import validate

    config = {"role": "cloud", "plugins": ["safety"], "state_dir": str(state_dir)}
    async with running_daemon(config, state_dir=state_dir) as app:
        assert (
            await app.host.call_first("toyd_check_text", turn=TURN, text="shit", speaker="child")
        ).category == "profanity"
        new = validate(
            {**config, "safety": {"categories": {"profanity": {"action": "allow"}}}},
            app.host.registry.schema,
            known_plugins=app.host.registry.names,
        )
        await app.apply_config(new)
        verdict = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="shit", speaker="child"
        )
        assert verdict.category is None and verdict.safe


async def test_bad_word_list_on_reconfigure_keeps_the_old_policy(
    state_dir: Path, tmp_path: Path
) -> None:
    from toyd.config import validate

    config = {"role": "cloud", "plugins": ["safety"], "state_dir": str(state_dir)}
    async with running_daemon(config, state_dir=state_dir) as app:
        bad = validate(
            {**config, "safety": {"word_lists": [str(tmp_path / "missing.yaml")]}},
            app.host.registry.schema,
            known_plugins=app.host.registry.names,
        )
        await app.apply_config(bad)
        verdict = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="fuck", speaker="child"
        )
        assert verdict.category == "profanity"  # still the old, working engine


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*TOYD, "safety", *args], input=stdin, capture_output=True, timeout=60, cwd=ROOT
    )


def test_cli_one_text() -> None:
    result = run_cli("I killed it at football")
    assert result.returncode == 0, result.stderr
    verdict = json.loads(result.stdout)
    assert list(verdict)[:4] == ["text", "safe", "category", "action"]
    assert verdict["safe"] is True and verdict["category"] is None and verdict["action"] == "allow"


def test_cli_reads_stdin_lines_and_survives_bad_bytes() -> None:
    result = run_cli(stdin=b"f u c k\n\nmy phone is 555-123-4567\n\xff\xfe kill myself\n")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [v["category"] for v in lines] == ["profanity", "personal_info", "self_harm"]
    assert lines[1]["text"] == "my phone is [phone]" and lines[2]["alert"] is True


def test_cli_speaker_toy() -> None:
    result = run_cli("--speaker", "toy", "Where do you live?")
    verdict = json.loads(result.stdout)
    assert (
        verdict["category"] == "grooming"
        and verdict["action"] == "block"
        and verdict["safe"] is False
    )


def test_cli_uses_the_config_section(tmp_path: Path) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text(
        "role: cloud\nplugins: [safety]\nsafety:\n  categories:\n    profanity: {action: block}\n"
    )
    verdict = json.loads(run_cli("-c", str(config), "shit").stdout)
    assert verdict["action"] == "block"
    example = json.loads(
        run_cli("-c", str(ROOT / "config" / "cloud.yaml"), "kill the lights").stdout
    )
    assert example["safe"] is True


def test_cli_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "cloud.yaml"
    config.write_text("role: cloud\nsafety:\n  categories:\n    violence:\n      action: shout\n")
    result = run_cli("-c", str(config), "hello")
    assert result.returncode == 1
    assert b"cloud.yaml:5" in result.stderr and b"shout" in result.stderr


def test_cli_eval_prints_a_table() -> None:
    result = run_cli("--eval", str(ROOT / "tests" / "data" / "safety_holdout.yaml"))
    assert result.returncode == 0, result.stderr
    assert b"overall (flagged)" in result.stdout and b"precision" in result.stdout


def test_cli_help_teaches_tuning() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    for needle in (b"benign", b"word_lists", b"--eval", b"always alert", b"--speaker"):
        assert needle in result.stdout, needle


def test_example_cloud_config_enables_safety() -> None:
    result = subprocess.run(
        [*TOYD, "check-config", str(ROOT / "config" / "cloud.yaml")],
        capture_output=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    assert b"safety" in result.stdout


async def test_safety_serves_the_device_role_too(state_dir: Path) -> None:
    async with running_daemon(
        {"role": "device", "plugins": ["safety"]}, state_dir=state_dir
    ) as app:
        verdict = await app.host.call_first(
            "toyd_check_text", turn=TURN, text="sh1t", speaker="toy"
        )
        assert verdict.category == "profanity" and verdict.replacement
