"""The local safety engine: normalisation tricks, redaction, context rules, policy, config errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from toyd.errors import ConfigError
from toyd.pii import redact
from toyd.schema import build
from toyd_plugins.safety import SafetyEngine, SafetySettings
from toyd_plugins.safety.evaluate import evaluate, load
from toyd_plugins.safety.normalize import normalize

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def engine() -> SafetyEngine:
    return SafetyEngine.build()


def settings(data: dict) -> SafetySettings:
    return build(SafetySettings, data, path="safety")


# --- quality over the labelled sets -----------------------------------------------------


def test_eval_set_is_big_enough() -> None:
    samples = load(DATA / "safety_eval.yaml")
    unsafe = [s for s in samples if s.label != "benign"]
    assert len(unsafe) >= 150 and len(samples) - len(unsafe) >= 150
    assert {s.speaker for s in unsafe} == {"child", "toy"}


def test_precision_recall_on_tuning_set(engine: SafetyEngine) -> None:
    report = evaluate(engine, load(DATA / "safety_eval.yaml"))
    print("\n" + report.table())
    assert report.overall.recall >= 0.98 and report.overall.precision >= 0.98, report.table()
    for name, score in report.categories.items():
        assert score.recall >= 0.9 and score.precision >= 0.9, f"{name}\n{report.table()}"


# Each held-out set was written after the previous lexicon revision and scored once before
# the next revision; those first-run figures are the honest estimates (docs/safety.md):
# holdout 0.923 recall / 1.000 precision, holdout2 0.912 / 0.976, holdout3 0.789 / 0.986,
# holdout4 0.907 / 1.000. The floors below guard the current lexicon against regressions.
HELD_OUT = [
    ("safety_holdout.yaml", 0.95, 0.95),
    ("safety_holdout2.yaml", 0.95, 0.95),
    ("safety_holdout3.yaml", 0.95, 0.95),
    ("safety_holdout4.yaml", 0.95, 0.95),
]


@pytest.mark.parametrize(("name", "min_recall", "min_precision"), HELD_OUT)
def test_precision_recall_on_held_out_sets(
    engine: SafetyEngine, name: str, min_recall: float, min_precision: float
) -> None:
    samples = load(DATA / name)
    assert (
        sum(s.label != "benign" for s in samples) >= 75
        and sum(s.label == "benign" for s in samples) >= 40
    )
    report = evaluate(engine, samples)
    print("\n" + report.table())
    assert report.overall.recall >= min_recall and report.overall.precision >= min_precision, (
        report.table()
    )


# --- normalisation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "fuck",
        "FUCK",
        "fuuuuuck",
        "f u c k",
        "f.u.c.k",
        "f-u-c-k",
        "f_u_c_k",
        "fück",
        "ｆｕｃｋ",
        "f**k",
        "phuck",
        "fμck".replace("μ", "u"),
        "fuсk",  # Cyrillic с
        "what the f***",
        "f***ing",
        "sh**",
        "f***!",  # speech recognisers star out swearing like this
    ],
)
def test_profanity_tricks_are_undone(engine: SafetyEngine, text: str) -> None:
    assert engine.check(text).verdict.category == "profanity", normalize(text)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("sh1t", "profanity"),
        ("$h!t", "profanity"),
        ("@ss", "profanity"),
        ("a$$hole", "profanity"),
        ("i want to k1ll myself", "self_harm"),
        ("i w4nt to d1e", "self_harm"),
        ("s3x", "sexual"),
        ("you are a b i t c h", "profanity"),
        ("u r a l o s e r", "hate_bullying"),
        ("ѕhіt", "profanity"),
        ("SUICIDE", "self_harm"),
        ("kiiiill myself", "self_harm"),
    ],
)
def test_leetspeak_spacing_homoglyphs(engine: SafetyEngine, text: str, category: str) -> None:
    assert engine.check(text).verdict.category == category, normalize(text)


def test_normalize_keeps_plain_numbers_and_words() -> None:
    assert normalize("Call 555-1234, OK?") == "call 555 1234 ok"
    assert normalize("I'm 7 and it's 3pm") == "im 7 and its epm"  # leet inside a word with letters
    assert normalize("**Hello!** World") == "hello world"
    assert normalize("") == ""


def test_scunthorpe_words_pass(engine: SafetyEngine) -> None:
    for text in [
        "Scunthorpe",
        "class assignment",
        "a cockatoo and a peacock",
        "grass",
        "Dickens wrote books",
        "shiitake mushrooms",
        "hello",
        "the shell",
        "**bold** text*",
        "butterfly",
        "cocktail sauce",
        "assassin's creed",
    ]:
        assert engine.check(text).verdict.category is None, text


# --- context rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "kill the lights",
        "this game is killing it",
        "I killed it at football",
        "I shot a goal",
        "the dragon fought the knight",
        "the knight stabbed the dragon",
        "my cat died",
        "my grandma died",
        "what's a gun dog?",
        "can I have a cookie",
        "my mom is going to kill me",
        "I got a flu shot",
        "I nearly died laughing",
        "killer whales are big",
        "I have a water gun",
    ],
)
def test_benign_contexts_pass(engine: SafetyEngine, text: str) -> None:
    finding = engine.check(text)
    assert finding.verdict.safe and finding.verdict.category is None, finding


@pytest.mark.parametrize(
    "text",
    [
        "don't do drugs",
        "never play with matches",
        "say no to drugs",
        "I don't hate you",
        "you're not stupid",
    ],
)
def test_negation_cancels_negatable_categories(engine: SafetyEngine, text: str) -> None:
    assert engine.check(text).verdict.category is None


def test_negation_does_not_cancel_self_harm_or_grooming(engine: SafetyEngine) -> None:
    assert engine.check("I don't want to live anymore").verdict.category == "self_harm"
    assert engine.check("don't tell your mom", "toy").verdict.category == "grooming"


def test_story_context_allows_medium_but_not_high_violence(engine: SafetyEngine) -> None:
    assert engine.check("the knight killed the dragon").verdict.category is None
    assert engine.check("I killed him").verdict.category == "violence"
    assert (
        engine.check("I'll hit you with my book").verdict.category == "violence"
    )  # a book is not a story
    story = engine.check("in the story the pirate beheaded the sailor").verdict
    assert story.category == "violence" and story.severity == "high"


def test_overlapping_matches_take_the_worst(engine: SafetyEngine) -> None:
    verdict = engine.check("I'm going to kill my brother").verdict
    assert (verdict.category, verdict.severity, verdict.action) == ("violence", "high", "block")


# --- speakers ----------------------------------------------------------------------------


def test_toy_side_questions_are_grooming_but_child_side_are_fine(engine: SafetyEngine) -> None:
    for text in [
        "Where do you live?",
        "What school do you go to?",
        "Are you home alone?",
        "Send me a picture",
    ]:
        toy = engine.check(text, "toy").verdict
        assert toy.category == "grooming" and toy.action == "block" and toy.alert, text
        assert engine.check(text, "child").verdict.category is None, text


def test_toy_sentence_is_replaced_by_a_neutral_line(engine: SafetyEngine) -> None:
    verdict = engine.check("Well, damn, that's hard.", "toy").verdict
    assert verdict.category == "profanity" and not verdict.safe
    assert verdict.replacement in engine.toy_lines
    # the same mild word from the child is not worth a redirect
    assert engine.check("damn it", "child").verdict.category is None


def test_child_disclosures_are_grooming(engine: SafetyEngine) -> None:
    verdict = engine.check("a man online asked me to send pictures").verdict
    assert verdict.category == "grooming" and verdict.alert and verdict.action == "block"
    assert "grown-up" in (verdict.replacement or "")


# --- always-alert and caring lines -------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I want to kill myself", "self_harm"),
        ("sometimes I want to die", "self_harm"),
        ("my dad hits me", "abuse"),
        ("my uncle touched my private parts", "abuse"),
    ],
)
def test_self_harm_and_abuse_always_alert_with_a_caring_line(
    engine: SafetyEngine, text: str, category: str
) -> None:
    verdict = engine.check(text).verdict
    assert verdict.category == category and verdict.alert and not verdict.safe
    assert verdict.replacement and "grown-up you trust" in verdict.replacement


def test_always_alert_survives_a_redirect_action() -> None:
    engine = SafetyEngine.build(settings({"categories": {"self_harm": {"action": "redirect"}}}))
    verdict = engine.check("nobody loves me").verdict  # medium: not escalated to block
    assert verdict.category == "self_harm" and verdict.action == "redirect" and verdict.alert


def test_self_harm_cannot_be_allowed() -> None:
    with pytest.raises(ConfigError, match="cannot be 'allow'"):
        settings({"categories": {"self_harm": {"action": "allow"}}})
    with pytest.raises(ConfigError, match="cannot be 'allow'"):
        settings({"categories": {"abuse": {"action": "allow"}}})


# --- personal information ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("My phone number is 555-867-5309.", "My phone number is [phone]."),
        ("call (555) 123 4567 now", "call [phone] now"),
        ("my number is five five five one two three four", "my number is [phone]"),
        ("email me at kid.joe@gmail.com", "email me at [email]"),
        ("it's joe at gmail dot com", "it's [email]"),
        ("I live at 42 Maple Street, Springfield.", "I live at [address]."),
        ("we live at 7 Elm Road", "we live at [address]"),
        ("I go to Lincoln Elementary School", "I go to [school]"),
        ("My name is Emma Johnson", "My name is Emma [surname]"),
        ("my last name is garcia", "my last name is [surname]"),
        ("my password is tiger123", "my password is [password]"),
    ],
)
def test_personal_information_is_redacted(engine: SafetyEngine, text: str, expected: str) -> None:
    verdict = engine.check(text).verdict
    assert verdict.text == expected
    assert verdict.category == "personal_info" and verdict.safe and verdict.action == "allow"


@pytest.mark.parametrize(
    "text",
    [
        "I go to middle school",
        "my name is Emma",
        "I have 3 cats and 2 dogs",
        "count with me 1 2 3 4 5 6 7 8",
        "in 2019-2020 we moved",
        "a million is 1000000",
        "I live in a big house",
        "what school do you go to?",
    ],
)
def test_look_alikes_are_not_redacted(text: str) -> None:
    assert redact(text).text == text


def test_redaction_applies_to_unsafe_texts_too(engine: SafetyEngine) -> None:
    verdict = engine.check("my number is 555-123-4567, fuck").verdict
    assert (
        verdict.category == "profanity" and "[phone]" in verdict.text and "555" not in verdict.text
    )


def test_personal_info_from_the_toy_is_not_spoken(engine: SafetyEngine) -> None:
    verdict = engine.check("My phone number is 555-123-4567.", "toy").verdict
    assert (
        verdict.category == "personal_info" and verdict.action == "redirect" and verdict.replacement
    )


def test_personal_info_action_is_configurable() -> None:
    engine = SafetyEngine.build(
        settings(
            {"categories": {"personal_info": {"action": "redirect", "lines": ["Keep it private!"]}}}
        )
    )
    verdict = engine.check("my phone number is 555-123-4567").verdict
    assert (
        verdict.action == "redirect"
        and verdict.replacement == "Keep it private!"
        and verdict.text.endswith("[phone]")
    )


# --- robustness --------------------------------------------------------------------------

ENGINE = SafetyEngine.build()


@given(st.text(max_size=300), st.sampled_from(["child", "toy"]))
@hsettings(max_examples=300, deadline=None)
def test_any_text_gets_a_consistent_verdict(text: str, speaker: str) -> None:
    verdict = ENGINE.check(text, speaker).verdict  # type: ignore[arg-type]
    assert verdict.safe == (verdict.action == "allow")
    assert (verdict.replacement is not None) == (verdict.action != "allow")
    assert verdict.alert <= (verdict.action != "allow")
    assert (verdict.category is None) <= verdict.safe


@given(
    st.from_regex(r"[a-z]{1,10}\.[a-z]{1,10}@[a-z]{2,10}\.(com|org|net)", fullmatch=True),
    st.text(alphabet="abc ,.!", max_size=40),
)
@hsettings(max_examples=100, deadline=None)
def test_emails_never_survive_redaction(email: str, filler: str) -> None:
    verdict = ENGINE.check(f"{filler} my email is {email} {filler}").verdict
    assert email not in verdict.text and "[email]" in verdict.text


def test_unknown_speaker_is_an_error() -> None:
    with pytest.raises(ValueError, match="speaker must be"):
        ENGINE.check("hello", "parent")  # type: ignore[arg-type]


def test_very_long_input_is_judged_and_redacted() -> None:
    """Five minutes of speech transcribed: one verdict, every number redacted."""
    text = ("I like dragons and my phone number is 555-123-4567. " * 80) + "I want to kill myself"
    verdict = ENGINE.check(text).verdict
    assert verdict.category == "self_harm" and verdict.alert
    assert "555" not in verdict.text and verdict.text.count("[phone]") == 80
