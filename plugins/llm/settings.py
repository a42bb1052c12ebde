"""The ``llm`` config section: endpoint, generation limits, personas, memory."""

from __future__ import annotations

import dataclasses

from toyd import httpclient, setting


@dataclasses.dataclass(frozen=True)
class Persona:
    """Who the toy is: the system prompt and reply limits are built from these."""

    name: str = setting("Pip", doc="The toy's name, as it introduces itself.")
    personality: str = setting(
        "cheerful, curious and kind; loves animals, stories and silly jokes",
        doc="A few words on character, put into the system prompt.",
    )
    age_min: int = setting(
        4, min=2, max=17, doc="Youngest child the toy talks to (sets vocabulary)."
    )
    age_max: int = setting(9, min=2, max=17, doc="Oldest child the toy talks to.")
    language: str = setting("en", doc="Language of the replies (BCP-47 code, e.g. en, ko, de).")
    speaking_style: str = setting(
        "short, simple, warm sentences; asks the child a question back now and then",
        doc="How the toy speaks, put into the system prompt.",
    )
    max_sentences: int = setting(
        4, min=1, max=30, doc="At most this many sentences per reply; the rest is cut."
    )
    max_chars: int = setting(400, min=40, max=4000, doc="At most this many characters per reply.")
    fallback: str = setting(
        "Hmm, my thinking cap is a bit slow right now. Let's try that one again in a moment!",
        doc="Said in character when the model does not answer in time or fails.",
    )
    cut_ending: str = setting(
        "Oops, I lost my thought. Let's talk about something else!",
        doc="Added when a reply stream breaks off in the middle.",
    )
    extra_instructions: str = setting(
        "", doc="Anything else for the system prompt (house rules, topics)."
    )

    def __post_init__(self) -> None:
        if self.age_min > self.age_max:
            raise ValueError("age_min must not be larger than age_max")


def _default_personas() -> dict[str, Persona]:
    return {"pip": Persona()}


@dataclasses.dataclass(frozen=True)
class LlmSettings:
    """Settings of the ``llm`` section."""

    base_url: str = setting(
        "",
        doc="OpenAI-compatible API root, e.g. http://127.0.0.1:11434/v1 (Ollama). "
        "Empty: the built-in offline responder (rule-based, not a language model).",
    )
    api_key: str | None = setting(
        None, doc="Bearer token; use {$env: OPENAI_API_KEY} or {$file: PATH}, never plain text."
    )
    model: str = setting("", doc="Model name the server knows (e.g. llama3.2:3b, gpt-4o-mini).")
    temperature: float = setting(0.7, min=0.0, max=2.0, doc="Sampling temperature.")
    max_tokens: int = setting(
        200, min=16, max=4096, doc="Upper bound of tokens the model may generate per reply."
    )
    connect_timeout: float = setting(
        5.0, min=0.1, max=60, doc="Seconds to connect and get response headers."
    )
    first_token_timeout: float = setting(
        4.0,
        min=0.1,
        max=120,
        doc="Seconds from the request to the first text; then the persona's fallback line is said.",
    )
    idle_timeout: float = setting(
        5.0, min=0.1, max=120, doc="Seconds without new text before the reply is ended gracefully."
    )
    personas: dict[str, Persona] = setting(
        factory=_default_personas, doc="Personas by id; a toy selects one (Turn.persona)."
    )
    default_persona: str = setting(
        "pip", doc="Persona id used when the toy names none (or an unknown one)."
    )
    memory: bool = setting(True, doc="Remember each toy's conversation (SQLite in state_dir).")
    memory_db: str = setting(
        "llm_memory.sqlite",
        doc="Where memory lives: a SQLite file, relative to state_dir "
        "(or absolute), or a postgresql:// URL that several gateway processes share "
        "(docs/scaling.md; needs toyd[postgres]).",
    )
    memory_turns: int = setting(
        6, min=0, max=100, doc="Recent exchanges sent to the model verbatim."
    )
    summary_chars: int = setting(
        600, min=0, max=8000, doc="Bound of the running summary of older exchanges."
    )

    def __post_init__(self) -> None:
        if not self.personas:
            raise ValueError("personas must define at least one persona")
        if self.default_persona not in self.personas:
            raise ValueError(
                f"default_persona {self.default_persona!r} is not one of the personas: "
                + ", ".join(sorted(self.personas))
            )
        if self.base_url:
            httpclient.check_base_url(self.base_url)
