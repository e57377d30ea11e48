"""One SQLite row per visitor turn: written by one thread, read by anyone, forgotten in time.

Why a writer thread with a bounded queue: a session emits its events on the event loop, and a
disk write (an fsync on a kiosk's SD card can take tens of milliseconds) must never sit in a
visitor's turn. :meth:`CuratorStore.record` only puts the row on a queue; one thread owns the
write connection, commits in batches and purges rows older than the retention every hour. If
the disk falls so far behind that the queue is full, the row is dropped, counted and logged:
losing a statistic is better than stalling a visitor.

Readers (the /curator page, CSV export) open their own connection per call; the database is in
WAL mode, so they never wait for the writer. Only text is stored, never audio.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import astuple, dataclass, fields
from pathlib import Path

from curator.config import CuratorConfig, default_db_path
from settings import ConfigError

log = logging.getLogger(__name__)

__all__ = ["OUTCOMES", "CuratorStore", "TurnRecord"]

# What became of a turn. "no_link" and "sorry" are answers that sent nobody to a dataset;
# "misheard" is speech Whisper rejected (or could not transcribe).
OUTCOMES = ("answered", "no_link", "sorry", "misheard", "barge_in", "cancelled", "failed")
SCHEMA_VERSION = 1
PURGE_INTERVAL_S = 3600.0
BATCH_ROWS = 200
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One turn as the staff see it. Times are Unix seconds; latencies are milliseconds from
    the end of the visitor's speech (None where the turn did not get that far)."""

    at: float
    session_id: str
    source: str  # "server" (a WebSocket client) or "kiosk" (the CLI's microphone loop)
    input: str  # "spoken" or "typed"
    question: str
    outcome: str
    answer: str = ""
    link_url: str | None = None
    link_title: str | None = None
    showing: str | None = None  # the dataset on the sphere when the question was asked
    audience: str = "general"
    transcript_ms: float | None = None
    first_text_ms: float | None = None
    first_audio_ms: float | None = None
    done_ms: float | None = None


