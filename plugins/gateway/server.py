"""The gateway's WebSocket server: authentication, one session per toy, health endpoint."""

from __future__ import annotations

import hmac
import json
import logging
import re
import ssl
import time

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from toyd import App
from toyd.protocol import limits

from .accept import MAX_BATCH, MAX_HELD, Acceptor
from .context import SessionContext
from .flood import FD_RESERVE, LogSummary, Unauthenticated, connection_class, open_file_limit
from .meters import LoopLag, percentiles
from .parents import ParentLink
from .proxy import client_address, networks
from .session import Session
from .settings import GatewaySettings
from .xiaozhi_peer import XiaozhiPeer

log = logging.getLogger(__name__)
# The WebSocket library logs request headers (tokens) and every frame at DEBUG, and every
# closed connection at INFO (a line per junk connection in a flood): keep its warnings only.
ws_log = logging.getLogger(f"{__name__}.websocket")
ws_log.addFilter(lambda record: record.levelno >= logging.WARNING)
DEVICE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
BUSY_RETRY_AFTER_S = 5  # what a full gateway asks toys to wait before retrying
_NO_TOKEN = b"\x00" * 32  # compared against when the device is unknown, so timing says nothing
CONNECTION_OPTIONS = {
    "max_queue": 64,
    "ping_interval": limits.KEEPALIVE_INTERVAL,
    "ping_timeout": limits.KEEPALIVE_TIMEOUT,
    "close_timeout": 2,
}


