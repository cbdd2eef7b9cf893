"""The audit database's one schema, for both dialects: the ordered list of migrations.

`MIGRATIONS[n]` takes a database from version n to n + 1, on SQLite and PostgreSQL alike (both
are always at the same version number). Released steps are never edited: a change is a new
step at the end, so every database in the field reaches the same shape. Each step runs in one
transaction with the version bump (each dialect applies them under its own lock:
`bot.audit.sqlite_dialect`, `bot.audit.postgres_dialect`).

A statement is written once, with type markers each dialect spells (`statements`):
`$ID` (an id never reused), `$REAL`, `$BIGINT`, `$WITHOUT_ROWID` (a SQLite storage option for
small tables keyed by text). A statement only one dialect needs is a `Only`.

What the steps hold: 1 the audit trail (`audit_entries`); 2 one-shot claims and confirmation
prompts; 3 leases, and on PostgreSQL the shared Room Engine rate budget (`rate_budgets`,
`rate_slots` and the function `roombot_rate_reserve`: `bot.audit.budget` explains it); 4 the
request record (`requests`, DESIGN §2.10), which takes the leases in: a request in flight holds
its lease (owner, expiry, fencing number) on its own row; 5 (PostgreSQL only) the rate budget per
API and its halving (`rate_budgets.halved_until`); 6 the index of time-boxed changes'
reverts still to run; 7 two-person approval on the request record (its expiry and the
decision: who, when, why); 8 an index on `audit_entries.undo_of` for retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Dialect = Literal["sqlite", "postgresql"]


@dataclass(frozen=True)
class Only:
    """A statement for one dialect only."""

    dialect: Dialect
    sql: str


Statement = str | Only

_TYPES: Final[dict[Dialect, dict[str, str]]] = {
    "sqlite": {
        "$ID": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "$REAL": "REAL",
        "$BIGINT": "INTEGER",
        "$WITHOUT_ROWID": " WITHOUT ROWID",
    },
    "postgresql": {
        "$ID": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
        "$REAL": "DOUBLE PRECISION",
        "$BIGINT": "BIGINT",
        "$WITHOUT_ROWID": "",
    },
}

_RATE_RESERVE: Final = """
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
"""

# Step 5's reservation: `_RATE_RESERVE` with the halving (`rate_budgets.halved_until`): while it
# lasts the budget grants half its slots at half its pace, and every grant says until when.
_RATE_RESERVE_HALVABLE: Final = """
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
        o_slot_id       BIGINT,
        o_start_at      DOUBLE PRECISION,
        o_db_now        DOUBLE PRECISION,
        o_retry_at      DOUBLE PRECISION,
        o_halved_until  DOUBLE PRECISION
    ) LANGUAGE plpgsql AS $$
    DECLARE
        v_tat       DOUBLE PRECISION;
        v_until     DOUBLE PRECISION;
        v_now       DOUBLE PRECISION;
        v_limit     INTEGER;
        v_interval  DOUBLE PRECISION;
        v_tolerance DOUBLE PRECISION;
        v_held      INTEGER;
        v_grant     INTEGER;
        v_start     DOUBLE PRECISION;
        v_id        BIGINT;
        v_retry     DOUBLE PRECISION;
    BEGIN
        INSERT INTO rate_budgets (name, tat) VALUES (p_budget, 0)
            ON CONFLICT (name) DO NOTHING;
        SELECT b.tat, b.halved_until INTO v_tat, v_until
          FROM rate_budgets b WHERE b.name = p_budget FOR UPDATE;
        v_now := extract(epoch FROM clock_timestamp())::DOUBLE PRECISION;
        v_limit := p_limit;
        v_interval := p_interval;
        v_tolerance := p_tolerance;
        IF v_until IS NOT NULL AND v_until > v_now AND p_limit > 1 THEN
            v_limit := greatest(1, p_limit / 2);
            v_interval := p_interval * 2;
            -- The same burst (capped by the smaller window), at the slower pace.
            v_tolerance := least(p_tolerance / p_interval, v_limit - 1) * v_interval;
        ELSE
            v_until := NULL;
        END IF;
        DELETE FROM rate_slots s
         WHERE s.budget = p_budget
           AND (s.ended_at <= v_now - p_window OR s.hold_until <= v_now);
        SELECT count(*) INTO v_held FROM rate_slots s WHERE s.budget = p_budget;
        v_grant := greatest(0, least(p_wanted, v_limit - v_held));
        FOR i IN 1..v_grant LOOP
            v_start := greatest(v_now, v_tat - v_tolerance);
            v_tat := greatest(v_tat, v_start) + v_interval;
            INSERT INTO rate_slots (budget, granted_at, start_at, hold_until, owner)
                VALUES (p_budget, v_now, v_start, v_start + p_hold, p_owner)
                RETURNING id INTO v_id;
            o_slot_id := v_id;
            o_start_at := v_start;
            o_db_now := v_now;
            o_retry_at := NULL;
            o_halved_until := v_until;
            RETURN NEXT;
        END LOOP;
        UPDATE rate_budgets SET tat = v_tat WHERE name = p_budget;
        IF v_grant < p_wanted THEN
            SELECT min(s.ended_at) + p_window INTO v_retry
              FROM rate_slots s WHERE s.budget = p_budget AND s.ended_at IS NOT NULL;
            o_slot_id := NULL;
            o_start_at := NULL;
            o_db_now := v_now;
            o_retry_at := coalesce(v_retry, v_now + v_interval);
            o_halved_until := v_until;
            RETURN NEXT;
        END IF;
    END
    $$
