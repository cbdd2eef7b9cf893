"""The part of a request that is the same whether it came as `/room`, `@roombot` or a button."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from bot import wording
from bot.outcomes import Plan, Progress
from bot.service import RoomService
from handlers import blocks
from handlers.delivery import ThreadReporter
from handlers.runtime import AckGate, SlackRuntime

log = logging.getLogger(__name__)


async def run_plan(
    service: RoomService, plan: Plan, reporter: ThreadReporter, gate: AckGate | None = None
) -> None:
    """Post the parent, run the plan with progress, and deliver the outcome in its thread.

    Before each step the work yields to requests still waiting for their ack (`gate`).
    """
    command, actor, kind = plan.command, plan.actor, plan.kind
    step = gate.wait_idle if gate is not None else _no_wait
    if reporter.pause is None:
        reporter.pause = step
    await reporter.start(blocks.parent_message(command, actor, kind=kind))

    async def on_progress(progress: Progress) -> None:
        await reporter.progress(
            lambda: blocks.parent_message(command, actor, wording.progress_status(progress), kind)
        )

    run = await service.run(plan, progress=on_progress, yield_to=step)
    final = blocks.parent_message(command, actor, wording.final_status(run), kind)
    await reporter.finish(run, final, blocks.result_messages(run))


def spawn_for(
    runtime: SlackRuntime, reporter: ThreadReporter, work: Coroutine[Any, Any, None]
) -> None:
    """Run `work` after the ack; if it fails unexpectedly, tell the requester the error id."""

    async def tell(correlation_id: str) -> None:
        text = blocks.unexpected_error_text(correlation_id, work_started=True)
        if not await reporter.tell(blocks.Message(text=text)):
            log.error("could not tell %s about error [%s]", reporter.user_id, correlation_id)

    runtime.tasks.spawn(work, on_error=tell)


async def _no_wait() -> None:
    return None