class Gateway:
    """Accepts toys, keeps one :class:`Session` per device id."""

    def __init__(self, app: App, settings: GatewaySettings) -> None:
        self.app = app
        self.parents = (
            ParentLink(settings.parents, app.device_id, self.xiaozhi_peer)
            if settings.parents.enabled
            else None
        )
        self.context = SessionContext(settings, app.host.call_first, app.bus.publish, self.parents)
        self.sessions: dict[str, Session] = {}
        self.server: Server | None = None
        self.started = time.monotonic()
        self.refused = 0
        self.loop_lag = LoopLag()
        self.summary = LogSummary(log)
        self.waiting = Unauthenticated(settings.max_unauthenticated, self.summary)
        self.session_limit = settings.max_sessions
        self._acceptor: Acceptor | None = None

    @property
    def settings(self) -> GatewaySettings:
        """The gateway's settings; setting them applies to new connections and turns."""
        return self.context.settings

    @settings.setter
    def settings(self, settings: GatewaySettings) -> None:
        self.context.settings = settings
        self.waiting.limit = settings.max_unauthenticated
        self._limit_sessions()

    def _limit_sessions(self) -> None:
        """At most max_sessions, and never more than the open-file limit leaves room for."""
        s = self.settings
        room = open_file_limit() - s.max_unauthenticated - FD_RESERVE - MAX_HELD
        self.session_limit = max(1, min(s.max_sessions, room))
        if self.session_limit < s.max_sessions:
            log.warning(
                "gateway: the open-file limit allows %d toys, not max_sessions %d; raise LimitNOFILE "
                "(systemd) to at least %d",
                self.session_limit,
                s.max_sessions,
                s.max_sessions + s.max_unauthenticated + FD_RESERVE + MAX_HELD,
            )

    @property
    def port(self) -> int:
        """The bound port (useful with ``port: 0``)."""
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    @property
    def public_url(self) -> str:
        """Where toys reach this gateway: ``public_url`` when set (the proxy), else this process."""
        if self.settings.public_url:
            return self.settings.public_url
        scheme = "wss" if self.settings.tls_cert else "ws"
        return f"{scheme}://{self.settings.host}:{self.port if self.server else self.settings.port}"

    async def start(self) -> None:
        """Bind and listen (raises OSError when the port is taken)."""
        s = self.settings
        if self.parents is not None:
            await self.parents.start(self.app.state_dir, self.app.ready)
        context = None
        if s.tls_cert:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(s.tls_cert, s.tls_key or None)
        self._limit_sessions()
        counted = connection_class(self.waiting)
        self.server = server = await serve(
            self._handle,
            s.host,
            s.port,
            ssl=context,
            process_request=self._process_request,
            create_connection=counted,
            open_timeout=s.handshake_timeout,
            backlog=MAX_BATCH,  # what asyncio accepts at once before the acceptor takes over
            compression=None,  # Opus does not compress; deflate would cost memory per toy
            max_size=limits.MAX_WS_FRAME,
            server_header="toyd-gateway",
            logger=ws_log,
            **CONNECTION_OPTIONS,
        )

        def connection(ready: bool, place: object) -> ServerConnection:  # as serve() makes them
            protocol = ServerProtocol(max_size=limits.MAX_WS_FRAME, logger=ws_log)
            conn = counted(protocol, server, **CONNECTION_OPTIONS)  # type: ignore[arg-type]
            conn.ready, conn.place = ready, place  # type: ignore[attr-defined]
            return conn

        self._acceptor = Acceptor(
            connection, self.waiting, self.summary, context, s.handshake_timeout
        )
        self._acceptor.start(server)
        log.info("gateway listening on %s://%s:%d", "wss" if context else "ws", s.host, self.port)

    async def stop(self) -> None:
        """Close every connection (1001) and the listening socket."""
        if self._acceptor is not None:
            self._acceptor.close()
            self._acceptor = None
        try:
            if self.server is not None:
                self.server.close()
                await self.server.wait_closed()  # up to close_timeout for a silent toy
                self.server = None
        finally:
            if self.parents is not None:  # closed even when the wait above is cut short
                await self.parents.stop()
            self.summary.flush()

    def client_address(self, conn: ServerConnection) -> str:
        """The real client IP, also behind a trusted proxy (``trusted_proxies``)."""
        return client_address(conn, networks(self.settings.trusted_proxies))

    def health(self) -> dict[str, object]:
        """What ``GET /healthz`` returns."""
        busy = sum(
            1 for s in self.sessions.values() if s.phase.value in ("listening", "responding")
        )
        return {
            "status": "ok",
            "public_url": self.public_url,
            "sessions": len(self.sessions),
            "active": busy,
            "uptime_s": round(time.monotonic() - self.started, 1),
            "refused": self.refused,
            "protocol_version": limits.PROTOCOL_VERSION,
            "frames": self.context.frame_timer.count,
            "frame_ms": percentiles(self.context.frame_timer.samples),
            "loop_lag_ms": percentiles(self.loop_lag.samples),
        }

    async def _authenticated(self, device_id: str, token: bytes) -> bool:
        """The configured token, else any plugin's ``toyd_authenticate`` (activated toys)."""
        expected = self.settings.tokens.get(device_id) if DEVICE_ID.match(device_id) else None
        valid = hmac.compare_digest(token, expected.encode() if expected is not None else _NO_TOKEN)
        if valid and expected is not None:
            return True
        if not token or not DEVICE_ID.match(device_id):
            return False
        try:
            text = token.decode("ascii")
        except UnicodeDecodeError:
            return False
        try:
            return bool(
                await self.app.host.call_first("toyd_authenticate", device_id=device_id, token=text)
            )
        except Exception as exc:  # noqa: BLE001 - a failing credential store refuses, it does not crash
            log.error("toyd_authenticate failed: %s: %s", type(exc).__name__, exc)
            return False

    def xiaozhi_peer(self, device_id: str) -> XiaozhiPeer | None:
        """The xiaozhi side of the toy's session, when it is a connected xiaozhi client."""
        session = self.sessions.get(device_id)
        return session.xiaozhi if session is not None else None

    def revoke(self, device_id: str) -> None:
        """End the session of a toy whose token was revoked."""
        session = self.sessions.get(device_id)
        if session is not None:
            self.app.spawn(session.revoke(), f"gateway:{device_id}:revoke")

    async def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if request.path.split("?", 1)[0] == "/healthz":
            body = json.dumps(self.health()).encode()
            headers = Headers(
                [
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(body))),
                    ("Cache-Control", "no-store"),
                ]
            )
            return Response(200, "OK", headers, body)
        device_id = request.headers.get("Device-Id", "")
        token = bearer_token(request.headers)
        if not await self._authenticated(device_id, token):
            self.refused += 1
            self.summary.note("refused connections: bad credentials", self.client_address(conn))
            return conn.respond(401, "Unauthorized\n")
        version = request.headers.get("Protocol-Version", str(limits.PROTOCOL_VERSION))
        if version != str(limits.PROTOCOL_VERSION):
            return conn.respond(
                400,
                f"Protocol-Version {version[:10]} is not served; this server speaks {limits.PROTOCOL_VERSION}\n",
            )
        if device_id not in self.sessions and len(self.sessions) >= self.session_limit:
            busy = conn.respond(503, "Too many toys connected; retry later\n")
            busy.headers["Retry-After"] = str(
                BUSY_RETRY_AFTER_S
            )  # a real refusal, unlike a proxy's 503
            return busy
        return None

    async def recheck_credentials(self) -> None:
        """After a reload: end the sessions of toys whose token is no longer accepted."""
        for device_id, session in list(self.sessions.items()):
            request = session.conn.request
            token = bearer_token(request.headers) if request else b""
            if not await self._authenticated(device_id, token):
                log.info(
                    "%s: its token is no longer accepted after the reload; closing session %s",
                    device_id,
                    session.session_id,
                )
                await session.revoke()

    async def _handle(self, conn: ServerConnection) -> None:
        self.waiting.done(conn)  # upgraded: authenticated
        device_id = conn.request.headers["Device-Id"] if conn.request else "?"
        session = Session(self.context, conn, device_id)
        old = self.sessions.get(device_id)
        self.sessions[device_id] = session
        if old is not None:
            log.info("%s: a new connection replaces session %s", device_id, old.session_id)
            self.app.spawn(old.replace(), f"gateway:{device_id}:replace")
        try:
            await session.run()
        finally:
            if self.sessions.get(device_id) is session:
                del self.sessions[device_id]
            log.info("%s: session %s ended", device_id, session.session_id)


def bearer_token(headers: Headers) -> bytes:
    """The token of an ``Authorization: Bearer ...`` header (empty when there is none)."""
    auth = headers.get("Authorization", "")
    return auth[7:].encode() if auth.startswith("Bearer ") else b""
