"""Safety config: actions, maker word lists and lines, and clear errors for bad config."""

from __future__ import annotations

from pathlib import Path

import pytest

from toyd.config import load_file
from toyd.errors import ConfigError
from toyd.registry import Registry
from toyd.schema import build
from toyd_plugins.safety import SafetyEngine, SafetySettings


def settings(data: dict) -> SafetySettings:
    return build(SafetySettings, data, path="safety")


def test_action_allow_turns_a_category_off() -> None:
    engine = SafetyEngine.build(settings({"categories": {"profanity": {"action": "allow"}}}))
    assert engine.check("fuck").verdict.category is None
    assert engine.check("I want to kill myself").verdict.category == "self_harm"


def test_action_block_alerts() -> None:
    engine = SafetyEngine.build(settings({"categories": {"profanity": {"action": "block"}}}))
    verdict = engine.check("shit").verdict
    assert verdict.action == "block" and verdict.alert and not verdict.safe


def test_default_redirect_does_not_alert_but_high_severity_blocks() -> None:
    engine = SafetyEngine.build()
    mild = engine.check("I'm gonna punch him in the face").verdict
    assert (mild.action, mild.alert, mild.severity) == ("redirect", False, "medium")
    severe = engine.check("I'm going to murder you").verdict
    assert (severe.action, severe.alert, severe.severity) == ("block", True, "high")
    lenient = (
        SafetyEngine.build(settings({"high_severity_blocks": False}))
        .check("I'm going to murder you")
        .verdict
    )
    assert (lenient.action, lenient.alert) == ("redirect", False)


def test_maker_words_benign_and_lines() -> None:
    engine = SafetyEngine.build(
        settings(
            {
                "categories": {
                    "violence": {
                        "words": ["zap*", "blast* him"],
                        "benign": ["kill the dragon boss"],
                        "lines": ["Let's be gentle!"],
                    },
                    "profanity": {"patterns": [r"\bfrak\w*", "zorg"], "severity": "low"},
                }
            }
        )
    )
    verdict = engine.check("I will zapppp him").verdict
    assert verdict.category == "violence" and verdict.replacement == "Let's be gentle!"
    assert engine.check("frakking toaster").verdict.category == "profanity"
    assert engine.check("then I blasted him").verdict.category == "violence"  # "*" inside a phrase
    assert engine.check("then I blasted off").verdict.category is None
    assert (
        engine.check("megazorgs attack").verdict.category == "profanity"
    )  # no \\b: matches inside words
    assert engine.check("I want to kill the dragon boss").verdict.category is None


def test_custom_category_from_config() -> None:
    engine = SafetyEngine.build(
        settings(
            {
                "categories": {
                    "brands": {
                        "words": ["megacorp"],
                        "action": "redirect",
                        "lines": ["Let's not talk about shops."],
                    }
                }
            }
        )
    )
    verdict = engine.check("I love MegaCorp toys").verdict
    assert verdict.category == "brands" and verdict.replacement == "Let's not talk about shops."


def test_word_list_file_relative_to_config(tmp_path: Path) -> None:
    (tmp_path / "scary.yaml").write_text(
        "category: scary\naction: redirect\nterms:\n  medium: [ghost*, haunted house]\n"
        'benign: [ghost pepper]\nlines: ["Let\'s talk about bunnies!"]\n'
    )
    engine = SafetyEngine.build(settings({"word_lists": ["scary.yaml"]}), base_dir=tmp_path)
    assert engine.check("tell me about ghosts").verdict.category == "scary"
    assert engine.check("a ghost pepper is hot").verdict.category is None
    assert engine.check("the haunted house").verdict.replacement == "Let's talk about bunnies!"


def test_unknown_category_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        settings({"categories": {"profanty": {"action": "block"}}})
    message = str(info.value)
    assert "unknown category 'profanty'" in message and "did you mean 'profanity'" in message


def test_bad_action_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as info:
        settings({"categories": {"violence": {"action": "warn"}}})
    message = str(info.value)
    assert (
        "safety.categories.violence.action" in message and "'allow', 'redirect', 'block'" in message
    )


def test_bad_regex_and_unknown_key_are_clear_errors() -> None:
    with pytest.raises(ConfigError, match="bad regular expression"):
        settings({"categories": {"violence": {"patterns": ["(unclosed"]}}})
    with pytest.raises(ConfigError, match="unknown key"):
        settings({"categories": {"violence": {"wordz": ["x"]}}})


def test_config_file_errors_name_file_and_line(tmp_path: Path) -> None:
    registry = Registry()
    file = tmp_path / "cloud.yaml"
    file.write_text(
        "role: cloud\nplugins: [safety]\nsafety:\n  categories:\n    violence:\n      action: maybe\n"
    )
    with pytest.raises(ConfigError) as info:
        load_file(file, registry.schema, registry.names)
    assert f"{file}:6" in str(info.value) and "maybe" in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("terms: [x]\n", "'category' name"),
        ("category: x\nterms: {severe: [y]}\n", "unknown severity 'severe'"),
        ("category: x\npatterns: ['(oops']\n", "bad regular expression"),
        ("category: x\nterms: [a\n", "YAML syntax error"),
        ("category: x\nwords: [a]\n", "unknown key 'words'"),
        ("category: x\naction: shout\n", "not an allowed action"),
    ],
)
def test_bad_word_list_files_are_clear_errors(tmp_path: Path, content: str, problem: str) -> None:
    (tmp_path / "mine.yaml").write_text(content)
    with pytest.raises(ConfigError) as info:
        SafetyEngine.build(settings({"word_lists": ["mine.yaml"]}), base_dir=tmp_path)
    assert problem in str(info.value) and "mine.yaml" in str(info.value)


def test_missing_word_list_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read word list"):
        SafetyEngine.build(settings({"word_lists": ["nope.yaml"]}), base_dir=tmp_path)
