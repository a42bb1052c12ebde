"""The response cache file: matching, LRU, expiry, corruption, full disk — on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from toyd.events import CacheStore, OfflinePhrases
from toyd.testing import next_event, running_daemon, wait_for
from toyd.text import compact
from toyd_plugins.cache.audio import ReplyAudioError, decode_opus, encode_opus
from toyd_plugins.cache.store import Entry, ResponseStore

PCM = bytes(range(256)) * 25  # 6400 bytes: 10 frames of not-silence


def entry(
    phrase: str, reply: str = "reply", source: str = "cloud", audio: bytes | None = b"x" * 1000
) -> Entry:
    return Entry(
        key=compact(phrase), phrase=phrase, reply=reply, audio=audio, codec="pcm", source=source
    )


async def test_put_get_counts_hits_and_uses_wal(tmp_path):
    store = ResponseStore(tmp_path / "r.db", max_bytes=1_000_000)
    await store.open()
    assert await store.put(entry("노래 불러 줘", "랄랄라"))
    got = await store.get(compact("노래 불러줘"))
    assert got is not None and got.reply == "랄랄라"
    got = await store.get(compact("노래불러줘"))
    assert got.hits == 1
    await store.close()
    db = sqlite3.connect(tmp_path / "r.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT hits FROM responses").fetchone()[0] == 2


async def test_lru_eviction_keeps_config_entries(tmp_path):
    store = ResponseStore(tmp_path / "r.db", max_bytes=3500)
    await store.open()
    await store.put(entry("pinned", source="config"))
    await store.put(entry("old"))
    await store.put(entry("middle"))
    await store.get("old")  # "old" is now more recently used than "middle"
    await store.put(entry("new"))  # 4 x ~1010 bytes > 3500: one cloud entry must go
    keys = set(await store.keys())
    assert keys == {"pinned", "old", "new"}
    await store.close()


async def test_expired_entries_miss_and_are_evicted(tmp_path):
    store = ResponseStore(tmp_path / "r.db", max_bytes=1_000_000)
    await store.open()
    await store.put(entry("soon"), ttl=0.05)
    await store.put(entry("later"), ttl=60)
    await asyncio.sleep(0.1)
    assert await store.get("soon") is None
    assert set(await store.keys()) == {"later"}
    await store.close()


async def test_corrupt_file_is_moved_aside_not_deleted(tmp_path, caplog):
    path = tmp_path / "r.db"
    garbage = b"this is not a database" * 100
    path.write_bytes(garbage)
    store = ResponseStore(path, max_bytes=1_000_000)
    await store.open()
    assert store.moved_aside is not None and store.moved_aside.read_bytes() == garbage
    assert "corrupt" in caplog.text and str(store.moved_aside) in caplog.text
    assert await store.put(entry("works again"))
    assert await store.get("worksagain") is not None
    await store.close()


async def test_full_disk_turns_read_only_and_keeps_answering(tmp_path, caplog):
    path = tmp_path / "r.db"
    store = ResponseStore(path, max_bytes=100_000_000)
    await store.open()
    await store.put(entry("kept", audio=b"k" * 1000))
    await store.close()
    # SQLITE_FULL without filling the machine's disk: cap the file at its current size
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    store = ResponseStore(path, max_bytes=100_000_000, max_pages=pages)
    await store.open()
    assert store.writable
    ok = await store.put(entry("big", audio=b"b" * 200_000))
    assert not ok and not store.writable
    assert "read-only" in caplog.text
    got = await store.get("kept")
    assert got is not None and got.audio == b"k" * 1000  # nothing stored was lost
    assert await store.get("big") is None
    await store.close()


def test_opus_round_trip_and_truncation():
    import numpy as np

    t = np.arange(16000) / 16000
    pcm = (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()
    blob = encode_opus(pcm)
    assert len(blob) < len(pcm) / 5
    out = decode_opus(blob)
    assert len(out) == len(pcm)
    with pytest.raises(ReplyAudioError):
        decode_opus(blob[:-3])


async def _lookup(app, sub, text):
    return await asyncio.wait_for(app.host.call_first("toyd_lookup_reply", text=text), 10)


async def test_plugin_fills_from_config_matches_exact_then_fuzzy(state_dir):
    config = {
        "plugins": ["tts_espeak", "cache"],
        "cache": {
            "responses": {"노래 불러 줘!": "랄랄라", "Tell me a story": "Once upon a time"},
            "language": "ko",
            "fuzzy_threshold": 80,
        },
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        phrases = await next_event(sub, OfflinePhrases, 30)
        assert set(phrases.phrases) == {"노래 불러 줘!", "Tell me a story"}
        hit = await _lookup(app, sub, "노래불러줘")
        assert hit.hit and hit.reply == "랄랄라" and hit.score == 100 and len(hit.pcm) > 16000
        fuzzy = await _lookup(app, sub, "tell me the story")
        assert fuzzy.hit and fuzzy.reply == "Once upon a time" and 80 <= fuzzy.score < 100
        miss = await _lookup(app, sub, "what is the weather")
        assert not miss.hit


async def test_plugin_keeps_cacheable_cloud_replies_across_restarts(state_dir):
    config = {"plugins": ["cache"], "cache": {"codec": "opus"}}
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        await next_event(sub, OfflinePhrases, 10)
        app.bus.publish(
            CacheStore(phrase="What is your name?", reply="I am Toy!", pcm=PCM, cache_key="k1")
        )
        await next_event(sub, OfflinePhrases, 10, lambda e: "What is your name?" in e.phrases)
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        await next_event(sub, OfflinePhrases, 10)
        hit = await _lookup(app, sub, "what is your name")
        assert hit.hit and hit.reply == "I am Toy!" and len(hit.pcm) == len(PCM)


async def test_plugin_with_unusable_cache_dir_keeps_daemon_running(state_dir, caplog):
    blocker = state_dir / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    config = {"plugins": ["cache"], "cache": {"path": str(blocker / "responses.db")}}
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        miss = await _lookup(app, sub, "anything")
        assert not miss.hit and "cannot open the response cache" in miss.error
    assert "response cache disabled" in caplog.text


async def test_plugin_on_a_full_disk_keeps_answering_what_it_has(state_dir, caplog):
    config = {
        "plugins": ["tts_espeak", "cache"],
        "cache": {"responses": {"hello there": "Hi!"}, "codec": "pcm"},
    }
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        await next_event(sub, OfflinePhrases, 30)
    pages = sqlite3.connect(state_dir / "responses.db").execute("PRAGMA page_count").fetchone()[0]
    config["cache"]["max_pages"] = pages  # the disk is full: not one more page
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        await next_event(sub, OfflinePhrases, 30)
        app.bus.publish(CacheStore(phrase="a new phrase", reply="x", pcm=PCM * 20))
        store = app.host.plugins["cache"].store
        await wait_for(lambda: not store.writable, 10)  # the store failed on the full disk
        hit = await _lookup(app, sub, "hello there")
        assert hit.hit and hit.reply == "Hi!" and hit.pcm
        assert not (await _lookup(app, sub, "a new phrase")).hit
    assert "read-only" in caplog.text


async def test_hook_reconfigure_cache_applies_new_phrases_live(state_dir):
    from toyd.config import validate
    from toyd.registry import Registry

    config = {"plugins": ["cache"], "cache": {"responses": {"old phrase": "old"}, "codec": "pcm"}}
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        await next_event(sub, OfflinePhrases, 30)
        new = {
            "state_dir": str(state_dir),
            "plugins": ["cache"],
            "cache": {"responses": {"new phrase": "new"}, "codec": "pcm"},
        }
        registry = Registry()
        needs_restart = await app.apply_config(
            validate(new, registry.schema, source="<push>", known_plugins=registry.names)
        )
        assert "cache" not in needs_restart
        phrases = await next_event(sub, OfflinePhrases, 30, lambda e: "new phrase" in e.phrases)
        assert "old phrase" not in phrases.phrases
        assert (await _lookup(app, sub, "new phrase")).reply == "new"


async def test_plugin_answers_a_miss_when_the_file_breaks_while_running(state_dir, caplog):
    config = {"plugins": ["cache"], "cache": {"responses": {"hello there": "Hi!"}, "codec": "pcm"}}
    async with running_daemon(config, state_dir=state_dir) as app:
        sub = app.bus.subscribe("t", (OfflinePhrases,), maxsize=100)
        await next_event(sub, OfflinePhrases, 30)
        store = app.host.plugins["cache"].store
        await store.db.execute(
            "DROP TABLE responses"
        )  # the file lost its table under the running daemon
        await store.db.commit()
        miss = await _lookup(app, sub, "hello there")
        assert not miss.hit and "no such table" in miss.error
        assert "response cache" in caplog.text and "failed" in caplog.text
        app.bus.publish(CacheStore(phrase="later", reply="still running"))
        miss = await _lookup(app, sub, "later")  # the service is still answering
        assert not miss.hit
