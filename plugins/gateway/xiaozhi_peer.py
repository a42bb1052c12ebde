"""The xiaozhi side of one session: its dialect and listen mode, its MCP tools, what its ``detect`` means.

Created when a session's hello is a xiaozhi hello (:func:`.xiaozhi.is_xiaozhi_hello`);
a toyd toy's session has none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from toyd.text import compact

from .mcp import McpClient, McpError
from .xiaozhi import Dialect

log = logging.getLogger(__name__)
SendText = Callable[[str], Awaitable[None]]


class XiaozhiPeer:
    """What the gateway knows about one xiaozhi client."""

    def __init__(self, dialect: Dialect, device_id: str, session_id: str, send: SendText) -> None:
        self.dialect = dialect
        self.device_id = device_id
        self.session_id = session_id
        self._send = send
        self.mode = ""  # its listen mode: manual | auto | realtime
        self.frames_ignored = 0  # audio outside listening: dropped quietly
        self.mcp = McpClient(device_id, self._send_mcp) if dialect.mcp else None

    async def _send_mcp(self, payload: dict[str, Any]) -> None:
        await self._send(
            json.dumps({"session_id": self.session_id, "type": "mcp", "payload": payload})
        )

    async def start(self) -> None:
        """After the server hello: MCP ``initialize`` when the client has MCP."""
        if self.mcp is not None:
            await self.mcp.start()

    def close(self) -> None:
        if self.mcp is not None:
            self.mcp.close()

    @staticmethod
    def words_of_detect(text: str | None, wake_words: tuple[str, ...], greeting: str) -> str | None:
        """What a ``listen detect`` asks to answer: the greeting for a wake word alone, else its text.

        As xiaozhi-esp32-server does: the text compared without case, punctuation and
        spaces against the wake words; a wake word alone is answered as if the child had
        said ``greeting`` ("" = not answered: None), any other text is the child's words.
        """
        key = compact(text or "")
        if not key:
            return None
        if key in {compact(w) for w in wake_words}:
            return greeting.strip() or None
        return (text or "").strip()

    async def set_volume(self, level: int) -> str:
        """Set the client's speaker volume through its MCP tool; McpError when it has none."""
        if self.mcp is None:
            raise McpError("the client did not announce MCP in its hello")
        tool = self.mcp.tool_with("set_volume", "volume")
        if tool is None:
            raise McpError(
                "the client offers no volume tool"
                if self.mcp.ready.is_set()
                else "the client's tool list has not arrived"
            )
        answer = await self.mcp.call(tool.name, {"volume": level})
        log.info("%s: volume set to %d through %s", self.device_id, level, tool.name)
        return answer
