"""Streaming chat-completions client (OpenAI wire format: Ollama, llama.cpp, vLLM, OpenRouter)."""

from __future__ import annotations

import codecs
import json
import logging
from collections.abc import AsyncGenerator

from toyd import httpclient
from toyd.errors import BackendError

log = logging.getLogger(__name__)


class ChatClient:
    """POSTs ``/chat/completions`` with ``stream: true`` and yields the content deltas."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        temperature: float,
        max_tokens: int,
        connect_timeout: float,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = api_key
        self.model = model
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.connect_timeout = connect_timeout

    async def stream(self, messages: list[dict[str, str]]) -> AsyncGenerator[str, None]:
        """Content deltas until ``[DONE]``; a broken stream raises :class:`BackendError`.

        Closing this generator closes the connection, so the server stops generating.
        """
        body, headers = httpclient.json_body(
            {
                "model": self.model,
                "messages": messages,
                "stream": True,
                "temperature": self.temperature,
                "max_tokens": self.max_tokens,
            }
        )
        headers.update(httpclient.auth_headers(self.api_key))
        headers["Accept"] = "text/event-stream"
        response = await httpclient.request(
            "POST", self.url, body=body, headers=headers, timeout=self.connect_timeout
        )
        async with response:
            if response.status != 200:
                raise BackendError(
                    f"language model at {self.url} refused: {await httpclient.error_text(response)}"
                )
            # SSE is UTF-8; a backend that sends broken bytes gets them replaced, never a crash
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            finished, bad = False, 0
            try:
                async for raw in response.iter_lines():
                    line = decoder.decode(raw + b"\n").strip()
                    if "\ufffd" in line:
                        bad += line.count("\ufffd")
                        line = line.replace("\ufffd", "")
                    if not line.startswith("data:"):
                        continue  # comments (": keep-alive"), event names, blank separators
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    delta = _delta(data, self.url)
                    if delta:
                        yield delta
            finally:
                if bad:
                    log.warning(
                        "language model at %s sent %d undecodable (non-UTF-8) bytes; they were dropped",
                        self.url,
                        bad,
                    )
            if not finished:
                raise BackendError(f"language model at {self.url}: the stream ended before [DONE]")


def _delta(data: str, url: str) -> str:
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        log.warning("language model at %s sent a malformed event, skipped: %.80r", url, data)
        return ""
    if not isinstance(event, dict):
        return ""
    if "error" in event:
        error = event["error"]
        raise BackendError(
            f"language model at {url} failed mid-reply: "
            f"{error.get('message', error) if isinstance(error, dict) else error}"
        )
    choices = event.get("choices") or [{}]
    delta = choices[0].get("delta") or {} if isinstance(choices[0], dict) else {}
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""
