"""The PostgreSQL audit database's schema: the ordered list of migrations and how they are applied.

Step for step the same tables as the SQLite schema (`bot.audit.schema`), so both backends are at
the same version number and `roombot audit` reads the same rows from either: `audit_entries`
(1), `claims` and `confirmations` (2), `leases` (3). Step 3 also creates what only a database
shared by several replicas needs: the rate budget's tables and its reservation function
(`bot.audit.budget` explains the mechanism), each slot tagged with the replica it was granted
to, so a survivor can end the slots of a replica that stopped mid-call.

The one-row table `roombot_schema` holds the version. `MIGRATIONS[n]` takes a database from
version n to n + 1; released steps are never edited, a change is a new step at the end. Each step
runs in its own transaction holding a transaction-level advisory lock and re-reads the version
inside it, so replicas starting together apply each step exactly once, and a failing step leaves
nothing behind (PostgreSQL's DDL is transactional).
"""

from __future__ import annotations

from typing import Final

import psycopg
from psycopg.rows import TupleRow

from bot.audit.records import AuditError

#: The advisory lock key every migration step takes (an arbitrary, fixed 64-bit number:
#: "roombot" in ASCII).
MIGRATION_LOCK_KEY: Final = 0x726F6F6D626F74

#: Each step is a sequence of single SQL statements, run in one transaction with the version bump.
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: the audit trail. An identity column so an id is never reused (undo_of and Slack buttons
    # point at rows). JSON is kept as text, as in SQLite, so a row reads back byte for byte the
    # same; no CHECK on outcome, so a new outcome needs no migration (the store validates).
    (
        """
        CREATE TABLE audit_entries (
            id                 BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            request_key        TEXT    NOT NULL,
            created_at         DOUBLE PRECISION NOT NULL,
            finished_at        DOUBLE PRECISION,
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
            undo_of            BIGINT  REFERENCES audit_entries (id),
            error_code         BIGINT,
            error_info         TEXT,
            tencent_request_id TEXT,
            latency_ms         DOUBLE PRECISION
        )
        """,
        "CREATE INDEX audit_entries_room_time ON audit_entries (room_id, created_at)",
        "CREATE INDEX audit_entries_user_time ON audit_entries (user_id, created_at)",
        "CREATE INDEX audit_entries_time ON audit_entries (created_at)",
        "CREATE INDEX audit_entries_request ON audit_entries (request_key)",
    ),
    # 2: state shared between replicas (claims, confirmation prompts), and the pending index.
    (
        """
        CREATE TABLE claims (
            key        TEXT PRIMARY KEY,
            claimed_at DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX claims_time ON claims (claimed_at)",
        """
        CREATE TABLE confirmations (
            key         TEXT PRIMARY KEY,
            user_id     TEXT NOT NULL,
            team_id     TEXT,
            channel_id  TEXT,
            text        TEXT NOT NULL,
            created_at  DOUBLE PRECISION NOT NULL,
            state       TEXT NOT NULL,
            resolved_at DOUBLE PRECISION
        )
        """,
        "CREATE INDEX confirmations_time ON confirmations (created_at)",
        "CREATE INDEX audit_entries_pending ON audit_entries (id) WHERE outcome = 'pending'",
    ),
    # 3: leases on requests being carried out, and the shared Room Engine rate budget.
    (
        """
        CREATE TABLE leases (
            request_key TEXT    PRIMARY KEY,
            owner       TEXT    NOT NULL,
            context     TEXT    NOT NULL,
            taken_at    DOUBLE PRECISION NOT NULL,
            expires_at  DOUBLE PRECISION NOT NULL,
            takeovers   INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX leases_expiry ON leases (expires_at)",
        "CREATE INDEX leases_owner ON leases (owner)",
        # One row per budget: the GCRA "theoretical arrival time", and the row every
        # reservation locks, which puts all of them in one order.
        """
        CREATE TABLE rate_budgets (
            name TEXT PRIMARY KEY,
            tat  DOUBLE PRECISION NOT NULL
        )
        """,
        # One row per granted call, counted from its grant until a window after its end (or,
        # never ended, until hold_until).
        """
        CREATE TABLE rate_slots (
            id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            budget     TEXT   NOT NULL REFERENCES rate_budgets (name),
            granted_at DOUBLE PRECISION NOT NULL,
            start_at   DOUBLE PRECISION NOT NULL,
            hold_until DOUBLE PRECISION NOT NULL,
            ended_at   DOUBLE PRECISION,
            owner      TEXT   -- the replica granted it; NULL for a budget built without one
        )
        """,
        "CREATE INDEX rate_slots_budget ON rate_slots (budget)",
        "CREATE INDEX rate_slots_unended ON rate_slots (owner) WHERE ended_at IS NULL",
        # Grants up to p_wanted slots, never letting more than p_limit be counted at once, each
        # tagged with p_owner (the replica) so a survivor can end the slots of one that stopped
        # (`AuditStore.end_rate_slots_of`); rows "granted" come first, then, if fewer than
        # wanted, one row with only o_retry_at (when a slot may next be free). All times are
        # this database's clock, read after the lock.
        """
        CREATE FUNCTION roombot_rate_reserve(
            p_budget    TEXT,
            p_owner     TEXT,
            p_wanted    INTEGER,
            p_limit     INTEGER,
            p_interval  DOUBLE PRECISION,
            p_tolerance DOUBLE PRECISION,
            p_window    DOUBLE PRECISION,
            p_hold      DOUBLE PRECISION
        ) RETURNS TABLE (
            o_slot_id  BIGINT,
            o_start_at DOUBLE PRECISION,
            o_db_now   DOUBLE PRECISION,
            o_retry_at DOUBLE PRECISION
        ) LANGUAGE plpgsql AS $$
        DECLARE
            v_tat   DOUBLE PRECISION;
            v_now   DOUBLE PRECISION;
            v_held  INTEGER;
            v_grant INTEGER;
            v_start DOUBLE PRECISION;
            v_id    BIGINT;
            v_retry DOUBLE PRECISION;
        BEGIN
            INSERT INTO rate_budgets (name, tat) VALUES (p_budget, 0)
                ON CONFLICT (name) DO NOTHING;
            SELECT b.tat INTO v_tat FROM rate_budgets b WHERE b.name = p_budget FOR UPDATE;
            v_now := extract(epoch FROM clock_timestamp())::DOUBLE PRECISION;
            DELETE FROM rate_slots s
             WHERE s.budget = p_budget
               AND (s.ended_at <= v_now - p_window OR s.hold_until <= v_now);
            SELECT count(*) INTO v_held FROM rate_slots s WHERE s.budget = p_budget;
            v_grant := greatest(0, least(p_wanted, p_limit - v_held));
            FOR i IN 1..v_grant LOOP
                v_start := greatest(v_now, v_tat - p_tolerance);
                v_tat := greatest(v_tat, v_start) + p_interval;
                INSERT INTO rate_slots (budget, granted_at, start_at, hold_until, owner)
                    VALUES (p_budget, v_now, v_start, v_start + p_hold, p_owner)
                    RETURNING id INTO v_id;
                o_slot_id := v_id;
                o_start_at := v_start;
                o_db_now := v_now;
                o_retry_at := NULL;
                RETURN NEXT;
            END LOOP;
            UPDATE rate_budgets SET tat = v_tat WHERE name = p_budget;
            IF v_grant < p_wanted THEN
                SELECT min(s.ended_at) + p_window INTO v_retry
                  FROM rate_slots s WHERE s.budget = p_budget AND s.ended_at IS NOT NULL;
                o_slot_id := NULL;
                o_start_at := NULL;
                o_db_now := v_now;
                o_retry_at := coalesce(v_retry, v_now + p_interval);
                RETURN NEXT;
            END IF;
        END
        $$
        """,
    ),
)

#: The version this code reads and writes (the same number as the SQLite schema's).
SCHEMA_VERSION: Final = len(MIGRATIONS)

_VERSION_TABLE: Final = """
    CREATE TABLE IF NOT EXISTS roombot_schema (
        singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
        version   INTEGER NOT NULL
    )
"""


async def schema_version(conn: psycopg.AsyncConnection[TupleRow]) -> int | None:
    """The version a database is at: None when it has no roombot schema at all."""
    cur = await conn.execute("SELECT to_regclass('roombot_schema') IS NOT NULL")
    exists = await cur.fetchone()
    if not exists or not exists[0]:
        return None
    cur = await conn.execute("SELECT version FROM roombot_schema")
    row = await cur.fetchone()
    return 0 if row is None else int(row[0])


async def migrate(conn: psycopg.AsyncConnection[TupleRow], *, target: int = SCHEMA_VERSION) -> int:
    """Apply the steps a database lacks, up to `target`; return how many this call applied.

    `conn` must be in autocommit mode. A database newer than this code is refused (AuditError)
    rather than written to. psycopg errors are left to the caller, which words them.
    """
    applied = 0
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            await conn.execute(_VERSION_TABLE)
            await conn.execute(
                "INSERT INTO roombot_schema (version) VALUES (0) ON CONFLICT DO NOTHING"
            )
            version = await schema_version(conn) or 0
            if version > SCHEMA_VERSION:
                raise AuditError(
                    f"the audit database has schema version {version}, newer than this roombot "
                    f"understands ({SCHEMA_VERSION}); upgrade roombot"
                )
            if version >= target:
                return applied
            for statement in MIGRATIONS[version]:
                await conn.execute(statement)
            await conn.execute("UPDATE roombot_schema SET version = %s", (version + 1,))
            applied += 1
