"""The child-safe system prompt, and shaping streamed text into speakable sentences."""

from __future__ import annotations

import re

from .settings import Persona

FOLDED = "The child said: "  # how toyd.store.fold starts each line of the memory summary

SAFETY_RULES = """\
Rules you always follow:
- You talk with a young child. Everything you say must be safe and suitable for a {age_min} to {age_max} year old.
- Never talk about violence, weapons, sex, drugs, alcohol, gambling, self-harm or scary things; gently change the subject to something fun instead.
- Never ask for or repeat personal information: full names, addresses, phone numbers, schools, passwords.
- Never suggest meeting anyone, going anywhere, or keeping secrets from parents. Encourage the child to ask a parent or trusted adult about serious or worrying things.
- If the child seems sad, hurt or in danger, be kind and tell them to talk to a parent or another grown-up they trust right now.
- Do not pretend to be a real person; you are a toy.
"""

VOICE_RULES = """\
Your words are spoken aloud by a toy, so:
- Answer in at most {max_sentences} short sentences, in plain {language} words a child understands.
- No lists, no markdown, no emojis, no headings, no links, no code; just talk.
"""


def system_prompt(persona: Persona) -> str:
    """The system message: persona, safety and voice rules; the same for every reply of a persona.

    Nothing that changes between turns goes in here: a model server keeps the evaluated
    prompt and reuses its longest common prefix, so this part is evaluated once.
    """
    text = (
        f"You are {persona.name}, a talking toy. Your personality: {persona.personality}. "
        f"Your speaking style: {persona.speaking_style}.\n"
        + SAFETY_RULES.format(age_min=persona.age_min, age_max=persona.age_max)
        + VOICE_RULES.format(
            max_sentences=persona.max_sentences, language=_language_name(persona.language)
        )
    )
    if persona.extra_instructions:
        text += persona.extra_instructions.strip() + "\n"
    return text


def chat_messages(
    persona: Persona, summary: str, recent: list[tuple[str, str]], text: str
) -> list[dict[str, str]]:
    """The request's messages, laid out so a model's cache reuses as much as it can.

    Stable first, changing last: the system prompt, then the recent exchanges verbatim
    (when the oldest drops out, the rest is found further back in the cache and shifted;
    see llm_local's ``cache_reuse``), then the memory summary, which changes whenever an
    exchange is folded into it, then the child's words.
    """
    messages = [{"role": "system", "content": system_prompt(persona)}]
    for child, toy in recent:
        messages += [{"role": "user", "content": child}, {"role": "assistant", "content": toy}]
    if summary:
        # the summary's lines are "The child said: ..."; said as topics, a small model
        # answers the child instead of retelling its notes
        topics = "; ".join(line.removeprefix(FOLDED) for line in summary.split("\n") if line)
        messages.append(
            {"role": "system", "content": f"Earlier, this child also talked about: {topics}."}
        )
    messages.append({"role": "user", "content": text})
    return messages


def _language_name(code: str) -> str:
    names = {
        "en": "English",
        "ko": "Korean",
        "de": "German",
        "fr": "French",
        "es": "Spanish",
        "ja": "Japanese",
        "zh": "Chinese",
        "it": "Italian",
        "nl": "Dutch",
        "pt": "Portuguese",
    }
    return names.get(code.split("-")[0].lower(), code)


# Pictographs, dingbats, flags, variation selectors, zero-width joiners: nothing a TTS can say.
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\U00002600-\U000027bf\U0001f1e6-\U0001f1ff\ufe0f\u200d\u2b50\u2b55\u2300-\u23ff]"
)
_INLINE = re.compile(r"\*\*|__|[*_`~]|^#+|\[|\]\([^)]*\)|\]")
_LIST_MARK = re.compile(r"^(?:[-*+•]|\d{1,2}[.)])$")
_URL = re.compile(r"https?://\S+")


class VoiceCleaner:
    """Strips markdown, list markers, emojis and links from a text stream, word by word.

    Words are released only when complete (followed by whitespace), so a marker split
    across two deltas ("*" + "*bold") is still recognised; each comes with the space after
    it, so a sentence splitter downstream sees "time, " end a clause without waiting for
    the next word.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._line_start = True

    def feed(self, delta: str) -> str:
        """Clean text: everything complete so far; the last partial word waits."""
        self._pending += delta
        match = re.search(r"\s(?=\S*$)", self._pending)
        if not match:
            return ""
        ready, self._pending = self._pending[: match.end()], self._pending[match.end() :]
        return self._clean(ready)

    def flush(self) -> str:
        """Whatever is left at the end of the stream."""
        rest, self._pending = self._pending, ""
        return self._clean(rest + " ").rstrip() if rest.strip() else ""

    def _clean(self, text: str) -> str:
        out = []
        for token in re.split(r"(\s+)", text):
            if not token:
                continue
            if token.isspace():
                if "\n" in token:
                    self._line_start = True
                continue
            if self._line_start and (_LIST_MARK.match(token) or set(token) <= {"#", ">"}):
                self._line_start = False
                continue
            self._line_start = False
            word = _EMOJI.sub("", _URL.sub("", _INLINE.sub("", token)))
            if word:
                out.append(word)
        return " ".join(out) + " " if out else ""


_SENTENCE_END = re.compile(r"[.!?。！？]+[\"')\]]*(?=\s|$)")


class ReplyLimiter:
    """Ends a reply after the persona's sentence or character limit, at a sentence end."""

    def __init__(self, max_sentences: int, max_chars: int) -> None:
        self.max_sentences = max_sentences
        self.max_chars = max_chars
        self.text = ""
        self.done = False

    def feed(self, piece: str) -> str:
        """The part of ``piece`` within the limits; sets ``done`` when the reply is full."""
        if self.done or not piece:
            return ""
        before = len(self.text)
        self.text += piece
        ends = list(_SENTENCE_END.finditer(self.text))
        if len(ends) >= self.max_sentences:
            cut = ends[self.max_sentences - 1].end()
            return self._finish(cut, before)
        if len(self.text) > self.max_chars:
            within = [m.end() for m in ends if m.end() <= self.max_chars]
            if within:
                return self._finish(within[-1], before)
            cut = self.text.rfind(" ", 0, self.max_chars)
            self.text = self.text[: cut if cut > 0 else self.max_chars].rstrip(",;: ") + "."
            self.done = True
            return self.text[before:]
        return piece

    def _finish(self, cut: int, before: int) -> str:
        self.text = self.text[:cut]
        self.done = True
        return self.text[before:]

    @property
    def ends_sentence(self) -> bool:
        """Whether the text so far ends at a sentence end (for graceful endings)."""
        return self.text.rstrip().endswith((".", "!", "?", "。", "！", "？", '"', "'", ")"))