"""

# The first audit row of a request (its metadata, for leases carried into records by step 4).
_FIRST_ROW: Final = (
    "(SELECT e.{column} FROM audit_entries e WHERE e.request_key = l.request_key "
    "ORDER BY e.id LIMIT 1)"
)


def _first(column: str) -> str:
    return _FIRST_ROW.format(column=column)


def _carry_leases(field: str) -> str:
    """Step 4: every lease becomes the record of a request in flight, held by the same owner
    until the same expiry; its context becomes the record's reply address. (`field` is the
    dialect's way to read a key of the context, with `{key}` for the key.) A lease that
    already had takeovers keeps the count, and its fencing number starts above it."""
    adapter = field.format(key="adapter")
    kind = field.format(key="kind")
    # Our own column names and expressions: no input reaches this text.
    return f"""
        INSERT INTO requests (request_key, state, kind, created_at, updated_at, source,
                              team_id, channel_id, user_id, verb, raw_text, reason, plan, reply,
                              adapter, owner, lease_until, fence, takeovers)
        SELECT l.request_key, 'running', COALESCE({kind}, 'request'), l.taken_at, l.taken_at,
               COALESCE({_first("source")}, 'slash'), {_first("team_id")},
               {_first("channel_id")}, COALESCE({_first("user_id")}, ''), {_first("verb")},
               COALESCE({_first("raw_text")}, ''), {_first("reason")},
               '{{}}', l.context, COALESCE({adapter}, 'unknown'),
               NULLIF(l.owner, ''), l.expires_at, l.takeovers + 1, l.takeovers
          FROM leases l
    """  # noqa: S608


#: Each step is a sequence of statements, run in one transaction with the version bump.
MIGRATIONS: Final[tuple[tuple[Statement, ...], ...]] = (
    # 1: the audit trail. An id is never reused (undo_of and Slack buttons point at rows). JSON
    # is kept as text on both, so a row reads back byte for byte the same. No CHECK on outcome:
    # SQLite cannot alter one, and a new outcome should not need a migration (the store
    # validates).
    (
        """
        CREATE TABLE audit_entries (
            id                 $ID,
            request_key        TEXT    NOT NULL,
            created_at         $REAL NOT NULL,
            finished_at        $REAL,
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
            undo_of            $BIGINT REFERENCES audit_entries (id),
            error_code         $BIGINT,
            error_info         TEXT,
            tencent_request_id TEXT,
            latency_ms         $REAL
        )
        """,
        "CREATE INDEX audit_entries_room_time ON audit_entries (room_id, created_at)",
        "CREATE INDEX audit_entries_user_time ON audit_entries (user_id, created_at)",
        "CREATE INDEX audit_entries_time ON audit_entries (created_at)",
        "CREATE INDEX audit_entries_request ON audit_entries (request_key)",
    ),
    # 2: state shared between replicas (claims, confirmation prompts), and a small index so
    # finding pending rows does not scan the whole trail.
    (
        """
        CREATE TABLE claims (
            key        TEXT PRIMARY KEY,
            claimed_at $REAL NOT NULL
        )$WITHOUT_ROWID
        """,
        "CREATE INDEX claims_time ON claims (claimed_at)",
        """
        CREATE TABLE confirmations (
            key         TEXT PRIMARY KEY,
            user_id     TEXT NOT NULL,
            team_id     TEXT,
            channel_id  TEXT,
            text        TEXT NOT NULL,
            created_at  $REAL NOT NULL,
            state       TEXT NOT NULL,
            resolved_at $REAL
        )
        """,
        "CREATE INDEX confirmations_time ON confirmations (created_at)",
        "CREATE INDEX audit_entries_pending ON audit_entries (id) WHERE outcome = 'pending'",
    ),
    # 3: leases on requests being carried out; on PostgreSQL also the shared rate budget: one
    # row per budget (the GCRA "theoretical arrival time", and the row every reservation locks,
    # which puts all of them in one order) and one row per granted call, tagged with the
    # replica it was granted to.
    (
        """
        CREATE TABLE leases (
            request_key TEXT    PRIMARY KEY,
            owner       TEXT    NOT NULL,
            context     TEXT    NOT NULL,
            taken_at    $REAL NOT NULL,
            expires_at  $REAL NOT NULL,
            takeovers   INTEGER NOT NULL DEFAULT 0
        )$WITHOUT_ROWID
        """,
        "CREATE INDEX leases_expiry ON leases (expires_at)",
        "CREATE INDEX leases_owner ON leases (owner)",
        Only(
            "postgresql",
            """
            CREATE TABLE rate_budgets (
                name TEXT PRIMARY KEY,
                tat  DOUBLE PRECISION NOT NULL
            )
            """,
        ),
        Only(
            "postgresql",
            """
            CREATE TABLE rate_slots (
                id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                budget     TEXT   NOT NULL REFERENCES rate_budgets (name),
                granted_at DOUBLE PRECISION NOT NULL,
                start_at   DOUBLE PRECISION NOT NULL,
                hold_until DOUBLE PRECISION NOT NULL,
                ended_at   DOUBLE PRECISION,
                owner      TEXT
            )
            """,
        ),
        Only("postgresql", "CREATE INDEX rate_slots_budget ON rate_slots (budget)"),
        Only(
            "postgresql",
            "CREATE INDEX rate_slots_unended ON rate_slots (owner) WHERE ended_at IS NULL",
        ),
        Only("postgresql", _RATE_RESERVE),
    ),
    # 4: the request record (DESIGN §2.10). One row per request from the moment it is
    # received: what to do (`plan`, JSON), who asked, where to report (`reply`, the adapter's
    # JSON; `adapter` names it so a replica takes only what it can deliver), when it may run
    # (`run_after`), and its lease: `owner` (NULL when nobody holds it), `lease_until` (the
    # database's clock) and `fence`, which grows by one each time another replica takes the
    # request over, so a paused replica's late writes are refused. `dedupe_key` makes a request
    # once-only (a Slack retry, a replayed command, a second click). The leases move in, and
    # pending rows that had no lease get an expired one, so a survivor reports them too.
    (
        """
        CREATE TABLE requests (
            request_key TEXT PRIMARY KEY,
            dedupe_key  TEXT UNIQUE,
            state       TEXT NOT NULL,
            kind        TEXT NOT NULL,
            created_at  $REAL NOT NULL,
            updated_at  $REAL NOT NULL,
            source      TEXT NOT NULL,
            team_id     TEXT,
            channel_id  TEXT,
            user_id     TEXT NOT NULL,
            verb        TEXT,
            raw_text    TEXT NOT NULL,
            reason      TEXT,
            plan        TEXT NOT NULL,
            reply       TEXT NOT NULL,
            adapter     TEXT NOT NULL,
            run_after   $REAL,
            owner       TEXT,
            lease_until $REAL,
            fence       $BIGINT NOT NULL DEFAULT 0,
            takeovers   INTEGER NOT NULL DEFAULT 0
        )
        """,
        "CREATE INDEX requests_held ON requests (lease_until) WHERE owner IS NOT NULL",
        "CREATE INDEX requests_owner ON requests (owner) WHERE owner IS NOT NULL",
        "CREATE INDEX requests_time ON requests (created_at)",
        "CREATE INDEX requests_user_time ON requests (user_id, created_at)",
        "CREATE INDEX requests_due ON requests (run_after) WHERE owner IS NULL "
        "AND run_after IS NOT NULL",
        Only("sqlite", _carry_leases("json_extract(l.context, '$.{key}')")),
        Only("postgresql", _carry_leases("(l.context::json ->> '{key}')")),
        # Pending rows with no lease at all (written by a version without leases): an expired
        # lease with no owner, so the first survivor to look reports them.
        """
        INSERT INTO requests (request_key, state, kind, created_at, updated_at, source,
                              team_id, channel_id, user_id, verb, raw_text, reason, plan, reply,
                              adapter, owner, lease_until, fence, takeovers)
        SELECT e.request_key, 'running', 'request', MIN(e.created_at), MIN(e.created_at),
               MIN(e.source), MIN(e.team_id), MIN(e.channel_id), MIN(e.user_id), MIN(e.verb),
               MIN(e.raw_text), MIN(e.reason), '{}', '{}', 'unknown', '', 0, 1, 0
          FROM audit_entries e
         WHERE e.outcome = 'pending'
           AND NOT EXISTS (SELECT 1 FROM requests r WHERE r.request_key = e.request_key)
         GROUP BY e.request_key
        """,
        "DROP TABLE leases",
    ),
    # 5: the rate budget per API (rows named `<app>:<command>`: Tencent's limit is per API), and
    # halving one for a while when Tencent warns that the app nears its limit
    # (`Alert.RequestOverLimit`): `halved_until` (the database's clock) on the budget's row, which
    # every reservation reads under its lock, so every replica slows down at once.
    (
        Only("postgresql", "ALTER TABLE rate_budgets ADD COLUMN halved_until DOUBLE PRECISION"),
        Only(
            "postgresql",
            "DROP FUNCTION roombot_rate_reserve(TEXT, TEXT, INTEGER, INTEGER, DOUBLE PRECISION, "
            "DOUBLE PRECISION, DOUBLE PRECISION, DOUBLE PRECISION)",
        ),
        Only("postgresql", _RATE_RESERVE_HALVABLE),
    ),
    # (issue 23) time-boxed changes: their reverts are `revert` requests waiting `scheduled`;
    # `timers`, room cards and the App Home list the pending ones (`bot.audit.timers`).
    (
        "CREATE INDEX requests_timers ON requests (run_after) "
        "WHERE kind = 'revert' AND state = 'scheduled'",
    ),
    # Two-person approval (DESIGN §2.12): a request awaiting approval waits until `expires_at`
    # (Unix seconds); the decision on it (`approved`, `denied`, `withdrawn`, `expired`), who made
    # it, when, and the note given (a denial's reason) stay on the record after it ran.
    (
        "ALTER TABLE requests ADD COLUMN expires_at $REAL",
        "ALTER TABLE requests ADD COLUMN decision TEXT",
        "ALTER TABLE requests ADD COLUMN decided_by TEXT",
        "ALTER TABLE requests ADD COLUMN decided_at $REAL",
        "ALTER TABLE requests ADD COLUMN decision_note TEXT",
        "CREATE INDEX requests_awaiting ON requests (expires_at) WHERE state = 'awaiting_approval'",
    ),
    # 8: audit retention (DESIGN §2.14): whether a row is pointed at by another's `undo_of` (a
    # foreign key: such a row is pruned only after the row pointing at it) is an index lookup,
    # not a scan of the trail for every row pruned.
    ("CREATE INDEX audit_entries_undo_of ON audit_entries (undo_of) WHERE undo_of IS NOT NULL",),
)

#: The version this code reads and writes.
SCHEMA_VERSION: Final = len(MIGRATIONS)


def statements(step: int, dialect: Dialect) -> list[str]:
    """The statements of `MIGRATIONS[step]` as `dialect` runs them."""
    out: list[str] = []
    for statement in MIGRATIONS[step]:
        if isinstance(statement, Only):
            if statement.dialect != dialect:
                continue
            sql = statement.sql
        else:
            sql = statement
        for marker, spelled in _TYPES[dialect].items():
            sql = sql.replace(marker, spelled)
        out.append(sql)
    return out
