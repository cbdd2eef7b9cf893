"""The results of a run that did not happen as planned, and what a run's outcome is on record:
a run lost to another replica, not run at all, or refused because its audit record could not be
written; each target's audit completion; and the two structured log lines every run leaves
(its outcome, and, with the audit trail down, every target's).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence

from bot.audit import Outcome
from bot.audit.rows import Completion
from bot.outcomes import Failure, FailureKind, Plan, RoomResult, RunResult
from bot.requests.recorder import Target, targets_of

log = logging.getLogger("bot.requests.runner")


def _targets(plan: Plan) -> list[Target]:
    return [t for index, call in enumerate(plan.calls) for t in targets_of(call, index)]


def lost(
    plan: Plan,
    why: str,
    *,
    targets: Sequence[Target] | None = None,
    started: float | None = None,
    results: Sequence[RoomResult] = (),
) -> RunResult:
    """The request was taken over by another replica: this one reports nothing. What it did
    meanwhile goes to the log (the other replica's reading is what the audit keeps)."""
    log.warning(
        "request %s is no longer this replica's to carry out (%s); %d call(s) answered here "
        "before: %s",
        plan.request_key,
        why,
        len([r for r in results if r.failure is None or r.request_id]),
        json.dumps(
            [[r.room_id, r.account, "ok" if r.ok else "failed", r.request_id] for r in results]
        ),
    )
    return RunResult(
        command=plan.command,
        actor=plan.actor,
        request_key=plan.request_key,
        results=list(results)
        or [
            RoomResult(t.room_id, t.changes, account=t.account)
            for t in (_targets(plan) if targets is None else targets)
        ],
        elapsed_s=0.0 if started is None else time.monotonic() - started,
        kind=plan.kind,
        read_before=False,
        lost=why,
    )


def not_run(plan: Plan, why: str) -> RunResult:
    """The run of a request that calls nothing, for `why` (a plain sentence)."""
    failure = Failure(kind=FailureKind.NOT_ATTEMPTED, message=why, hint="")
    return RunResult(
        command=plan.command,
        actor=plan.actor,
        request_key=plan.request_key,
        results=[
            RoomResult(t.room_id, t.changes, failure=failure, account=t.account)
            for t in _targets(plan)
        ],
        kind=plan.kind,
        read_before=False,
        refused=why,
    )


def refused(
    plan: Plan,
    problem: str,
    *,
    targets: Sequence[Target] | None = None,
    started: float | None = None,
) -> RunResult:
    """The run of a request refused because its audit record could not be written: every
    target "not attempted"."""
    targets = _targets(plan) if targets is None else targets
    why = f"the audit trail could not be written ({problem}), so nothing was sent"
    failure = Failure(
        kind=FailureKind.NOT_ATTEMPTED,
        message=why,
        hint="fix the audit database (roombot check), then run the command again",
    )
    log.error(
        "request refused, the audit trail cannot be written: user=%s verb=%s targets=%d",
        plan.actor.user_id,
        plan.command.verb,
        len(targets),
    )
    return RunResult(
        command=plan.command,
        actor=plan.actor,
        request_key=plan.request_key,
        results=[
            RoomResult(t.room_id, t.changes, failure=failure, account=t.account) for t in targets
        ],
        elapsed_s=0.0 if started is None else time.monotonic() - started,
        kind=plan.kind,
        read_before=False,
        audit_error=problem,
        refused="the audit trail could not be written, so nothing was changed",
    )


def completion(result: RoomResult) -> Completion:
    """What a target's audit row records of its outcome."""
    failure = result.failure
    return Completion(
        outcome=target_outcome(result),
        tencent_request_id=result.request_id,
        error_code=failure.code if failure else None,
        error_info=failure.message if failure else None,
        latency_ms=round(result.elapsed_s * 1000, 3),
        previous=result.previous,
        detail=failure.kind.value
        if failure and failure.kind in (FailureKind.CONFLICT, FailureKind.NOT_ATTEMPTED)
        else None,
    )


def target_outcome(result: RoomResult) -> Outcome:
    """How one target ended, as its audit row records it."""
    failure = result.failure
    if failure is None:
        return Outcome.NOOP if result.noop else Outcome.OK
    if failure.kind is FailureKind.NOT_ATTEMPTED:
        return Outcome.NOT_ATTEMPTED
    return Outcome.FAILED


def request_outcome(run: RunResult) -> str:
    """The `outcome` label of a run: ok, partial, failed, or refused (nothing sent)."""
    if run.refused:
        return "refused"
    succeeded = sum(1 for result in run.results if result.ok)
    if succeeded == len(run.results):
        return "ok"
    return "partial" if succeeded else "failed"


def log_unaudited(run: RunResult) -> None:
    """With the audit trail down (and unaudited changes allowed), the outcome of every target in
    one structured line: the only record there will be."""
    log.error(
        "UNAUDITED REQUEST %s",
        json.dumps(
            {
                "request_key": run.request_key,
                "user": run.actor.user_id,
                "channel": run.actor.channel_id,
                "verb": run.command.verb,
                "targets": [
                    {
                        "room": r.room_id,
                        "account": r.account,
                        "ok": r.ok,
                        "error_code": r.failure.code if r.failure else None,
                        "request_id": r.request_id,
                    }
                    for r in run.results
                ],
            },
            ensure_ascii=False,
        ),
    )


def log_finished(run: RunResult) -> None:
    """Every request's outcome in one structured line, whatever later happens to its Slack
    messages: the RequestIds are never only in Slack and the audit trail."""
    log.info(
        "request finished %s",
        json.dumps(
            {
                "request_key": run.request_key,
                "user": run.actor.user_id,
                "verb": run.command.verb,
                "kind": run.kind.value,
                "ok": len(run.succeeded),
                "failed": len(run.failed),
                "targets": [
                    [r.room_id, r.account, "ok" if r.ok else "failed", r.request_id]
                    for r in run.results
                ],
            },
            ensure_ascii=False,
        ),
    )
