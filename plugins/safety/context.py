"""Conversation context: the last turns of a session scored together.

Grooming is rarely one sentence. "You're my best friend", "do you have your own
tablet?", "I have a present for you", "let's keep this between us": each line alone
is mild, the series is not. The session's last ``turns`` texts (child and toy) are
kept; when the window shows signs (at least two texts with a grooming cue, or with
some unsafe probability) and at least one of them is a grooming cue (secrecy,
meeting, gifts, photos, being alone, where the child lives or goes to school,
flattery; English and Korean), the classifier scores the window as one text: its
P(grooming), plus ``CUE_WEIGHT`` for each kind of cue in the window, is the evidence.
At ``threshold`` the session is flagged as grooming, and its window starts afresh so
one build-up raises one alert. Only grooming: the other categories show in a single
sentence, where the sentence's own check catches them.

A cue is required because the classifier's P(grooming) of a string of harmless texts
is not evidence of anything: a few lines it is a little unsure of ("tell me a long
story", a toy's "can you ask me again?") joined together can land on the grooming
side, and a false grooming alert to a parent is a serious accusation.

The window is only embedded when it shows signs, so ordinary chat costs nothing extra.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Mapping

SIGN = 0.1  # a text with at least this P(unsafe) is a sign worth a look at the whole window
CUE_WEIGHT = 0.2
GROOMING_CUES: Mapping[str, re.Pattern[str]] = {
    kind: re.compile(p, re.IGNORECASE)
    for kind, p in {
        "secrecy": r"\bsecret|don'?t tell|not tell|between us|just us|delete (?:our|the|these) (?:chat|message)|"
        r"비밀|말하지 ?마|말하면 안|지워",
        "meeting": r"\bmeet (?:me|up|you)|come (?:to|over|see)|pick you up|visit you|만나|데리러|놀러 ?갈",
        "gift": r"\bgift|present|buy you|give you|robux|v-?bucks|선물|사줄|사 ?줄게|줄게|로벅스",
        "photo": r"\bphoto|picture|pic\b|selfie|camera|video ?chat|사진|영상 ?통화|카메라",
        "alone": r"\balone|parents (?:asleep|sleeping|away|out|home|check)|home by yourself|"
        r"혼자|부모님.{0,6}(?:자|없|검사)",
        "location": r"\bwhere (?:do )?you live|your address|what school|which school|walk home|어디 살|주소|"
        r"무슨 학교|어느 학교|몇 학교",
        "special": r"\bspecial|mature|only (?:real )?friend|trust me|understand you|특별|성숙|어른스럽|나만 믿",
    }.items()
}


@dataclasses.dataclass(frozen=True)
class ContextFinding:
    """A category the window as a whole points to, with its evidence."""

    category: str
    evidence: float
    texts: int


@dataclasses.dataclass
class Window:
    """One session's recent texts, their P(unsafe) and grooming cues."""

    texts: collections.deque[tuple[str, float, frozenset[str]]]

    def signs(self) -> int:
        return sum(bool(cues) or unsafe >= SIGN for _, unsafe, cues in self.texts)

    def cue_kinds(self) -> int:
        return len(set().union(*(cues for _, _, cues in self.texts)))

    def joined(self) -> str:
        return " ".join(text for text, _, _ in self.texts)


def cues(text: str) -> frozenset[str]:
    """The kinds of grooming cue in one text."""
    return frozenset(kind for kind, pattern in GROOMING_CUES.items() if pattern.search(text))


class ConversationContext:
    """Per-session windows of recent texts; bounded in sessions and turns. Not thread-safe."""

    def __init__(self, turns: int, threshold: float, sessions: int = 1000) -> None:
        self.turns = turns
        self.threshold = threshold
        self.max_sessions = sessions
        self._windows: collections.OrderedDict[str, Window] = collections.OrderedDict()

    def add(self, session: str, text: str, unsafe: float) -> Window | None:
        """Remember one text; the window when it shows signs enough to be scored as a whole."""
        if self.turns <= 0:
            return None
        window = self._windows.pop(session, None) or Window(collections.deque(maxlen=self.turns))
        self._windows[session] = window  # most recently used last
        while len(self._windows) > self.max_sessions:
            self._windows.popitem(last=False)
        window.texts.append((text, unsafe, cues(text)))
        return window if window.signs() >= 2 and window.cue_kinds() >= 1 else None

    def judge(self, window: Window, grooming: float) -> ContextFinding | None:
        """The window's P(grooming) plus its cues: a finding at the threshold (the window then resets).

        No cue, no finding, however high P(grooming) of the joined texts is.
        """
        kinds = window.cue_kinds()
        evidence = grooming + CUE_WEIGHT * kinds
        if kinds == 0 or evidence < self.threshold:
            return None
        finding = ContextFinding("grooming", evidence, window.signs())
        window.texts.clear()
        return finding
