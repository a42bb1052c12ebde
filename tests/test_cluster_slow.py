"""Three gateway processes behind a real HAProxy, memory in a real PostgreSQL: a toy keeps its
conversation across a gateway killed mid-turn and across a database restart."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from linkkit import TOKEN, play_reply, speak_turn, speech
from toyd import State
from toyd import events as ev
from toyd.testing import next_event, running_daemon, wait_for
from toyd.testing.cluster import Cluster, haproxy_binary
from toyd.testing.postgres import postgres_bindir, start_postgres
from toyd.testing.standin import Script, StandIn

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        haproxy_binary() is None, reason="haproxy is not installed (apt-get install haproxy)"
    ),
    pytest.mark.skipif(
        postgres_bindir() is None, reason="PostgreSQL is not installed (apt-get install postgresql)"
    ),
]
pytest.importorskip("asyncpg", reason="toyd[postgres] not installed")


def toy_config(url: str) -> dict:
    return {
        "role": "device",
        "device_id": "toy-1",
        "plugins": ["cloudlink"],
        "turn_timeout": 6,
        "cloudlink": {
            "url": url,
            "token": TOKEN,
            "backoff_initial": 0.5,
            "backoff_max": 5.0,
            "reply_timeout": 4.0,
        },
    }


async def held_write_arrives(url: str, since: float, timeout: float = 20.0) -> None:
    """Poll the database (bounded) until an exchange written at or after ``since`` is there."""
    import asyncpg

    deadline = time.monotonic() + timeout
    while True:
        conn = await asyncpg.connect(url)
        try:
            found = await conn.fetchval(
                "SELECT count(*) FROM toyd_exchanges WHERE device_id = 'toy-1' AND at >= $1", since
            )
        finally:
            await conn.close()
        if found:
            return
        assert time.monotonic() < deadline, "the exchange held during the outage never arrived"
        await asyncio.sleep(0.2)


def said_before(request) -> list[str]:  # type: ignore[no-untyped-def]
    """What the child said in earlier turns, as the model was shown it."""
    return [m["content"] for m in request.json()["messages"][1:-1] if m["role"] == "user"]


async def test_turns_continue_across_a_gateway_kill_and_a_database_restart(tmp_path) -> None:
    with start_postgres() as pg:
        async with StandIn() as llm:
            llm.default = Script(reply="Nice to meet you, Mia.", first_token_delay=0.05)
            cluster = Cluster(
                tmp_path / "cluster",
                3,
                plugins=["gateway", "echochain", "llm"],
                gateway={"tokens": {"toy-1": TOKEN}, "alert_log": pg.url},
                sections={
                    "echochain": {"transcript": "my name is mia"},
                    "llm": {"base_url": llm.url, "memory_db": pg.url, "first_token_timeout": 10},
                },
            )
            await asyncio.to_thread(cluster.start)
            try:
                async with running_daemon(
                    toy_config(cluster.url), state_dir=tmp_path / "toy"
                ) as toy:
                    sub = toy.bus.subscribe("test", maxsize=100_000)
                    await next_event(sub, ev.CloudOnline, 20)

                    # 1. a turn through the proxy; the toy sits on one of the three gateways
                    await speak_turn(toy, sub, speech("my name is mia"), pace=0.02)
                    await play_reply(toy, sub)
                    await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
                    counts = await asyncio.to_thread(cluster.sessions)
                    assert sorted(counts) == [0, 0, 1], counts
                    serving = counts.index(1)

                    # 2. that gateway is killed mid-turn (the model is slow): the turn ends, the toy
                    #    reconnects through HAProxy to another gateway by itself
                    llm.scripts.append(Script(reply="Too late.", first_token_delay=8))
                    await speak_turn(toy, sub, speech("my name is mia"), pace=0.02)
                    link = toy.bus.subscribe("link", (ev.CloudOnline, ev.ReplyTimeout))
                    killed_at = time.monotonic()
                    await asyncio.to_thread(cluster.kill, serving, signal.SIGKILL)
                    # the turn goes to the toy's local fallback at once, not after a timeout
                    handed = await next_event(link, ev.ReplyTimeout, 5)
                    assert handed.reason == "link_lost"
                    await next_event(link, ev.CloudOnline, 20)
                    reconnect_s = time.monotonic() - killed_at
                    await wait_for(lambda: toy.state is State.IDLE, 15)
                    llm.scripts.clear()  # the slow answer may never have been asked for
                    counts = await asyncio.to_thread(cluster.sessions)
                    assert counts[serving] == 0 and sum(counts) == 1, counts

                    # 3. the new gateway knows the conversation (memory in PostgreSQL)
                    before = len(llm.requests)
                    await speak_turn(toy, sub, speech("my name is mia"), pace=0.02)
                    await play_reply(toy, sub)
                    await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
                    assert said_before(llm.requests[before]) == ["my name is mia"]

                    # 4. PostgreSQL restarts: turns go on, the memory written meanwhile is not lost
                    outage_at = time.time()
                    pg.stop("immediate")
                    await speak_turn(toy, sub, speech("my name is mia"), pace=0.02)
                    await play_reply(toy, sub)
                    await next_event(sub, ev.StateChanged, 10, lambda e: e.new is State.IDLE)
                    await asyncio.to_thread(pg.start)
                    before = len(llm.requests)
                    # the gateway's background retry writes the exchange held during the outage
                    await held_write_arrives(pg.url, outage_at)
                    await speak_turn(toy, sub, speech("my name is mia"), pace=0.02)
                    await play_reply(toy, sub)
                    assert said_before(llm.requests[before]) == ["my name is mia"] * 3
            finally:
                await asyncio.to_thread(cluster.stop)
    print(f"reconnect after a gateway kill: {reconnect_s:.2f} s")
