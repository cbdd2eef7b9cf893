"""Every Prometheus metric roombot exports, and the small functions the code counts with.

One module, so the names, labels and help texts are in one place; it imports nothing of Slack,
so the core counts directly and the Slack adapter uses the same functions. Naming follows
Prometheus's conventions: a `roombot_` prefix, counters ending in `_total`, durations in
`_seconds`. Every label takes its value from a closed set (`_closed()` maps anything else to
`other`), never a room ID, a user ID or free text, so the number of series stays bounded.

| metric | type | labels |
|---|---|---|
| `roombot_requests_total` | counter | `source`, `verb`, `outcome` |
| `roombot_tencent_calls_total` | counter | `command`, `code` |
| `roombot_tencent_request_duration_seconds` | histogram | `command` |
| `roombot_tencent_retries_total` | counter | `command` |
| `roombot_rate_budget_waits_total` | counter | – |
| `roombot_rate_budget_wait_seconds` | histogram | – |
| `roombot_rate_budget_limit` | gauge | `api` |
| `roombot_rate_over_limit_alerts_total` | counter | `api` |
| `roombot_slack_api_errors_total` | counter | `method`, `error` |
| `roombot_audit_write_failures_total` | counter | `operation` |
| `roombot_member_actions_total` | counter | `verb`, `outcome` |
| `roombot_callbacks_total` | counter | `command`, `outcome` |
| `roombot_http_refused_total` | counter | `reason` |
| `roombot_ready` | gauge | `part` |
| `roombot_store_transactions_total` | counter | `operation` |
| `roombot_takeovers_total` | counter | `kind` |
| `roombot_takeovers_undelivered` | gauge | – |
| `roombot_work_in_flight` | gauge | – (the serving adapter's collector) |
| `roombot_timebox_reverts_total` | counter | `outcome` |
| `roombot_timebox_actions_total` | counter | `action` |
| `roombot_timebox_lateness_seconds` | histogram | – |
| `roombot_timebox_pending` | gauge | – |

Plus the standard `process_*` and `python_info` series.

The registry: `REGISTRY`, roombot's own `CollectorRegistry`, not prometheus_client's global
default. The metrics are process facts (like the process's rate budget), counted from deep in
the core, so they are module-level objects rather than threaded through every constructor; a
registry of our own keeps what other libraries register on the global one out of our exposition
and lets the serving adapter combine it with per-app collectors (work in flight). Tests read a
series before and after what they do (`value()`), which isolates them without a registry per
test; tests of a real `roombot serve` process are isolated by the process.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Final

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)

from bot import models
from bot.budget import RateLimits
from bot.models.apis import COMMANDS

# `*_created` series (a timestamp per labelled series) double what a scrape carries and no
# roombot dashboard needs them.
disable_created_metrics()  # type: ignore[no-untyped-call]
REGISTRY: Final = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

#: The value of a label whose real value is not in its closed set.
OTHER: Final = "other"

# -- the closed label sets ------------------------------------------------------------------------

#: Where requests come from: `bot.audit.Source` values and the surfaces other adapters add.
SOURCES: Final = frozenset({"slash", "mention", "button", "console", "modal", "home", "tencent"})
#: How a request ended (see `count_request`).
REQUEST_OUTCOMES: Final = frozenset(
    {
        "ok",  # every target succeeded (or a read answered)
        "partial",  # some targets failed
        "failed",  # every target failed, or a read failed
        "refused",  # nothing was sent: the audit trail could not be written
        "denied",  # the policy said no
        "invalid",  # the text did not parse
        "help",
        "dry_run",
        "confirm",  # a confirmation prompt was shown (its click is counted when it runs)
        "error",  # roombot itself failed (a correlation id was shown)
    }
)
#: Room Engine APIs the client calls.
TENCENT_COMMANDS: Final = COMMANDS
#: Outcomes of a Room Engine call other than an ErrorCode ("0" is success).
TENCENT_FAILURES: Final = frozenset(
    {"timeout", "transport", "http_4xx", "http_5xx", "malformed", "not_sent"}
)
#: Slack Web API methods roombot calls, and `response_url` posts.
SLACK_METHODS: Final = frozenset(
    {
        "auth.test",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "usergroups.users.list",
        "apps.connections.open",
        "views.open",
        "views.update",
        "views.publish",
        "response_url",
    }
)
#: Slack `error` codes worth telling apart; anything else counts as `other`. `transport` and
#: `timeout` mean no Slack answer at all; `http_error` an answer that was not the Web API's.
SLACK_ERRORS: Final = frozenset(
    {
        "ratelimited",
        "invalid_auth",
        "not_authed",
        "token_revoked",
        "token_expired",
        "account_inactive",
        "not_allowed_token_type",
        "missing_scope",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "access_denied",
        "msg_too_long",
        "no_text",
        "invalid_blocks",
        "invalid_arguments",
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
        "user_not_found",
        "user_not_in_channel",
        "expired_trigger_id",
        "invalid_trigger_id",
        "view_too_large",
        "used_url",
        "expired_url",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "http_error",
        "transport",
        "timeout",
    }
)
#: AuditRecorder steps (and the adapters' own audit writes).
AUDIT_OPERATIONS: Final = frozenset(
    {
        "begin",
        "record",
        "complete",
        "confirmation",
        "confirm",
        "cancel",
        "callback",
        "lease",
        "request",
        "finish",
        "claim",
        "read",
    }
)
#: The store's transactions by what they do (`bot.audit.store`): a write request's life is
#: claim_request, begin_request, complete_request and finish_request.
#: How a time-boxed change's revert ended.
REVERT_OUTCOMES: Final = frozenset({"reverted", "partial", "left_alone", "failed"})
#: What people do with a timer.
TIMER_ACTIONS: Final = frozenset({"keep", "extend", "revert_now"})
STORE_OPERATIONS: Final = frozenset(
    {
        "claim_request",
        "begin_request",
        "complete_request",
        "finish_request",
        "abandon_request",
        "renew",
        "take_over",
        "find_work",
        "take_due",
        "take_waiting",
        "settle_waiting",
        "expire",
        "write",
        "complete",
        "claim",
        "confirmation",
        "read",
        "rate_reserve",
        "rate_end",
        "rate_halve",
        "prune",
    }
)
#: What audit retention deletes (`bot.audit.retention`).
PRUNED_KINDS: Final = frozenset({"rows", "requests"})
#: Member verbs and how one account's action ended (`bot.audit.Outcome` values).
MEMBER_VERBS: Final = frozenset({"kick", "ban", "unban"})
TARGET_OUTCOMES: Final = frozenset({"ok", "noop", "failed", "not_attempted"})
#: Room Engine callback commands (reference §5), `Alert.RequestOverLimit`, and what became of one.
CALLBACK_COMMANDS: Final = frozenset(command.value for command in models.CallbackCommand)
CALLBACK_OUTCOMES: Final = frozenset(
    {
        # What the processor made of a delivery (`bot.callbacks.processor.Handling`):
        "counted",  # member callbacks and seat sit/leave traffic: counted, never posted
        "duplicate",  # a repeated delivery of an event already handled
        "echo",  # roombot's own change, echoed back: nothing to record
        "unchanged",  # recorded; nothing roombot knew changed, so no alert
        "recorded",  # a creation: recorded, no alert
        "outside",  # a change made outside roombot: recorded and alerted
        "unrecorded",  # the audit store failed: alerted unchecked
        "over_limit",  # Alert.RequestOverLimit: the API's budget halved (alerted once)
        # Refused at the door:
        "unauthorized",  # bad token, SdkAppid or Sign: 401
        "invalid",  # unreadable body, unknown command: 4xx
        "busy",  # the queue was full: 503
    }
)
#: Why a request to the Slack endpoint was refused before bolt saw it.
REFUSAL_REASONS: Final = frozenset(
    {
        "bad_timestamp",  # missing, not a number, or absurdly long
        "stale_timestamp",  # more than 5 minutes from now
        "bad_signature",
        "not_utf8",
        "bad_json",  # a JSON body or `payload=` that is not a JSON object
        "too_large",
    }
)
#: What `/readyz` checks.
READY_PARTS: Final = frozenset({"database", "slack", "tencent"})
#: How this replica came to report a request it was not carrying out (`bot.requests.loop`).
TAKEOVER_KINDS: Final = frozenset(
    {
        "lease_expired",  # its replica stopped renewing the lease (PostgreSQL)
        "restart",  # this process's previous run left it unfinished (SQLite)
    }
)

# -- the metrics ----------------------------------------------------------------------------------

_LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS: Final = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS: Final = Counter(
    "roombot_requests",
    "Requests by where they came from, their verb and how they ended.",
    ["source", "verb", "outcome"],
    registry=REGISTRY,
)
TENCENT_CALLS: Final = Counter(
    "roombot_tencent_calls",
    "Room Engine calls (after retries) by API command and result: 0, Tencent's ErrorCode, "
    "or timeout/transport/http_4xx/http_5xx/malformed/not_sent.",
    ["command", "code"],
    registry=REGISTRY,
)
TENCENT_DURATION: Final = Histogram(
    "roombot_tencent_request_duration_seconds",
    "Time of one HTTP attempt to Room Engine (a retried call has several), by API command.",
    ["command"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
TENCENT_RETRIES: Final = Counter(
    "roombot_tencent_retries",
    "Room Engine attempts that were retried, by API command.",
    ["command"],
    registry=REGISTRY,
)
BUDGET_WAITS: Final = Counter(
    "roombot_rate_budget_waits",
    "Room Engine attempts that had to wait for the rate budget (ROOMBOT_RATE_LIMIT).",
    registry=REGISTRY,
)
BUDGET_WAIT: Final = Histogram(
    "roombot_rate_budget_wait_seconds",
    "Time each Room Engine attempt waited for its rate-budget slot (0 when none).",
    buckets=_WAIT_BUCKETS,
    registry=REGISTRY,
)
BUDGET_LIMIT: Final = Gauge(
    "roombot_rate_budget_limit",
    "Room Engine calls per second each API may use now: ROOMBOT_RATE_LIMIT, or half of it "
    "for a minute after Tencent's Alert.RequestOverLimit named the API.",
    ["api"],
    registry=REGISTRY,
)
OVER_LIMIT_ALERTS: Final = Counter(
    "roombot_rate_over_limit_alerts",
    "Alert.RequestOverLimit callbacks received (Tencent: the app passed 80% of an API's "
    "limit), by the API they named.",
    ["api"],
    registry=REGISTRY,
)
SLACK_ERRORS_TOTAL: Final = Counter(
    "roombot_slack_api_errors",
    "Slack Web API calls (and response_url posts) that failed, by method and Slack's error.",
    ["method", "error"],
    registry=REGISTRY,
)
AUDIT_FAILURES: Final = Counter(
    "roombot_audit_write_failures",
    "Audit trail writes that failed, by operation.",
    ["operation"],
    registry=REGISTRY,
)
STORE_TRANSACTIONS: Final = Counter(
    "roombot_store_transactions",
    "Transactions the audit store ran (a read outside one counts as one), by operation: a "
    "write request's life is claim_request, begin_request, complete_request, finish_request.",
    ["operation"],
    registry=REGISTRY,
)
AUDIT_PRUNED: Final = Counter(
    "roombot_audit_pruned",
    "Audit rows and request records deleted by retention (ROOMBOT_AUDIT_RETENTION, "
    "roombot audit prune), by kind: rows or requests.",
    ["kind"],
    registry=REGISTRY,
)
MEMBER_ACTIONS: Final = Counter(
    "roombot_member_actions",
    "Member moderation actions, one per account, by verb and outcome.",
    ["verb", "outcome"],
    registry=REGISTRY,
)
CALLBACKS: Final = Counter(
    "roombot_callbacks",
    "Room Engine callbacks received, by callback command and what became of them.",
    ["command", "outcome"],
    registry=REGISTRY,
)
HTTP_REFUSED: Final = Counter(
    "roombot_http_refused",
    "Requests to the Slack endpoint refused before any processing, by reason.",
    ["reason"],
    registry=REGISTRY,
)
READY: Final = Gauge(
    "roombot_ready",
    "1 when the last readiness check of this part passed, else 0.",
    ["part"],
    registry=REGISTRY,
)

TAKEOVERS: Final = Counter(
    "roombot_takeovers",
    "Requests whose replica stopped before finishing, taken over and read back by this one, "
    "by how: lease_expired or restart.",
    ["kind"],
    registry=REGISTRY,
)
TAKEOVERS_UNDELIVERED: Final = Gauge(
    "roombot_takeovers_undelivered",
    "Requests taken over whose report this replica has not delivered yet (it keeps trying).",
    registry=REGISTRY,
)

TIMEBOX_REVERTS: Final = Counter(
    "roombot_timebox_reverts",
    "Reverts of time-boxed changes (--for) carried out, by outcome: reverted (every field set "
    "back), partial (some left alone or failed), left_alone (every field changed since), failed.",
    ["outcome"],
    registry=REGISTRY,
)
TIMEBOX_ACTIONS: Final = Counter(
    "roombot_timebox_actions",
    "What people did with a time-boxed change's timer: keep, extend or revert_now.",
    ["action"],
    registry=REGISTRY,
)
TIMEBOX_PENDING: Final = Gauge(
    "roombot_timebox_pending",
    "Time-boxed changes whose revert is still to run, on the whole audit database (as of this "
    "replica's last readiness check).",
    registry=REGISTRY,
)
TIMEBOX_LATENESS: Final = Histogram(
    "roombot_timebox_lateness_seconds",
    "How long after its due time a time-boxed change's revert was taken (late: no replica ran).",
    buckets=(1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
    registry=REGISTRY,
)

# -- counting -------------------------------------------------------------------------------------


def _closed(value: str | None, allowed: Iterable[str]) -> str:
    return value if value is not None and value in allowed else OTHER


@functools.cache
def _verbs() -> frozenset[str]:
    from bot.commands import VERBS

    return frozenset({*VERBS, "undo", "revert", "unknown"})


def verb_label(verb: str | None) -> str:
    """A canonical verb, `undo`, or `unknown` (unparsable text): never free text."""
    if verb is None:
        return "unknown"
    return _closed(verb, _verbs())


def count_request(source: str, verb: str | None, outcome: str) -> None:
    """One request ended (`REQUEST_OUTCOMES`)."""
    REQUESTS.labels(
        _closed(source, SOURCES), verb_label(verb), _closed(outcome, REQUEST_OUTCOMES)
    ).inc()


def count_tencent_call(command: str, code: str) -> None:
    """One Room Engine call ended, after its retries, with `code`: "0", a known Tencent code, or
    one of `TENCENT_FAILURES` (closed by the caller: `bot.tencent.errors.metric_code`)."""
    TENCENT_CALLS.labels(_closed(command, TENCENT_COMMANDS), code).inc()


def observe_tencent_attempt(command: str, seconds: float) -> None:
    """One HTTP attempt to Room Engine took `seconds`."""
    TENCENT_DURATION.labels(_closed(command, TENCENT_COMMANDS)).observe(seconds)


def count_tencent_retry(command: str) -> None:
    """A failed Room Engine attempt is about to be retried."""
    TENCENT_RETRIES.labels(_closed(command, TENCENT_COMMANDS)).inc()


#: Waits shorter than this are not counted as waits (the slot was free).
_WAITED_S: Final = 0.001


def observe_budget_wait(seconds: float) -> None:
    """A Room Engine attempt waited `seconds` for its rate-budget slot."""
    BUDGET_WAIT.observe(seconds)
    if seconds >= _WAITED_S:
        BUDGET_WAITS.inc()


def count_slack_error(method: str, error: str) -> None:
    """A Slack call failed with `error` (Slack's code, or transport/timeout/http_error)."""
    SLACK_ERRORS_TOTAL.labels(_closed(method, SLACK_METHODS), _closed(error, SLACK_ERRORS)).inc()


def count_audit_failure(operation: str) -> None:
    """An audit write failed."""
    AUDIT_FAILURES.labels(_closed(operation, AUDIT_OPERATIONS)).inc()


def count_store_transaction(operation: str) -> None:
    """The audit store ran one transaction (`STORE_OPERATIONS`)."""
    STORE_TRANSACTIONS.labels(_closed(operation, STORE_OPERATIONS)).inc()


def count_pruned(kind: str, count: int) -> None:
    """Retention deleted `count` audit rows or request records (`PRUNED_KINDS`)."""
    AUDIT_PRUNED.labels(_closed(kind, PRUNED_KINDS)).inc(count)


def count_member_action(verb: str, outcome: str) -> None:
    """One account's kick, ban or unban ended (`TARGET_OUTCOMES`)."""
    MEMBER_ACTIONS.labels(_closed(verb, MEMBER_VERBS), _closed(outcome, TARGET_OUTCOMES)).inc()


def count_callback(command: str, outcome: str) -> None:
    """A Room Engine callback arrived and ended as `outcome` (`CALLBACK_OUTCOMES`)."""
    CALLBACKS.labels(_closed(command, CALLBACK_COMMANDS), _closed(outcome, CALLBACK_OUTCOMES)).inc()


def count_refused(reason: str) -> None:
    """A request to the Slack endpoint was refused before processing (`REFUSAL_REASONS`)."""
    HTTP_REFUSED.labels(_closed(reason, REFUSAL_REASONS)).inc()


def set_ready(part: str, ok: bool) -> None:
    """The last readiness check of `part` passed (or not)."""
    READY.labels(_closed(part, READY_PARTS)).set(1 if ok else 0)


def count_takeover(kind: str) -> None:
    """This replica took over a stopped replica's request (`TAKEOVER_KINDS`)."""
    TAKEOVERS.labels(_closed(kind, TAKEOVER_KINDS)).inc()


def set_takeovers_undelivered(count: int) -> None:
    """How many taken-over requests' reports this replica still has to deliver."""
    TAKEOVERS_UNDELIVERED.set(count)


def count_revert(outcome: str) -> None:
    """A time-boxed change's revert ended (`REVERT_OUTCOMES`)."""
    TIMEBOX_REVERTS.labels(_closed(outcome, REVERT_OUTCOMES)).inc()


def count_timer_action(action: str) -> None:
    """Someone kept, extended or reverted now a time-boxed change (`TIMER_ACTIONS`)."""
    TIMEBOX_ACTIONS.labels(_closed(action, TIMER_ACTIONS)).inc()


def set_timers_pending(count: int) -> None:
    """How many time-boxed changes' reverts are still to run (the whole database)."""
    TIMEBOX_PENDING.set(count)


def observe_revert_lateness(seconds: float) -> None:
    """A due revert was taken `seconds` after its time."""
    TIMEBOX_LATENESS.observe(max(0.0, seconds))


def watch_rate_limits(budget: RateLimits) -> None:
    """Read `roombot_rate_budget_limit` from `budget` at every scrape, for every API the client
    calls (the newest budget watched is the one shown: a process has one)."""
    for api in sorted(TENCENT_COMMANDS):
        BUDGET_LIMIT.labels(api).set_function(functools.partial(budget.limit, api))


def count_over_limit(api: str) -> None:
    """Tencent warned that the app passed 80% of `api`'s limit (`Alert.RequestOverLimit`)."""
    OVER_LIMIT_ALERTS.labels(_closed(api, TENCENT_COMMANDS)).inc()


def value(name: str, **labels: str) -> float:
    """The current value of one series (0 when it does not exist yet); for tests and the bench."""
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found
