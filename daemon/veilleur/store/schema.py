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

import sqlite3

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
