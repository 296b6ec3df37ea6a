"""The durable state: one SQLite file (WAL) under the state directory.

One writer (the daemon) and any number of readers (``veilleur alarms`` in another process):
in WAL mode readers see the last committed state and never wait for the writer. Each public
method is one transaction; ``commit_tick`` writes a whole tick atomically. A connection is
shared by the daemon's threads behind a lock. See ``docs/state.md``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from veilleur.store.schema import MIGRATIONS, Migration, open_connection, sqlite_error
from veilleur.store.types import (
    AlarmStateRecord,
    CommitResult,
    OutboxRow,
    OutboxStats,
    OutboxStatus,
    StoreCorruptError,
    StoreError,
    TickCommit,
)

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_MAX_ERROR_CHARS = 1000
_IN_CHUNK = 500  # ids per IN (...) query, well under SQLite's parameter limit
_OUTBOX_COLUMNS = (
    "id, notification_id, sink, alert, created_at, attempts, next_attempt_at, last_error, "
    "status, finished_at"
)


def _ts(dt: datetime) -> str:
    """A datetime as the stored text; naive datetimes are refused (they are a bug)."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} given to the store (use UTC)")
    return dt.astimezone(UTC).strftime(_TIME_FORMAT)


def _dt(text: str) -> datetime:
    return datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=UTC)


def _json(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True, allow_nan=False)


