"""The SQLite audit database's schema: connection settings and the ordered list of migrations.
(`bot.audit.pg_schema` is PostgreSQL's, step for step the same tables.)

`PRAGMA user_version` holds how many migrations a database has had. `MIGRATIONS[n]` takes a
database from version n to n + 1. Released migrations are never edited: a change to the schema
is a new entry at the end, so every database in the field reaches the same shape.
"""

from __future__ import annotations

import sqlite3
from typing import Final

from bot.audit.records import AuditError

#: Each step is a sequence of single SQL statements, run in one transaction with the version bump.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the audit trail.
    (
        # AUTOINCREMENT so an id is never reused: undo_of and Slack buttons may point at a row
        # long after it was written. Outcome has no CHECK constraint on purpose: SQLite cannot
        # alter one, and a new outcome should not need the table rebuilt; the store validates.
        """
        CREATE TABLE audit_entries (
            id                 INTEGER PRIMARY KEY AUTOINCREMENT,
            request_key        TEXT    NOT NULL,
            created_at         REAL    NOT NULL,
            finished_at        REAL,
            team_id            TEXT,
            channel_id         TEXT,
            user_id            TEXT    NOT NULL,
            source             TEXT    NOT NULL,
            verb               TEXT,
            raw_text           TEXT    NOT NULL,
            reason             TEXT,
            room_id            TEXT,
            patch              TEXT,
            previous           TEXT,
            outcome            TEXT    NOT NULL,
            detail             TEXT,
            undo_of            INTEGER REFERENCES audit_entries (id),
            error_code         INTEGER,
            error_info         TEXT,
            tencent_request_id TEXT,
            latency_ms         REAL
        )
        """,
        "CREATE INDEX audit_entries_room_time ON audit_entries (room_id, created_at)",
        "CREATE INDEX audit_entries_user_time ON audit_entries (user_id, created_at)",
        "CREATE INDEX audit_entries_time ON audit_entries (created_at)",
        "CREATE INDEX audit_entries_request ON audit_entries (request_key)",
    ),
    # 2: state shared between instances (claims, confirmation prompts), and a small index so
    # crash recovery at start-up does not scan the whole trail.
    (
        """
        CREATE TABLE claims (
            key        TEXT PRIMARY KEY,
            claimed_at REAL NOT NULL
        ) WITHOUT ROWID
        """,
        "CREATE INDEX claims_time ON claims (claimed_at)",
        """
        CREATE TABLE confirmations (
            key         TEXT PRIMARY KEY,
            user_id     TEXT NOT NULL,
            team_id     TEXT,
            channel_id  TEXT,
            text        TEXT NOT NULL,
            created_at  REAL NOT NULL,
            state       TEXT NOT NULL,
            resolved_at REAL
        )
        """,
        "CREATE INDEX confirmations_time ON confirmations (created_at)",
        "CREATE INDEX audit_entries_pending ON audit_entries (id) WHERE outcome = 'pending'",
    ),
    # 3: leases on requests being carried out, so what a stopped process left can be reported
    # in its original place (`context` is the adapter's JSON).
    (
        """
        CREATE TABLE leases (
            request_key TEXT    PRIMARY KEY,
            owner       TEXT    NOT NULL,
            context     TEXT    NOT NULL,
            taken_at    REAL    NOT NULL,
            expires_at  REAL    NOT NULL,
            takeovers   INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID
        """,
        "CREATE INDEX leases_expiry ON leases (expires_at)",
        "CREATE INDEX leases_owner ON leases (owner)",
    ),
)

#: The version this code reads and writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)

#: How long a statement waits for another connection's lock before failing (seconds).
BUSY_TIMEOUT_S: Final = 5.0


def configure(conn: sqlite3.Connection, *, read_only: bool) -> None:
    """Per-connection settings: WAL (readers never wait for the writer), `synchronous=NORMAL`
    (durable across a process crash, one fsync per checkpoint rather than per commit), and
    enforced foreign keys."""
    conn.execute("PRAGMA foreign_keys = ON")
    if not read_only:
        # journal_mode is stored in the file; a read-only connection inherits the writer's.
        conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version stored in the database header (0 for a new file)."""
    row = conn.execute("PRAGMA user_version").fetchone()
    return int(row[0])


def migrate(conn: sqlite3.Connection, *, target: int = SCHEMA_VERSION) -> int:
    """Apply the migrations a database lacks, up to `target`; return how many were applied.

    `conn` must be in autocommit mode (`isolation_level=None`). Each step runs in its own
    `BEGIN IMMEDIATE` transaction and re-reads the version inside it, so two processes opening
    the same new file at once apply each step exactly once. A database newer than this code is
    refused rather than written to.
    """
    found = user_version(conn)
    if found > SCHEMA_VERSION:
        raise AuditError(
            f"the audit database has schema version {found}, newer than this roombot "
            f"understands ({SCHEMA_VERSION}); upgrade roombot"
        )
    applied = 0
    for version in range(found, target):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if user_version(conn) == version:
                for statement in MIGRATIONS[version]:
                    conn.execute(statement)
                # PRAGMA cannot take a parameter; version + 1 is an int we computed.
                conn.execute(f"PRAGMA user_version = {version + 1:d}")
                applied += 1
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    return applied
