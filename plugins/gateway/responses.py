"""A session's responses: one task per response, cancelled on abort, barge-in, replacement and close.

At most one response runs. A cancelled one sends nothing more (its downlink is marked
cancelled before the task is), and gets :data:`CANCEL_GRACE` to unwind; a hook that
ignores the cancellation is left to finish in the background instead of stalling
the session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from toyd.errors import BackendError
from toyd.events import TurnLatency
from toyd.protocol import Error, Tts, codes
from toyd.turn import Turn

from .context import SessionContext
from .downlink import Downlink, Send
from .pipeline import AlertSink, Pipeline
from .xiaozhi import Dialect

log = logging.getLogger(__name__)
CANCEL_GRACE = 2.0  # seconds a cancelled response may take to unwind before the session moves on
Work = Callable[[Pipeline], Awaitable[None]]


class Responses:
    """Runs the session's responses; ``on_finished`` is called when one ends by itself."""

    def __init__(
        self,
        context: SessionContext,
        device_id: str,
        send: Send,
        *,
        on_alert: AlertSink,
        on_finished: Callable[[], None],
    ) -> None:
        self.context = context
        self.device_id = device_id
        self._send = send
        self._on_alert = on_alert
        self._on_finished = on_finished
        self.task: asyncio.Task[None] | None = None
        self.response_id = 0
        self.downlink: Downlink | None = None  # the running response's
        self.stopping: set[asyncio.Task[None]] = set()  # cancelled responses still unwinding
        self._next = 1

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(
        self, work: Work, turn: Turn, dialect: Dialect | None, end_of_speech: float | None
    ) -> None:
        """Run ``work`` as the session's next response (numbered per session from 1)."""
        self.response_id, self._next = self._next, self._next + 1
        lead = self.context.settings.downlink_lead_ms / 1000
        if dialect is not None:  # bare Opus at the rate and frame length the client asked for
            self.downlink = Downlink(
                self._send,
                self.response_id,
                turn.turn_id,
                lead=lead,
                raw=True,
                sample_rate=dialect.sample_rate,
                frame_ms=dialect.frame_ms,
            )
        else:
            self.downlink = Downlink(self._send, self.response_id, turn.turn_id, lead=lead)
        pipeline = Pipeline(
            self.context,
            turn,
            self.downlink,
            on_alert=self._on_alert,
            end_of_speech=end_of_speech,
        )
        self.task = asyncio.create_task(
            self._run(pipeline, work), name=f"gateway:{self.device_id}:{self.response_id}"
        )

    async def _run(self, pipeline: Pipeline, work: Work) -> None:
        downlink = pipeline.downlink
        try:
            await work(pipeline)
            self._publish_latency(pipeline)
        except Exception as exc:  # noqa: BLE001 - one failed turn must not take the session down
            if not isinstance(exc, BackendError):
                log.debug("%s: turn traceback", self.device_id, exc_info=exc)
                exc = BackendError(f"{type(exc).__name__}: {exc}")
            log.error("%s: turn %s failed: %s", self.device_id, pipeline.turn.turn_id, exc)
            await self._send(Error(code=codes.BACKEND, message=str(exc)[:300], ref="listen"))
            await downlink.stop("error", pipeline.latency())
        finally:
            if self.task is asyncio.current_task():
                self.task = None
                self._on_finished()

    async def cancel(self, reason: str | None = None, turn_id: str = "") -> bool:
        """Stop the running response at once (its hooks' iterators are closed); False if none ran.

        ``reason``: also tell the toy (``tts stop``, for the session's turn ``turn_id``).
        """
        task, self.task = self.task, None
        if task is None or task.done():
            return False
        if self.downlink is not None:  # raw xiaozhi audio has no response id
            self.downlink.cancelled = True
        # From here on the response sends nothing: its next step raises CancelledError, and
        # its cleanup only closes iterators. So the stop can go out before it has unwound.
        task.cancel()
        if reason:
            await self._send(
                Tts(
                    state="stop",
                    response_id=self.response_id,
                    turn_id=turn_id,
                    reason=reason,
                )
            )
        # hooks get CancelledError and aclose(); one that ignores it must not stall the session
        done, _ = await asyncio.wait([task], timeout=CANCEL_GRACE)
        if not done:
            log.warning(
                "%s: response %d is slow to stop (a hook ignores cancellation)",
                self.device_id,
                self.response_id,
            )
            self.stopping.add(task)
            task.add_done_callback(self.stopping.discard)
        return True

    async def close(self) -> None:
        """The session ended: cancel the running response, wait a little for those unwinding."""
        await self.cancel()
        if self.stopping:
            await asyncio.wait(self.stopping, timeout=CANCEL_GRACE)

    def _publish_latency(self, pipeline: Pipeline) -> None:
        lat = pipeline.latency()
        self.context.publish(
            TurnLatency(
                device_id=self.device_id,
                turn_id=pipeline.turn.turn_id,
                response_id=pipeline.downlink.response_id,
                **{k: v for k, v in lat.items() if k in TurnLatency.__dataclass_fields__},
            )
        )