def _load_doc(text: str) -> dict[str, Any]:
    """The stored JSON object; ``{}`` if unreadable, so that callers decide what to do."""
    try:
        doc = json.loads(text)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class SqliteStore:
    """Open with ``SqliteStore.open(path)``; use as a context manager or call ``close()``."""

    def __init__(self, conn: sqlite3.Connection, path: Path, version: int) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.path = path
        self.schema_version = version

    # -- lifecycle -------------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        readonly: bool = False,
        timeout: float = 5.0,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> SqliteStore:
        """Open (and create or migrate) the state file. ``readonly`` is for the CLI: it never
        writes, and refuses a file that needs migrating. ``timeout`` is how long a writer waits
        for another writer's lock (seconds). ``migrations`` is a test seam."""
        path = Path(path)
        conn, version = open_connection(
            path, readonly=readonly, timeout=timeout, migrations=migrations
        )
        return cls(conn, path, version)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _transaction(self, action: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction: IMMEDIATE for writes (take the write lock up front, no upgrade
        deadlock), DEFERRED for reads (one consistent snapshot, never blocks the writer)."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise sqlite_error(self.path, action, exc) from exc

    # -- the tick --------------------------------------------------------------------------
    def commit_tick(self, tick: TickCommit) -> CommitResult:
        """Write everything a tick produced, atomically. Replaying the same tick is harmless:
        an outbox row that already exists for (notification_id, sink) is left as it is.
        Any failure, including a value that does not serialise (a blob or an alert that is not
        JSON, a naive datetime), writes nothing and raises ``StoreError``."""
        try:
            return self._write_tick(tick)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"state file {self.path}: tick not written: {exc}") from exc

    def _write_tick(self, tick: TickCommit) -> CommitResult:
        now = _ts(tick.now)
        enqueued = duplicates = 0
        with self._transaction("committing a tick") as c:
            c.executemany(
                "INSERT INTO watermarks (source_key, watermark, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source_key) DO UPDATE SET "
                "watermark = excluded.watermark, updated_at = excluded.updated_at",
                [(key, _ts(wm), now) for key, wm in tick.watermarks.items()],
            )
            c.executemany(
                "INSERT INTO seen_ids (source_key, event_id, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (source_key, event_id) DO UPDATE SET "
                "expires_at = max(expires_at, excluded.expires_at)",
                [(s.source_key, s.event_id, _ts(s.expires_at)) for s in tick.seen_ids],
            )
            pruned = c.execute("DELETE FROM seen_ids WHERE expires_at <= ?", (now,)).rowcount
            for key, doc in tick.engine_state.items():
                if doc is None:
                    c.execute("DELETE FROM engine_state WHERE key = ?", (key,))
                else:
                    c.execute(
                        "INSERT INTO engine_state (key, doc, updated_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET "
                        "doc = excluded.doc, updated_at = excluded.updated_at",
                        (key, _json(doc), now),
                    )
            c.executemany(
                "INSERT OR REPLACE INTO alarm_states (rule_id, dimensions_key, state, since, "
                "reason, last_evaluated, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        a.rule_id,
                        a.dimensions_key,
                        str(a.state),
                        _ts(a.since),
                        a.reason,
                        _ts(a.last_evaluated),
                        _json(a.details),
                    )
                    for a in tick.alarm_states
                ],
            )
            for item in tick.notifications:
                doc_text = _json(item.alert.to_dict())
                for sink in item.sinks:
                    # ON CONFLICT DO NOTHING rather than INSERT OR IGNORE: only the duplicate
                    # is ignored, a NOT NULL or CHECK violation still fails the tick.
                    cur = c.execute(
                        "INSERT INTO outbox (notification_id, sink, alert, created_at, "
                        "next_attempt_at) VALUES (?, ?, ?, ?, ?) "
                        "ON CONFLICT (notification_id, sink) DO NOTHING",
                        (item.alert.notification_id, sink, doc_text, now, now),
                    )
                    if cur.rowcount == 1:
                        enqueued += 1
                    else:
                        duplicates += 1
        return CommitResult(enqueued=enqueued, duplicates=duplicates, seen_pruned=pruned)

    # -- sources and engine ----------------------------------------------------------------
    def watermark(self, source_key: str) -> datetime | None:
        with self._transaction("reading a watermark", write=False) as c:
            row = c.execute(
                "SELECT watermark FROM watermarks WHERE source_key = ?", (source_key,)
            ).fetchone()
        return None if row is None else _dt(row[0])

    def watermarks(self) -> dict[str, datetime]:
        with self._transaction("reading watermarks", write=False) as c:
            rows = c.execute("SELECT source_key, watermark FROM watermarks").fetchall()
        return {key: _dt(wm) for key, wm in rows}

    def seen_ids(
        self, source_key: str, now: datetime, candidates: Iterable[str] | None = None
    ) -> frozenset[str]:
        """The ids seen for ``source_key`` and not yet expired at ``now`` (only those among
        ``candidates`` when given: the poller asks about the page it just read)."""
        at = _ts(now)
        found: set[str] = set()
        with self._transaction("reading seen ids", write=False) as c:
            if candidates is None:
                rows = c.execute(
                    "SELECT event_id FROM seen_ids WHERE source_key = ? AND expires_at > ?",
                    (source_key, at),
                ).fetchall()
                found.update(r[0] for r in rows)
            else:
                ids = sorted(set(candidates))
                for chunk in _chunks(ids, _IN_CHUNK):
                    marks = ", ".join("?" * len(chunk))  # placeholders only, no values
                    query = f"SELECT event_id FROM seen_ids WHERE event_id IN ({marks}) "  # noqa: S608
                    query += "AND source_key = ? AND expires_at > ?"
                    rows = c.execute(query, (*chunk, source_key, at)).fetchall()
                    found.update(r[0] for r in rows)
        return frozenset(found)

    def engine_state(self, key: str) -> dict[str, Any] | None:
        with self._transaction("reading engine state", write=False) as c:
            row = c.execute("SELECT doc FROM engine_state WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            doc = json.loads(row[0])
        except ValueError as exc:
            raise StoreCorruptError(f"state file {self.path}: engine state {key!r}: {exc}") from exc
        if not isinstance(doc, dict):
            raise StoreCorruptError(f"state file {self.path}: engine state {key!r} not an object")
        return doc

    # -- alarms ----------------------------------------------------------------------------
    def alarm_state(self, rule_id: str, dimensions_key: str) -> AlarmStateRecord | None:
        with self._transaction("reading an alarm state", write=False) as c:
            row = c.execute(
                "SELECT rule_id, dimensions_key, state, since, reason, last_evaluated, details "
                "FROM alarm_states WHERE rule_id = ? AND dimensions_key = ?",
                (rule_id, dimensions_key),
            ).fetchone()
        return None if row is None else _alarm(row)

    def alarm_states(self) -> list[AlarmStateRecord]:
        """Every alarm, by rule then dimensions (``veilleur alarms``)."""
        with self._transaction("reading alarm states", write=False) as c:
            rows = c.execute(
                "SELECT rule_id, dimensions_key, state, since, reason, last_evaluated, details "
                "FROM alarm_states ORDER BY rule_id, dimensions_key"
            ).fetchall()
        return [_alarm(row) for row in rows]

    # -- outbox ----------------------------------------------------------------------------
    def due(self, now: datetime, limit: int, sink: str | None = None) -> list[OutboxRow]:
        """Pending rows whose next attempt is at or before ``now``, oldest schedule first."""
        query = f"SELECT {_OUTBOX_COLUMNS} FROM outbox "  # noqa: S608 - constant columns
        query += "WHERE status = 'pending' AND next_attempt_at <= ? "
        params: list[Any] = [_ts(now)]
        if sink is not None:
            query += "AND sink = ? "
            params.append(sink)
        query += "ORDER BY next_attempt_at, id LIMIT ?"
        params.append(limit)
        with self._transaction("reading due outbox rows", write=False) as c:
            rows = c.execute(query, params).fetchall()
        return [_outbox_row(row) for row in rows]

    def mark_delivered(self, ids: Sequence[int], now: datetime) -> None:
        at = _ts(now)
        with self._transaction("marking rows delivered") as c:
            c.executemany(
                "UPDATE outbox SET status = 'delivered', finished_at = ?, "
                "attempts = attempts + 1 WHERE id = ? AND status = 'pending'",
                [(at, row_id) for row_id in ids],
            )

    def mark_retry(self, id: int, next_at: datetime, error: str) -> None:
        with self._transaction("scheduling a retry") as c:
            c.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ? "
                "WHERE id = ? AND status = 'pending'",
                (_ts(next_at), error[:_MAX_ERROR_CHARS], id),
            )

    def mark_dead(self, id: int, now: datetime, error: str) -> None:
        with self._transaction("dead-lettering a row") as c:
            c.execute(
                "UPDATE outbox SET status = 'dead', finished_at = ?, attempts = attempts + 1, "
                "last_error = ? WHERE id = ? AND status = 'pending'",
                (_ts(now), error[:_MAX_ERROR_CHARS], id),
            )

    def requeue_dead(self, now: datetime, notification_ids: Sequence[str] = ()) -> int:
        """Give dead-lettered rows (all, or those of ``notification_ids``) another life: pending
        now, attempts and age restarted, the same notification id. Returns the rows revived."""
        with self._transaction("re-queueing dead letters") as c:
            query = (
                "UPDATE outbox SET status = 'pending', attempts = 0, finished_at = NULL, "
                "created_at = ?, next_attempt_at = ? WHERE status = 'dead'"
            )
            at = _ts(now)
            if not notification_ids:
                return c.execute(query, (at, at)).rowcount
            revived = 0
            for nid in notification_ids:
                revived += c.execute(query + " AND notification_id = ?", (at, at, nid)).rowcount
            return revived

    def stats(self, now: datetime) -> OutboxStats:
        with self._transaction("reading outbox stats", write=False) as c:
            rows = c.execute(
                "SELECT sink, status, count(*), min(created_at) FROM outbox "
                "WHERE status IN ('pending', 'dead') GROUP BY sink, status"
            ).fetchall()
        pending: dict[str, int] = {}
        oldest: dict[str, timedelta] = {}
        dead: dict[str, int] = {}
        for sink, status, count, first in rows:
            if status == OutboxStatus.PENDING:
                pending[sink] = int(count)
                oldest[sink] = max(now - _dt(first), timedelta(0))
            else:
                dead[sink] = int(count)
        return OutboxStats(
            pending_by_sink=pending, oldest_pending_age_by_sink=oldest, dead_by_sink=dead
        )

    def dead_letters(self, limit: int) -> list[OutboxRow]:
        """The most recently dead-lettered rows first (``veilleur`` CLI)."""
        with self._transaction("reading dead letters", write=False) as c:
            rows = c.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'dead' "  # noqa: S608
                "ORDER BY finished_at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [_outbox_row(row) for row in rows]

    def prune_delivered(self, older_than: datetime) -> int:
        """Forget rows delivered before ``older_than``; returns how many. Keep them longer
        than a tick can be replayed (see docs/state.md)."""
        with self._transaction("pruning delivered rows") as c:
            cur = c.execute(
                "DELETE FROM outbox WHERE status = 'delivered' AND finished_at < ?",
                (_ts(older_than),),
            )
        return cur.rowcount


def _alarm(row: Sequence[Any]) -> AlarmStateRecord:
    return AlarmStateRecord(
        rule_id=row[0],
        dimensions_key=row[1],
        state=row[2],
        since=_dt(row[3]),
        reason=row[4],
        last_evaluated=_dt(row[5]),
        details=_load_doc(row[6]),
    )


def _outbox_row(row: Sequence[Any]) -> OutboxRow:
    return OutboxRow(
        id=int(row[0]),
        notification_id=row[1],
        sink=row[2],
        alert_doc=_load_doc(row[3]),
        created_at=_dt(row[4]),
        attempts=int(row[5]),
        next_attempt_at=_dt(row[6]),
        last_error=row[7],
        status=OutboxStatus(row[8]),
        finished_at=None if row[9] is None else _dt(row[9]),
    )
