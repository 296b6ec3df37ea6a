"""The SQLite store: schema versioning, the tick transaction, seen ids, alarms, the outbox."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from veilleur.alerts import Alert, AlertKind, fingerprint, notification_id
from veilleur.model import Severity
from veilleur.store.schema import MIGRATIONS, SCHEMA_VERSION
from veilleur.store.sqlite import SqliteStore
from veilleur.store.types import (
    AlarmStateRecord,
    OutboxEnqueue,
    OutboxStatus,
    SeenId,
    StoreCorruptError,
    StoreError,
    StoreVersionError,
    TickCommit,
)

T0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
KEY = "cloudtrail/123456789012/us-east-1"


def make_alert(n: int, details: dict[str, object] | None = None) -> Alert:
    group = (("sourceIPAddress", f"203.0.113.{n}"),)
    fp = fingerprint("console-login-failures", group)
    return Alert(
        rule_id="console-login-failures",
        title="Burst of failed console sign-ins",
        severity=Severity.HIGH,
        kind=AlertKind.THRESHOLD,
        fingerprint=fp,
        notification_id=notification_id(fp, f"event-{n}"),
        count=5,
        first_seen=T0,
        last_seen=T0 + timedelta(minutes=2),
        group=group,
        details=details or {},
    )


def alarm(state: str, at: datetime = T0) -> AlarmStateRecord:
    return AlarmStateRecord(
        rule_id="cpu-high",
        dimensions_key="InstanceId=i-0abc",
        state=state,
        since=at,
        reason=f"went {state}",
        last_evaluated=at,
        details={"datapoints": [91.5, 93.0, 88.2]},
    )


def full_tick(now: datetime = T0) -> TickCommit:
    return TickCommit(
        now=now,
        watermarks={KEY: now - timedelta(minutes=1)},
        seen_ids=(SeenId(KEY, "evt-1", now + timedelta(minutes=30)),),
        engine_state={"engine": {"windows": {"rule": [1, 2, 3]}}},
        alarm_states=(alarm("ALARM", now),),
        notifications=(OutboxEnqueue(make_alert(1), ("sns", "eventbridge")),),
    )


def raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None, timeout=0)


def count(path: Path, table: str) -> int:
    conn = raw(path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        conn.close()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteStore]:
    with SqliteStore.open(path) as s:
        yield s


# -- opening, versions, corruption -------------------------------------------------------


def test_new_file_gets_the_schema_in_wal_mode_and_keeps_it_on_reopen(path: Path) -> None:
    with SqliteStore.open(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        store.commit_tick(full_tick())
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with SqliteStore.open(path) as again:
        assert again.schema_version == SCHEMA_VERSION
        assert again.watermark(KEY) == T0 - timedelta(minutes=1)


def test_a_new_state_file_is_readable_by_its_owner_only(path: Path) -> None:
    old = os.umask(0o022)
    try:
        with SqliteStore.open(path) as store:
            store.commit_tick(full_tick())
            for p in (path, path.with_name(path.name + "-wal")):
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    finally:
        os.umask(old)


def test_older_file_is_migrated_in_order_and_keeps_its_data(path: Path) -> None:
    with SqliteStore.open(path, migrations=MIGRATIONS[:1]) as v1:
        v1.commit_tick(full_tick())
    upgrade = (*MIGRATIONS, ("ALTER TABLE watermarks ADD COLUMN note TEXT DEFAULT 'x'",))
    with SqliteStore.open(path, migrations=upgrade) as v2:
        assert v2.schema_version == len(MIGRATIONS) + 1
        assert v2.watermark(KEY) == T0 - timedelta(minutes=1)
    conn = raw(path)
    assert conn.execute("SELECT note FROM watermarks").fetchone()[0] == "x"
    conn.close()


def test_failed_migration_leaves_the_file_at_its_old_version(path: Path) -> None:
    with SqliteStore.open(path) as store:
        store.commit_tick(full_tick())
    broken = (
        *MIGRATIONS,
        ("CREATE TABLE extra (x INTEGER)", "ALTER TABLE no_such_table ADD COLUMN y TEXT"),
    )
    with pytest.raises(StoreError, match="no_such_table"):
        SqliteStore.open(path, migrations=broken)
    conn = raw(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "extra" not in tables
    conn.close()
    assert count(path, "outbox") == 2


def test_file_from_a_newer_version_is_refused(path: Path) -> None:
    SqliteStore.open(path).close()
    conn = raw(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreVersionError, match="newer than this veilleur"):
        SqliteStore.open(path)
    with pytest.raises(StoreVersionError, match="newer"):
        SqliteStore.open(path, readonly=True)


def test_readonly_open_refuses_a_file_that_needs_migrating(path: Path) -> None:
    SqliteStore.open(path, migrations=MIGRATIONS[:0]).close()
    with pytest.raises(StoreVersionError, match="start the daemon"):
        SqliteStore.open(path, readonly=True)


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(path: Path) -> None:
    garbage = b"this is not sqlite at all\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreCorruptError, match="not a readable SQLite database"):
        SqliteStore.open(path)
    assert path.read_bytes() == garbage


def test_a_damaged_database_fails_the_integrity_check(path: Path) -> None:
    with SqliteStore.open(path) as store:
        for n in range(200):
            store.commit_tick(
                TickCommit(now=T0, notifications=(OutboxEnqueue(make_alert(n), ("sns",)),))
            )
    conn = raw(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    conn.close()
    data = bytearray(path.read_bytes())
    # Scribble over the second page (a b-tree page) but keep the file header intact.
    data[page_size : 2 * page_size] = b"\xa5" * page_size
    path.write_bytes(bytes(data))
    with pytest.raises(StoreCorruptError):
        SqliteStore.open(path)
    assert path.read_bytes() == bytes(data)


def test_missing_state_directory_and_missing_file_for_a_reader(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        SqliteStore.open(tmp_path / "nope" / "state.sqlite3")
    with pytest.raises(StoreError, match="no state file"):
        SqliteStore.open(tmp_path / "state.sqlite3", readonly=True)


def test_naive_datetimes_are_refused(store: SqliteStore) -> None:
    with pytest.raises(StoreError, match="naive"):
        store.commit_tick(TickCommit(now=datetime(2024, 1, 1)))


# -- the tick transaction ----------------------------------------------------------------


def test_commit_tick_writes_every_part(store: SqliteStore) -> None:
    result = store.commit_tick(full_tick())
    assert (result.enqueued, result.duplicates) == (2, 0)
    assert store.watermarks() == {KEY: T0 - timedelta(minutes=1)}
    assert store.seen_ids(KEY, T0) == {"evt-1"}
    assert store.engine_state("engine") == {"windows": {"rule": [1, 2, 3]}}
    assert store.alarm_states() == [alarm("ALARM")]
    rows = store.due(T0, limit=10)
    assert sorted(r.sink for r in rows) == ["eventbridge", "sns"]
    assert {r.notification_id for r in rows} == {make_alert(1).notification_id}
    assert all(r.status is OutboxStatus.PENDING and r.attempts == 0 for r in rows)
    assert rows[0].alert() == make_alert(1)


def test_commit_tick_is_all_or_nothing_when_a_write_fails_midway(
    store: SqliteStore, path: Path
) -> None:
    store.commit_tick(full_tick())
    # The outbox is written last: make its insert fail, after everything else was written.
    conn = raw(path)
    conn.execute(
        "CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox "
        "BEGIN SELECT RAISE(ABORT, 'injected disk failure'); END"
    )
    later = T0 + timedelta(minutes=5)
    tick = TickCommit(
        now=later,
        watermarks={KEY: later, "cloudtrail/other": later},
        seen_ids=(SeenId(KEY, "evt-2", later + timedelta(minutes=30)),),
        engine_state={"engine": {"windows": {}}, "suppression": {"x": 1}},
        alarm_states=(alarm("OK", later),),
        notifications=(OutboxEnqueue(make_alert(2), ("sns",)),),
    )
    with pytest.raises(StoreError, match="injected disk failure"):
        store.commit_tick(tick)
    # Nothing of the failed tick is visible; the previous tick is intact.
    assert store.watermarks() == {KEY: T0 - timedelta(minutes=1)}
    assert store.seen_ids(KEY, later) == {"evt-1"}
    assert store.engine_state("engine") == {"windows": {"rule": [1, 2, 3]}}
    assert store.engine_state("suppression") is None
    assert store.alarm_states() == [alarm("ALARM")]
    assert count(path, "outbox") == 2
    # The failure is over: replaying the same tick writes all of it.
    conn.execute("DROP TRIGGER fail_outbox")
    conn.close()
    assert store.commit_tick(tick).enqueued == 1
    assert store.watermark("cloudtrail/other") == later
    assert store.seen_ids(KEY, later) == {"evt-1", "evt-2"}
    assert store.alarm_states() == [alarm("OK", later)]


def test_commit_tick_is_all_or_nothing_when_an_alert_cannot_be_serialized(
    store: SqliteStore, path: Path
) -> None:
    bad = make_alert(3, details={"not json": object()})
    tick = TickCommit(
        now=T0,
        watermarks={KEY: T0},
        notifications=(OutboxEnqueue(make_alert(1), ("sns",)), OutboxEnqueue(bad, ("sns",))),
    )
    with pytest.raises(StoreError, match="not JSON serializable") as caught:
        store.commit_tick(tick)
    assert isinstance(caught.value.__cause__, TypeError)
    assert store.watermark(KEY) is None
    assert count(path, "outbox") == 0


def test_replayed_tick_does_not_duplicate_nor_reset_outbox_rows(store: SqliteStore) -> None:
    first = store.commit_tick(full_tick())
    again = store.commit_tick(full_tick(T0 + timedelta(minutes=1)))
    assert (first.enqueued, again.enqueued, again.duplicates) == (2, 0, 2)
    rows = store.due(T0 + timedelta(minutes=1), limit=10)
    assert len(rows) == 2
    store.mark_delivered([rows[0].id], T0 + timedelta(minutes=1))
    store.commit_tick(full_tick(T0 + timedelta(minutes=2)))
    remaining = store.due(T0 + timedelta(minutes=2), limit=10)
    assert [r.id for r in remaining] == [rows[1].id]
    assert remaining[0].created_at == T0  # the original row, not a new one


def test_seen_ids_expire_at_read_and_are_pruned_at_commit(store: SqliteStore, path: Path) -> None:
    store.commit_tick(
        TickCommit(
            now=T0,
            seen_ids=(
                SeenId(KEY, "a", T0 + timedelta(minutes=10)),
                SeenId(KEY, "b", T0 + timedelta(minutes=20)),
                SeenId("cloudtrail/other", "a", T0 + timedelta(minutes=20)),
            ),
        )
    )
    at = T0 + timedelta(minutes=15)
    assert store.seen_ids(KEY, T0) == {"a", "b"}
    assert store.seen_ids(KEY, at) == {"b"}  # expired but not yet pruned: not seen
    assert store.seen_ids(KEY, at, candidates=["a", "b", "c"]) == {"b"}
    assert count(path, "seen_ids") == 3
    assert store.commit_tick(TickCommit(now=at)).seen_pruned == 1
    assert count(path, "seen_ids") == 2


def test_seeing_an_id_again_keeps_the_later_expiry(store: SqliteStore) -> None:
    late, early = T0 + timedelta(hours=1), T0 + timedelta(minutes=5)
    store.commit_tick(TickCommit(now=T0, seen_ids=(SeenId(KEY, "a", late),)))
    store.commit_tick(TickCommit(now=T0, seen_ids=(SeenId(KEY, "a", early),)))
    assert store.seen_ids(KEY, T0 + timedelta(minutes=30)) == {"a"}


def test_seen_ids_lookup_handles_many_candidates(store: SqliteStore) -> None:
    ids = [f"evt-{n}" for n in range(1200)]
    expiry = T0 + timedelta(hours=1)
    store.commit_tick(TickCommit(now=T0, seen_ids=[SeenId(KEY, i, expiry) for i in ids[::2]]))
    assert store.seen_ids(KEY, T0, candidates=ids) == frozenset(ids[::2])


def test_engine_state_blobs_are_replaced_and_deleted(store: SqliteStore) -> None:
    store.commit_tick(TickCommit(now=T0, engine_state={"a": {"v": 1}, "b": {"v": 2}}))
    store.commit_tick(TickCommit(now=T0, engine_state={"a": {"v": 3}, "b": None}))
    assert store.engine_state("a") == {"v": 3}
    assert store.engine_state("b") is None


def test_alarm_states_are_upserted_and_listed_in_order(store: SqliteStore) -> None:
    other = AlarmStateRecord("aaa-first", "", "INSUFFICIENT_DATA", T0, "no data", T0)
    store.commit_tick(TickCommit(now=T0, alarm_states=(alarm("ALARM"), other)))
    later = T0 + timedelta(minutes=5)
    store.commit_tick(TickCommit(now=later, alarm_states=(alarm("OK", later),)))
    assert store.alarm_states() == [other, alarm("OK", later)]
    assert store.alarm_state("cpu-high", "InstanceId=i-0abc") == alarm("OK", later)
    assert store.alarm_state("cpu-high", "InstanceId=i-other") is None


# -- readers and writers -----------------------------------------------------------------


def test_a_reader_is_not_blocked_by_a_writer_holding_a_transaction(
    store: SqliteStore, path: Path
) -> None:
    store.commit_tick(TickCommit(now=T0, alarm_states=(alarm("ALARM"),)))
    writer = raw(path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE alarm_states SET state = 'OK'")
    try:
        # timeout=0: any wait on a lock would raise "database is locked" at once.
        with SqliteStore.open(path, readonly=True, timeout=0) as reader:
            assert [a.state for a in reader.alarm_states()] == ["ALARM"]
            assert reader.stats(T0).pending == 0
            with SqliteStore.open(path, timeout=0) as second:  # opening needs no write lock
                assert [a.state for a in second.alarm_states()] == ["ALARM"]
                with pytest.raises(StoreError, match="locked"):
                    second.commit_tick(TickCommit(now=T0, watermarks={KEY: T0}))
            writer.execute("COMMIT")
            assert [a.state for a in reader.alarm_states()] == ["OK"]
    finally:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        writer.close()


def test_another_process_reads_while_the_daemon_holds_a_write_transaction(
    store: SqliteStore, path: Path
) -> None:
    store.commit_tick(TickCommit(now=T0, alarm_states=(alarm("ALARM"),)))
    writer = raw(path)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE alarm_states SET state = 'OK'")
    script = textwrap.dedent(
        f"""
        from veilleur.store.sqlite import SqliteStore
        with SqliteStore.open({str(path)!r}, readonly=True, timeout=0) as s:
            print(",".join(a.state for a in s.alarm_states()))
        """
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=120
        )
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ALARM"


# -- the outbox --------------------------------------------------------------------------


def enqueue(store: SqliteStore, n: int, sinks: tuple[str, ...], now: datetime = T0) -> None:
    store.commit_tick(TickCommit(now=now, notifications=(OutboxEnqueue(make_alert(n), sinks),)))


def test_due_respects_schedule_limit_and_sink(store: SqliteStore) -> None:
    for n in range(3):
        enqueue(store, n, ("sns", "eventbridge"), T0 + timedelta(seconds=n))
    assert store.due(T0 - timedelta(seconds=1), limit=10) == []
    assert len(store.due(T0 + timedelta(seconds=1), limit=10)) == 4
    assert len(store.due(T0 + timedelta(seconds=5), limit=3)) == 3
    sns = store.due(T0 + timedelta(seconds=5), limit=10, sink="sns")
    assert [r.sink for r in sns] == ["sns"] * 3
    assert [r.created_at for r in sns] == [T0 + timedelta(seconds=n) for n in range(3)]


def test_retry_dead_and_delivered_marks(store: SqliteStore) -> None:
    for n in range(3):
        enqueue(store, n, ("sns",))
    a, b, c = store.due(T0, limit=10)
    store.mark_retry(a.id, T0 + timedelta(seconds=7), "throttled")
    store.mark_dead(b.id, T0, "AuthorizationError")
    store.mark_delivered([c.id], T0)
    assert store.due(T0 + timedelta(seconds=6), limit=10) == []
    (retried,) = store.due(T0 + timedelta(seconds=7), limit=10)
    assert (retried.id, retried.attempts, retried.last_error) == (a.id, 1, "throttled")
    # Terminal rows do not move again.
    store.mark_retry(b.id, T0, "late")
    store.mark_delivered([b.id], T0)
    (dead,) = store.dead_letters(limit=10)
    assert (dead.id, dead.status, dead.attempts) == (b.id, OutboxStatus.DEAD, 1)
    assert (dead.last_error, dead.finished_at) == ("AuthorizationError", T0)


def test_stats_count_depth_age_and_dead_per_sink(store: SqliteStore) -> None:
    enqueue(store, 1, ("sns", "eventbridge"), T0)
    enqueue(store, 2, ("sns",), T0 + timedelta(minutes=5))
    enqueue(store, 3, ("sns",), T0 + timedelta(minutes=6))
    newest = store.due(T0 + timedelta(hours=1), limit=10, sink="sns")[-1]
    assert newest.created_at == T0 + timedelta(minutes=6)
    store.mark_dead(newest.id, T0 + timedelta(minutes=7), "gone")
    stats = store.stats(T0 + timedelta(minutes=10))
    assert stats.pending_by_sink == {"sns": 2, "eventbridge": 1}
    assert stats.oldest_pending_age_by_sink == {
        "sns": timedelta(minutes=10),
        "eventbridge": timedelta(minutes=10),
    }
    assert (stats.pending, stats.dead, stats.dead_by_sink) == (3, 1, {"sns": 1})
    assert stats.oldest_pending_age == timedelta(minutes=10)
    with SqliteStore.open(store.path.with_name("empty.sqlite3")) as other:
        empty = other.stats(T0)
    assert (empty.pending, empty.dead, empty.oldest_pending_age) == (0, 0, None)


def test_prune_delivered_forgets_only_old_delivered_rows(store: SqliteStore) -> None:
    for n in range(4):
        enqueue(store, n, ("sns",))
    a, b, c, _ = store.due(T0, limit=10)
    store.mark_delivered([a.id], T0)
    store.mark_delivered([b.id], T0 + timedelta(days=2))
    store.mark_dead(c.id, T0, "gone")
    assert store.prune_delivered(T0 + timedelta(days=1)) == 1
    assert store.stats(T0).pending == 1
    assert len(store.dead_letters(10)) == 1
    assert count(store.path, "outbox") == 3
