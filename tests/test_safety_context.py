"""The conversation window raises grooming only on grooming, not on a toy that keeps asking again.

The figures behind it: a local model too slow to answer made the toy say its fallback
line on most turns; the gateway checks it sentence by sentence, and the classifier read
"Can you ask me again?" (the toy asking the child for something) as grooming, so parents
got a grooming alert on 7 of 20 turns of harmless chat. The window, for its part, must
need a grooming cue: a string of texts the classifier is a little unsure of is no
evidence of a build-up.
"""

from __future__ import annotations

from toyd_plugins.gateway.sentences import SentenceSplitter
from toyd_plugins.llm.settings import Persona
from toyd_plugins.safety.context import ConversationContext
from toyd_plugins.safety.layers import SafetyFilter


def sentences(reply: str) -> list[str]:
    """The reply cut into the pieces the gateway checks one by one (the first may be a clause)."""
    splitter = SentenceSplitter(first_clause=True)
    return splitter.feed(reply) + splitter.flush()


def test_the_products_own_lines_pass_its_safety_filter() -> None:
    """The persona's fixed lines, sentence by sentence as the gateway checks them, as the toy.

    "Can you ask me again?", the old fallback's second sentence, was blocked as grooming.
    """
    persona = Persona()
    checked = SafetyFilter.build()
    for line in (persona.fallback, persona.cut_ending):
        for sentence in sentences(line):
            verdict = checked.check(sentence, "toy", session="s").verdict
            assert verdict.action == "allow", (sentence, verdict)


def test_no_cue_no_finding() -> None:
    """Texts with some P(unsafe) and no grooming cue: the window is not even scored."""
    context = ConversationContext(turns=6, threshold=0.6)
    window = None
    for text, unsafe in [
        ("tell me a long story", 0.204),
        ("Hmm, my thinking cap is a bit slow right now. Can you ask me again?", 0.206),
        ("tell me a long story", 0.204),
    ]:
        window = context.add("s", text, unsafe)
        assert window is None
    assert window is None
    # even asked directly with a high P(grooming) of the joined texts, no cue is no evidence
    full = ConversationContext(turns=6, threshold=0.6)
    full.add("s", "tell me a long story", 0.204)
    full.add("s", "it has a dragon", 0.3)
    assert full._windows["s"].signs() == 2
    assert full.judge(full._windows["s"], grooming=0.95) is None


def test_cues_and_the_joined_score_still_make_a_finding() -> None:
    context = ConversationContext(turns=6, threshold=0.6)
    assert context.add("s", "You're my best friend, you know that?", 0.2) is None
    window = context.add("s", "I have a special present for you.", 0.1)
    assert window is not None and window.cue_kinds() == 2  # special, gift
    finding = context.judge(window, grooming=0.25)
    assert finding is not None and finding.category == "grooming"
    assert not window.texts  # one build-up, one alert: the window starts afresh
