"""paho-mqtt bridged into asyncio: paho's network loop in its own thread, results as futures.

Why a thread (``loop_start``) rather than driving paho's socket from asyncio: paho's
thread already does connect, TLS handshakes, keepalive pings and reconnect with
backoff, and TLS handshakes and DNS lookups would otherwise block the event loop.
The price is one thread; the rule that keeps it safe is that paho callbacks never
touch our state: they only hand data to the event loop with ``call_soon_threadsafe``.
``Client.publish``/``subscribe`` are thread-safe in paho 2.x, so the loop calls them
directly.

paho is imported when a bridge starts connecting, not when this module is imported: by
the bridge's own task, on a thread, after the daemon is READY (``start(after=app.ready)``).
The toy reaches READY without waiting for it (tens of milliseconds on a Pi Zero) and the
event loop never blocks on it. Until then the bridge is simply not connected yet, which
every user already handles.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ToydError
from .settings import BrokerSettings, TlsSettings

if TYPE_CHECKING:
    import paho.mqtt.client as paho

log = logging.getLogger(__name__)


async def wait_event(event: asyncio.Event, timeout: float) -> bool:
    """Wait for ``event`` up to ``timeout`` s; True if it was set.

    ``asyncio.timeout`` rather than ``wait_for``: on Python 3.11 ``wait_for`` can swallow a
    cancellation that arrives as the event fires, and the service would never stop.
    """
    try:
        async with asyncio.timeout(timeout):
            await event.wait()
    except TimeoutError:
        return False
    return True


class NotConnected(ToydError):
    """The broker is not reachable right now; the message was not sent."""


class MqttBridge:
    """One MQTT client: connect in the background, publish with ``await``, messages as calls."""

    def __init__(
        self,
        settings: BrokerSettings,
        *,
        client_id: str,
        will_topic: str | None = None,
        subscriptions: Callable[[], list[str]],
        on_message: Callable[[str, bytes, bool], None],
        on_connected: Callable[[], None] = lambda: None,
        on_disconnected: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        self._will_topic = will_topic
        self.connected = False
        self._subscriptions = subscriptions
        self._on_message = on_message
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._failures = 0
        self._stopping = False
        self.connects = 0
        self.client: paho.Client | None = None  # set once paho is imported and connecting
        self._connecting: asyncio.Task[None] | None = None

    async def start(self, after: asyncio.Event | None = None) -> None:
        """Start connecting in the background; a TLS file that cannot be read is an error now.

        The files are read off the loop; paho is imported and its thread started by the
        bridge's own task (:meth:`stop` ends it), so the caller does not wait for either.
        With ``after`` (the daemon's ``App.ready``) that task waits for it first: an import
        on a thread would share the CPU with the start-up and slow it down.
        """
        tls = await asyncio.to_thread(tls_context, self.settings.tls)
        self._loop = asyncio.get_running_loop()
        self._connecting = asyncio.create_task(
            self._connect(tls, after), name=f"mqtt-connect:{self.client_id}"
        )

    async def _connect(self, tls: ssl.SSLContext | None, after: asyncio.Event | None) -> None:
        if after is not None:
            await after.wait()
        try:
            client = await asyncio.to_thread(self._new_client, tls)
        except Exception as exc:  # noqa: BLE001 - e.g. paho not installed: say so, the toy works on
            log.error("MQTT unavailable: %s: %s", type(exc).__name__, exc)
            return
        self.client = client
        client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive)
        client.loop_start()  # paho's thread connects, and retries on its own with backoff

    def _new_client(self, tls: ssl.SSLContext | None) -> paho.Client:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        settings = self.settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv311,
            clean_session=True,
        )
        if settings.username:
            client.username_pw_set(settings.username, settings.password or None)
        if self._will_topic:
            client.will_set(self._will_topic, "offline", qos=1, retain=True)
        client.reconnect_delay_set(settings.reconnect_min, settings.reconnect_max)
        client.max_queued_messages_set(1000)  # bounded memory while the broker is away
        if tls is not None:
            client.tls_set_context(tls)
            client.tls_insecure_set(settings.tls.insecure)
        client.on_connect = self._cb_connect
        client.on_connect_fail = self._cb_connect_fail
        client.on_disconnect = self._cb_disconnect
        client.on_message = self._cb_message
        client.on_publish = self._cb_publish
        client.on_socket_open = _no_delay
        return client

    async def stop(self, goodbye: tuple[str, str] | None = None) -> None:
        """Disconnect cleanly, publishing ``goodbye`` (topic, payload) first if connected.

        paho's thread is joined off the loop; a start still importing paho is called off.
        """
        self._stopping = True
        if self._connecting is not None:
            self._connecting.cancel()
            await asyncio.wait({self._connecting})
        if self.client is not None:
            await asyncio.to_thread(self._disconnect, self.client, goodbye)

    def _disconnect(self, client: paho.Client, goodbye: tuple[str, str] | None) -> None:
        if goodbye and self.connected:
            info = client.publish(goodbye[0], goodbye[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout=0.5)
            except (RuntimeError, ValueError):
                pass
        client.disconnect()
        client.loop_stop()

    # --- API for the event loop -------------------------------------------------------

    async def publish(
        self, topic: str, payload: str | bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and, for QoS 1, wait for the broker's PUBACK; NotConnected if it is away."""
        if not self.connected or self.client is None:
            raise NotConnected(f"not connected to {self.settings.host}:{self.settings.port}")
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc:  # MQTT_ERR_SUCCESS is 0
            from paho.mqtt.client import error_string

            raise NotConnected(f"publish to {topic} failed: {error_string(info.rc)}")
        if qos == 0:
            return
        # on_publish can only reach us through call_soon_threadsafe, i.e. after this
        # synchronous section: registering the future here cannot miss it
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[info.mid] = future
        try:
            await future
        finally:
            self._pending.pop(info.mid, None)

    def publish_nowait(
        self, topic: str, payload: str | bytes, *, qos: int = 0, retain: bool = False
    ) -> bool:
        """Fire and forget; False when not connected."""
        if not self.connected or self.client is None:
            return False
        return not self.client.publish(topic, payload, qos=qos, retain=retain).rc

    # --- paho's thread: hand everything to the loop -------------------------------------

    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _cb_connect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        if reason.is_failure:
            self._call(self._failed, f"refused: {reason}")
            return
        topics = self._subscriptions()
        if topics:
            client.subscribe([(t, 1) for t in topics])  # resubscribe on every (re)connect
        self._call(self._up)

    def _cb_connect_fail(self, client: paho.Client, userdata: Any) -> None:
        self._call(self._failed, "unreachable")

    def _cb_disconnect(
        self, client: paho.Client, userdata: Any, flags: Any, reason: Any, properties: Any
    ) -> None:
        self._call(self._down, str(reason))

    def _cb_message(self, client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        self._call(self._on_message, message.topic, bytes(message.payload), bool(message.retain))

    def _cb_publish(
        self, client: paho.Client, userdata: Any, mid: int, reason: Any, properties: Any
    ) -> None:
        self._call(self._acked, mid)

    # --- back on the loop ---------------------------------------------------------------

    def _up(self) -> None:
        self.connected = True
        self.connects += 1
        where = f"{self.settings.host}:{self.settings.port}"
        if self._failures:
            log.info("connected to MQTT broker %s after %d failed attempts", where, self._failures)
        else:
            log.info("connected to MQTT broker %s as %s", where, self.client_id)
        self._failures = 0
        self._on_connected()

    def _failed(self, why: str) -> None:
        self._failures += 1
        # one line per outage, not one per retry: the toy works without the broker
        level = logging.WARNING if self._failures == 1 else logging.DEBUG
        log.log(
            level,
            "MQTT broker %s:%s %s; the toy works without it, retrying in the background",
            self.settings.host,
            self.settings.port,
            why,
        )

    def _down(self, why: str) -> None:
        was = self.connected
        self.connected = False
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NotConnected(f"connection lost before PUBACK ({why})"))
        if self._stopping:
            return
        if was:
            log.warning("lost the MQTT broker (%s); reconnecting in the background", why)
            self._failures = 1
            self._on_disconnected()
        else:  # dropped before CONNACK: a TLS or auth refusal seen late
            self._failed(f"closed the connection ({why})")

    def _acked(self, mid: int) -> None:
        future = self._pending.get(mid)
        if future is not None and not future.done():
            future.set_result(None)


def tls_context(tls: TlsSettings) -> ssl.SSLContext | None:
    """The TLS context for the broker, None without TLS (blocking file reads: off the loop)."""
    if not tls.enabled:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the certificate and the host name
    try:
        if tls.cert:
            context.load_cert_chain(tls.cert, tls.key or None)
        if tls.ca:
            context.load_verify_locations(tls.ca)
        else:
            context.load_default_certs()
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ToydError(f"mqtt.tls: cannot load certificates: {exc}") from None
    return context


def _no_delay(client: paho.Client, userdata: Any, sock: Any) -> None:
    """Small control messages must not wait for Nagle's algorithm (40 ms per hop)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):  # not a TCP socket (websockets/unix): nothing to tune
        pass
