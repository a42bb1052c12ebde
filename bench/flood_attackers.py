"""The attackers of the gateway flood benchmark, in a process of their own.

``python bench/flood_attackers.py PORT PER_KIND DURATION`` keeps ``PER_KIND`` sockets of
each kind open against the gateway on ``PORT`` for ``DURATION`` seconds, each reconnecting
as soon as it is dropped (idle, half-open upgrade, bad login: see bench_gateway_flood.py),
and prints what they saw as one JSON line. A process of its own, so the legitimate toy's
event loop is not theirs.
"""

from __future__ import annotations

import asyncio
import collections
import json
import resource
import sys


def why(exc: BaseException) -> str:
    """One failed attempt, e.g. 'TimeoutError' or 'InvalidStatus 503' or 'ConnectionResetError'."""
    name = type(exc).__name__
    status = getattr(getattr(exc, "response", None), "status_code", None)
    cause = exc.__cause__ or exc.__context__
    detail = f" {status}" if status else (f" ({type(cause).__name__}: {cause})" if cause else "")
    if isinstance(exc, OSError) and exc.errno:
        detail = f" [{exc.strerror}]"
    return f"{name}{detail}"[:100]


class Flood:
    """Sockets that reconnect as soon as they are dropped; counts what they saw."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.stop = asyncio.Event()
        self.open = 0
        self.max_open = 0
        self.connects = 0
        self.refused_401 = 0
        self.connect_errors = 0
        self.reset_at_connect = 0
        self.errors: collections.Counter[str] = collections.Counter()

    async def _one(self, kind: str) -> None:
        upgrade = (
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\nDevice-Id: toy-1\r\n"
        )
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 5
                )
            except ConnectionResetError:  # accepted, then dropped before the connect completed here
                self.connects += 1
                self.reset_at_connect += 1
                continue
            except (OSError, TimeoutError) as exc:
                self.connect_errors += 1
                self.errors[why(exc)] += 1
                await asyncio.sleep(0.05)
                continue
            self.connects += 1
            self.open += 1
            self.max_open = max(self.max_open, self.open)
            try:
                if kind == "half-open":
                    writer.write(upgrade.encode())
                elif kind == "bad login":
                    writer.write(
                        (upgrade + "Authorization: Bearer wrong-token-123\r\n\r\n").encode()
                    )
                stop = asyncio.ensure_future(self.stop.wait())
                read = asyncio.ensure_future(reader.read(4096))
                await asyncio.wait([stop, read], return_when=asyncio.FIRST_COMPLETED)
                stop.cancel()
                read.cancel()
                if (
                    read.done()
                    and not read.cancelled()
                    and not read.exception()
                    and b" 401 " in read.result()[:20]
                ):
                    self.refused_401 += 1
            except OSError:
                pass
            finally:
                self.open -= 1
                writer.transport.abort()

    def start(self, per_kind: int) -> list[asyncio.Task[None]]:
        return [
            asyncio.create_task(self._one(kind))
            for kind in ("idle", "half-open", "bad login")
            for _ in range(per_kind)
        ]


async def flood_process(port: int, per_kind: int, duration: float) -> None:
    """The attackers, in a process of their own (the legit toy's event loop must not be theirs)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # more than 1 024 sockets
    flood = Flood(port)
    tasks = flood.start(per_kind)
    await asyncio.sleep(duration)
    flood.stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    print(
        json.dumps(
            {
                "max_open": flood.max_open,
                "connects": flood.connects,
                "refused_401": flood.refused_401,
                "connect_errors": flood.connect_errors,
                "reset_at_connect": flood.reset_at_connect,
                "cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
                "errors": dict(flood.errors.most_common(3)),
            }
        )
    )


if __name__ == "__main__":
    port, per_kind, duration = sys.argv[1:4]
    asyncio.run(flood_process(int(port), int(per_kind), float(duration)))
