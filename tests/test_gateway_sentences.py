"""Cutting a streamed reply into sentences as the tokens arrive."""

from __future__ import annotations

import pytest

from toyd_plugins.gateway.sentences import SentenceSplitter


def split(deltas: list[str], **kw) -> list[str]:
    splitter = SentenceSplitter(**kw)
    out = [s for d in deltas for s in splitter.feed(d)]
    return out + splitter.flush()


def test_sentences_come_out_as_soon_as_they_end():
    splitter = SentenceSplitter()
    assert splitter.feed("Hello there, little one!") == []  # the '!' needs the next character
    assert splitter.feed(" How are") == ["Hello there, little one!"]
    assert splitter.feed(" you today?") == []
    assert splitter.flush() == ["How are you today?"]


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Mr. Bear has 3.5 apples. He shares them.",
            ["Mr. Bear has 3.5 apples.", "He shares them."],
        ),
        (
            "Oh! I love that story so much.",
            ["Oh! I love that story so much."],
        ),  # too short alone: joined
        ("Line one is here\nline two is here", ["Line one is here", "line two is here"]),
        (
            "我们一起去公园玩吧。然后回家吃饭好不好呀？",
            ["我们一起去公园玩吧。然后回家吃饭好不好呀？"],
        ),
        (
            '"Let\'s go!" said the bear. Then he ran.',
            ['"Let\'s go!" said the bear.', "Then he ran."],
        ),
        ("", []),
    ],
)
def test_splitting(text, expected):
    assert split(list(text)) == expected  # one character at a time: the worst case of streaming
    assert split([text]) == expected


def test_run_on_text_is_cut_at_a_comma_or_space():
    text = "and then " * 40
    parts = split([text], max_chars=100)
    assert all(len(p) <= 100 for p in parts) and " ".join(parts).split() == text.split()


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            "Once upon a time, a dragon lived on a hill, and he was kind. He loved apples, too.",
            [
                "Once upon a time,",
                "a dragon lived on a hill, and he was kind.",
                "He loved apples, too.",
            ],
        ),
        # a clause shorter than min_chars waits for the next mark
        (
            "Oh, hello there, my friend! How are you?",
            ["Oh, hello there,", "my friend! How are you?"],
        ),
        # no clause mark: the first sentence, as without first_clause
        ("I love elephants. They are big.", ["I love elephants.", "They are big."]),
        # a number's comma or a time's colon is not a clause mark
        (
            "There are 1,000 stars at 9:30 tonight; look up.",
            ["There are 1,000 stars at 9:30 tonight;", "look up."],
        ),
        (
            "我们一起去公园玩吧，然后回家吃饭好不好呀？",
            ["我们一起去公园玩吧，然后回家吃饭好不好呀？"],
        ),
        (
            "我们一起去公园玩吧然后回家，吃饭好不好呀？",
            ["我们一起去公园玩吧然后回家，", "吃饭好不好呀？"],
        ),
    ],
)
def test_first_clause_starts_the_voice_early(text, expected):
    """Only the first piece may end at a clause; the rest are whole sentences."""
    assert split(list(text), first_clause=True) == expected
    assert split([text], first_clause=True) == expected
