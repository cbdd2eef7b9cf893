"""The part of a request that is the same whether it came as `/room`, `@roombot` or a button."""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from bot import wording
from bot.outcomes import Plan, Progress
from bot.service import RoomService
from handlers import blocks
from handlers.delivery import SLACK_FAILURES, ThreadReporter, post_response_url
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
        await tell_privately(
            reporter, blocks.unexpected_error_text(correlation_id, work_started=True)
        )

    runtime.tasks.spawn(work, on_error=tell)


async def _no_wait() -> None:
    return None


async def tell_privately(reporter: ThreadReporter, text: str) -> None:
    """An ephemeral note to the requester: response_url when we have one, else postEphemeral."""
    message = blocks.Message(text=text)
    if await post_response_url(reporter.client, reporter.response_url, message, in_channel=False):
        return
    try:
        await reporter.client.chat_postEphemeral(
            channel=reporter.channel, user=reporter.user_id, text=text, thread_ts=reporter.thread_ts
        )
    except SLACK_FAILURES:
        log.exception("could not tell %s privately", reporter.user_id)
