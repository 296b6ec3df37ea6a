"""The SQLite schema as an ordered list of migrations, versioned by ``PRAGMA user_version``.

Migration ``i`` (0-based) takes a file from version ``i`` to ``i + 1``. Append new migrations at
the end, never edit a released one. All pending migrations run in one ``BEGIN IMMEDIATE``
transaction together with the ``user_version`` bump: a crash mid-migration leaves the file at
its old version, untouched.

Times are TEXT in one fixed-width UTC form (``2024-01-01T00:00:00.000000Z``) so that string
order is time order and the file stays readable with the ``sqlite3`` shell. No ``STRICT``
tables: they would make the file unreadable to SQLite < 3.37.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from veilleur.store.types import StoreCorruptError, StoreError, StoreVersionError

Migration = tuple[str, ...]

MIGRATIONS: tuple[Migration, ...] = (
    # 1: the initial schema.
    (
        """CREATE TABLE watermarks (
            source_key  TEXT PRIMARY KEY,
            watermark   TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )""",
        """CREATE TABLE seen_ids (
            source_key  TEXT NOT NULL,
            event_id    TEXT NOT NULL,
            expires_at  TEXT NOT NULL,
            PRIMARY KEY (source_key, event_id)
        ) WITHOUT ROWID""",
        "CREATE INDEX seen_ids_expiry ON seen_ids (expires_at)",
        """CREATE TABLE engine_state (
            key         TEXT PRIMARY KEY,
            doc         TEXT NOT NULL,
            updated_at  TEXT NOT NULL
        )""",
        """CREATE TABLE alarm_states (
            rule_id         TEXT NOT NULL,
            dimensions_key  TEXT NOT NULL,
            state           TEXT NOT NULL,
            since           TEXT NOT NULL,
            reason          TEXT NOT NULL,
            last_evaluated  TEXT NOT NULL,
            details         TEXT NOT NULL DEFAULT '{}',
            PRIMARY KEY (rule_id, dimensions_key)
        )""",
        """CREATE TABLE outbox (
            id               INTEGER PRIMARY KEY AUTOINCREMENT,
            notification_id  TEXT NOT NULL,
            sink             TEXT NOT NULL,
            alert            TEXT NOT NULL,
            created_at       TEXT NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            next_attempt_at  TEXT NOT NULL,
            last_error       TEXT,
            status           TEXT NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'delivered', 'dead')),
            finished_at      TEXT,
            UNIQUE (notification_id, sink)
        )""",
        "CREATE INDEX outbox_due ON outbox (status, sink, next_attempt_at)",
    ),
)

SCHEMA_VERSION = len(MIGRATIONS)
_CORRUPT = frozenset({"SQLITE_NOTADB", "SQLITE_CORRUPT"})


def user_version(conn: sqlite3.Connection) -> int:
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def apply_migrations(
    conn: sqlite3.Connection, current: int, migrations: tuple[Migration, ...] = MIGRATIONS
) -> int:
    """Run ``migrations[current:]`` and set ``user_version``; the caller holds the write
    transaction (and rolls it back on any error). Returns the new version."""
    for statements in migrations[current:]:
        for statement in statements:
            conn.execute(statement)
    target = len(migrations)
    # PRAGMA takes no parameters; ``target`` is an int we computed.
    conn.execute(f"PRAGMA user_version = {int(target)}")
    return target


def sqlite_error(path: Path, action: str, exc: sqlite3.Error) -> StoreError:
    """Our error for an sqlite3 one: corruption is told apart, with what to do about it."""
    if getattr(exc, "sqlite_errorname", "") in _CORRUPT:
        return StoreCorruptError(
            f"state file {path} is not a readable SQLite database ({exc}) while {action}; "
            "it was left untouched: move it aside to start with empty state, or restore a backup"
        )
    return StoreError(f"state file {path}: {action} failed: {exc}")


def open_connection(
    path: Path, *, readonly: bool, timeout: float, migrations: tuple[Migration, ...]
) -> tuple[sqlite3.Connection, int]:
    """Connect, check integrity and version, enable WAL, migrate. Returns the connection (in
    autocommit mode: the store issues BEGIN/COMMIT itself) and the schema version."""
    if readonly and not path.is_file():
        raise StoreError(f"no state file at {path} (has the daemon run yet?)")
    if not path.parent.is_dir():
        raise StoreError(f"state directory {path.parent} does not exist")
    target = f"{path.resolve().as_uri()}?mode=ro" if readonly else str(path)
    if not readonly and not path.exists():
        # Alerts hold user names and IPs: the owner only, whatever the umask (SQLite gives
        # the -wal and -shm files the database file's permissions).
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create the state file {path}: {exc.strerror}") from exc
    try:
        conn = sqlite3.connect(
            target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=readonly
        )
    except sqlite3.Error as exc:
        raise sqlite_error(path, "opening", exc) from exc
    try:
        return conn, _prepare(conn, path, readonly=readonly, migrations=migrations)
    except sqlite3.Error as exc:
        conn.close()
        raise sqlite_error(path, "opening", exc) from exc
    except BaseException:
        conn.close()
        raise


def _check_version(path: Path, version: int, latest: int, *, readonly: bool) -> None:
    if version > latest:
        raise StoreVersionError(
            f"state file {path} has schema version {version}, newer than this veilleur "
            f"understands ({latest}): run a newer veilleur, or move the file aside"
        )
    if readonly and version < latest:
        raise StoreVersionError(
            f"state file {path} has schema version {version}, older than {latest}: "
            "start the daemon once to migrate it"
        )


def _prepare(
    conn: sqlite3.Connection, path: Path, *, readonly: bool, migrations: tuple[Migration, ...]
) -> int:
    check = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    if check != ["ok"]:
        raise StoreCorruptError(
            f"state file {path} fails its integrity check: {'; '.join(check[:3])}; "
            "it was left untouched: move it aside or restore a backup"
        )
    latest = len(migrations)
    version = user_version(conn)
    _check_version(path, version, latest, readonly=readonly)
    if readonly:
        return version
    mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
    if mode.lower() != "wal":
        raise StoreError(f"state file {path}: cannot enable WAL (journal_mode={mode})")
    conn.execute("PRAGMA synchronous = FULL")
    if version == latest:
        return version  # the usual case: no write lock taken, a running writer is not waited on
    conn.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have migrated between our first read and our lock.
        version = user_version(conn)
        _check_version(path, version, latest, readonly=False)
        version = apply_migrations(conn, version, migrations)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return version