COLUMNS = tuple(f.name for f in fields(TurnRecord))
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS turns (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    session_id TEXT NOT NULL,
    source TEXT NOT NULL,
    input TEXT NOT NULL,
    question TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ({", ".join(repr(o) for o in OUTCOMES)})),
    answer TEXT NOT NULL,
    link_url TEXT,
    link_title TEXT,
    showing TEXT,
    audience TEXT NOT NULL,
    transcript_ms REAL,
    first_text_ms REAL,
    first_audio_ms REAL,
    done_ms REAL
);
CREATE INDEX IF NOT EXISTS turns_at ON turns (at);
PRAGMA user_version = {SCHEMA_VERSION};
"""
_INSERT = f"INSERT INTO turns ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
_STOP = object()


class CuratorStore:
    """The turns database. :meth:`open` it (blocking), :meth:`record` from the event loop
    (never blocks), read with the query methods (blocking: call them off the loop), and
    :meth:`close` it to write what is queued."""

    def __init__(
        self,
        path: Path,
        *,
        retention_days: int,
        queue_size: int = 1000,
        purge_interval_s: float = PURGE_INTERVAL_S,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        self.purge_interval_s = purge_interval_s
        self.dropped = 0  # rows lost to a full queue
        self.written = 0
        self.purged = 0
        self._queue: queue.Queue[object] = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def open(
        cls, config: CuratorConfig, *, purge_interval_s: float = PURGE_INTERVAL_S
    ) -> CuratorStore:
        """Create or open the database named by ``config``, purge expired rows, start the
        writer. ConfigError (naming the file) if it cannot be created or is not ours."""
        path = Path(config.db_path).expanduser() if config.db_path else default_db_path()
        store = cls(
            path,
            retention_days=config.retention_days,
            queue_size=config.queue_size,
            purge_interval_s=purge_interval_s,
        )
        store.start()
        return store

    def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.closing(self._connect()) as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise ConfigError(
                        f"curator.db_path: {self.path} has schema version {version}, "
                        f"this sos-voice writes {SCHEMA_VERSION}; move the file away"
                    )
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_SCHEMA)
                self._purge(db)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"curator.db_path: cannot use {self.path}: {exc}") from exc
        self._thread = threading.Thread(target=self._write_loop, name="curator-writer", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued and stop the writer (blocking; idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:  # the writer is stuck (a locked file): leave it, it is a daemon
            log.warning("curator: the writer did not catch up; unwritten turns are lost")
            return
        thread.join(timeout)

    # ----------------------------------------------------------------- writing
    def record(self, row: TurnRecord) -> bool:
        """Queue ``row`` for writing; never blocks. False (counted, logged) if it was dropped."""
        if self._thread is None:
            return False
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "curator: %d turn(s) not recorded: the database writer is behind (%s)",
                    self.dropped,
                    self.path,
                )
            return False
        return True

    def flush(self) -> None:
        """Block until every row queued so far is committed (tests, shutdown)."""
        self._queue.join()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10.0)
        db.execute("PRAGMA busy_timeout = 10000")
        return db

    def _write_loop(self) -> None:
        with contextlib.closing(self._connect()) as db:
            next_purge = time.monotonic() + self.purge_interval_s
            while True:
                wait = max(0.0, next_purge - time.monotonic())
                try:
                    first = self._queue.get(timeout=wait)
                except queue.Empty:
                    first = None
                batch = [first] if first is not None else []
                while first is not None and len(batch) < BATCH_ROWS:
                    try:
                        batch.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                rows = [r for r in batch if isinstance(r, TurnRecord)]
                try:
                    if rows:
                        with db:
                            db.executemany(_INSERT, [astuple(r) for r in rows])
                        self.written += len(rows)
                    if time.monotonic() >= next_purge:
                        self._purge(db)
                        next_purge = time.monotonic() + self.purge_interval_s
                except Exception:  # a full disk loses these rows, never the writer itself
                    log.exception("curator: could not write %d turn(s) to %s", len(rows), self.path)
                finally:
                    for _ in batch:
                        self._queue.task_done()
                if any(r is _STOP for r in batch):
                    return

    def _purge(self, db: sqlite3.Connection) -> None:
        cutoff = time.time() - self.retention_days * DAY_S
        with db:
            deleted = db.execute("DELETE FROM turns WHERE at < ?", (cutoff,)).rowcount
        if deleted:
            self.purged += deleted
            log.info("curator: forgot %d turn(s) older than %d days", deleted, self.retention_days)

    # ----------------------------------------------------------------- reading
    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A read-only connection of the caller's own (blocking; use off the event loop)."""
        db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, timeout=10.0)
        try:
            yield db
        finally:
            db.close()

    def turns(self, since: float = 0.0, limit: int | None = None) -> list[TurnRecord]:
        """Turns at or after ``since``, newest first."""
        sql = f"SELECT {', '.join(COLUMNS)} FROM turns WHERE at >= ? ORDER BY at DESC, id DESC"
        args: tuple[object, ...] = (since,)
        if limit is not None:
            sql += " LIMIT ?"
            args += (limit,)
        with self.reader() as db:
            return [TurnRecord(*row) for row in db.execute(sql, args)]

    def csv_text(self, since: float = 0.0) -> str:
        """The turns since ``since`` as CSV (oldest first, local ISO times), for spreadsheets.

        A cell that starts with ``= + - @`` gets a leading apostrophe: a typed "question" must
        not become a formula in the curator's spreadsheet (CSV injection)."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["time", *COLUMNS[1:]])
        for row in reversed(self.turns(since)):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(row.at))
            writer.writerow([stamp, *(_cell(v) for v in astuple(row)[1:])])
        return out.getvalue()


def _cell(value: object) -> object:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return "" if value is None else value
