"""The turns database on a real SQLite file: survives restarts, forgets in time, exports CSV,
and never blocks a caller when the disk falls behind."""

from __future__ import annotations

import contextlib
import csv
import io
import sqlite3
import time
from pathlib import Path

import pytest

from cli.config import load_config
from curator.config import CuratorConfig
from curator.report import summarize
from curator.store import CuratorStore, TurnRecord
from settings import ConfigError

DAY = 86400.0


def turn(question: str, *, at: float | None = None, outcome: str = "answered", **kw) -> TurnRecord:
    fields = {
        "session_id": "sess_1",
        "source": "server",
        "input": "typed",
        "answer": f"About {question}.",
        "first_audio_ms": 850.0,
        **kw,
    }
    return TurnRecord(
        at=time.time() if at is None else at, question=question, outcome=outcome, **fields
    )


def open_store(path: Path, retention_days: int = 28, **kw) -> CuratorStore:
    return CuratorStore.open(CuratorConfig(db_path=str(path), retention_days=retention_days), **kw)


def test_turns_survive_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "data" / "curator.sqlite3"  # the folder is created
    store = open_store(db)
    rows = [
        turn("What causes a tsunami?", link_url="https://sos.noaa.gov/x/", link_title="Tsunamis"),
        turn("Can you sing?", outcome="sorry"),
        turn("", outcome="misheard", input="spoken"),
    ]
    assert all(store.record(r) for r in rows)
    store.close()
    assert store.written == 3
    assert not store.record(turn("after close")), "a closed store takes nothing"

    reopened = open_store(db)
    try:
        back = reopened.turns()
        assert sorted(back, key=lambda r: r.at) == rows  # every field, as written
        assert reopened.record(turn("Tell me about hurricanes."))
        reopened.flush()
        assert [r.question for r in reopened.turns(limit=1)] == ["Tell me about hurricanes."]
    finally:
        reopened.close()


def test_retention_purges_old_turns_at_start(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    now = time.time()
    store = open_store(db, retention_days=365)
    for days_ago in (40, 29, 27, 1):
        store.record(turn(f"{days_ago} days ago", at=now - days_ago * DAY))
    store.close()

    kept = open_store(db, retention_days=28)
    try:
        assert sorted(r.question for r in kept.turns()) == ["1 days ago", "27 days ago"]
        assert kept.purged == 2
    finally:
        kept.close()


def test_retention_purges_periodically_while_running(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.sqlite3", retention_days=1, purge_interval_s=0.2)
    try:
        store.record(turn("yesterday's news", at=time.time() - 2 * DAY))
        store.record(turn("fresh"))
        store.flush()
        deadline = time.monotonic() + 10
        while store.purged == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [r.question for r in store.turns()] == ["fresh"]
        assert store.purged == 1
    finally:
        store.close()


def test_a_full_queue_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    """Another process holds the database: the writer waits, the queue fills, record() keeps
    returning at once (False, counted) and what was accepted is written after the lock goes."""
    db = tmp_path / "c.sqlite3"
    store = CuratorStore.open(CuratorConfig(db_path=str(db), queue_size=2))
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        accepted = [store.record(turn(f"q{i}")) for i in range(8)]
        # At most one batch in the writer's hands (it drains what is queued when it wakes: up to
        # queue_size rows) plus queue_size queued behind it.
        assert accepted.count(True) <= 2 * 2
        assert store.dropped == accepted.count(False) >= 4
    finally:
        blocker.execute("COMMIT")
        blocker.close()
    store.flush()
    store.close()
    assert store.written == accepted.count(True)
    reopened = open_store(db)
    try:
        assert len(reopened.turns()) == accepted.count(True)
    finally:
        reopened.close()


def test_csv_export(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.sqlite3")
    now = time.time()
    try:
        store.record(turn("old one", at=now - 10 * DAY))
        store.record(
            turn(
                "What causes a tsunami?",
                at=now - 60,
                link_url="https://sos.noaa.gov/catalog/datasets/tsunami/",
                link_title="Tsunami, Locations",
                showing="Sea Ice",
            )
        )
        store.record(turn('=HYPERLINK("http://evil")', at=now - 30, outcome="sorry"))
        store.record(turn("", at=now, outcome="misheard", input="spoken", first_audio_ms=None))
        store.flush()
        text = store.csv_text(since=now - DAY)
    finally:
        store.close()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["question"] for r in rows] == [
        "What causes a tsunami?",
        '\'=HYPERLINK("http://evil")',  # never a formula in the staff's spreadsheet
        "",
    ]
    first = rows[0]
    assert first["link_title"] == "Tsunami, Locations" and first["showing"] == "Sea Ice"
    assert first["outcome"] == "answered" and float(first["first_audio_ms"]) == 850.0
    assert time.strptime(first["time"], "%Y-%m-%dT%H:%M:%S%z")
    assert rows[2]["first_audio_ms"] == ""


def test_summary_counts_what_the_page_shows(tmp_path: Path) -> None:
    store = open_store(tmp_path / "c.sqlite3")
    now = time.time()
    try:
        link = {"link_url": "https://sos.noaa.gov/t/", "link_title": "Tsunamis"}
        store.record(turn("What causes a tsunami?", at=now - 50, session_id="a", **link))
        store.record(turn("what causes a tsunami", at=now - 40, session_id="b", **link))
        store.record(turn("Sing!", at=now - 30, session_id="b", outcome="sorry"))
        store.record(turn("Tell me", at=now - 20, session_id="b", outcome="barge_in"))
        store.record(turn("", at=now - 10, session_id="c", outcome="misheard", first_audio_ms=None))
        store.flush()
        s = summarize(store, now - DAY, now)
    finally:
        store.close()
    assert (s.total, s.sessions) == (5, 3)
    assert s.by_outcome["answered"] == 2 and s.by_outcome["misheard"] == 1
    assert s.datasets == [("Tsunamis", "https://sos.noaa.gov/t/", 2)]
    assert s.questions[0][1] == 2  # the same question, asked twice in different words' case
    assert [r.outcome for r in s.unanswered] == ["misheard", "sorry"]
    assert [r.question for r in s.barge_ins] == ["Tell me"]
    assert len(s.latency_points) == 4 and s.latency[-1].p50_ms == 850.0
    assert s.hourly and sum(sum(c.values()) for _, c in s.per_bucket) == 5


def test_config_section(tmp_path: Path) -> None:
    assert load_config(environ={}).curator == CuratorConfig()
    user = tmp_path / "user.toml"
    user.write_text('[curator]\nretention_days = 14\ndb_path = "/tmp/x.sqlite3"\n')
    cfg = load_config(user, environ={"SOS_VOICE__CURATOR__ENABLED": "false"})
    assert (cfg.curator.retention_days, cfg.curator.db_path) == (14, "/tmp/x.sqlite3")
    assert cfg.curator.enabled is False
    with pytest.raises(ConfigError, match=r"curator\.retention_days"):
        load_config(environ={"SOS_VOICE__CURATOR__RETENTION_DAYS": "0"})


def test_unusable_database_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=r"curator\.db_path"):
        open_store(blocker / "curator.sqlite3")
    foreign = tmp_path / "foreign.sqlite3"
    with contextlib.closing(sqlite3.connect(foreign)) as db:
        db.execute("PRAGMA user_version = 7")
    with pytest.raises(ConfigError, match="schema version 7"):
        open_store(foreign)
