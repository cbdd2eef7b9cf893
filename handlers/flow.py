"""The part of a request that is the same whether it came as `/room`, `@roombot` or a button."""

from __future__ import annotations

import logging

from bot import render
from bot.commands import VerbKind
from bot.service import Approved, Plan, Progress, RoomService, new_correlation_id
from handlers.delivery import ThreadReporter, post_response_url
from handlers.runtime import AckGate

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
    try:
        await reporter.start(render.parent_message(command, actor, kind=kind))

        async def on_progress(progress: Progress) -> None:
            await reporter.progress(
                lambda: render.parent_message(
                    command, actor, render.progress_status(progress), kind
                )
            )

        run = await service.run(plan, progress=on_progress, yield_to=step)
        final = render.parent_message(command, actor, render.final_status(run), kind)
        await reporter.finish(run, final, render.result_messages(run))
    except Exception:
        correlation_id = new_correlation_id()
        log.exception(
            "request failed [%s] user=%s verb=%s", correlation_id, actor.user_id, command.verb
        )
        await tell_privately(reporter, render.unexpected_error_text(correlation_id))


async def _no_wait() -> None:
    return None


async def answer_read(service: RoomService, approved: Approved) -> render.Message:
    """The message for a read verb: `show` or `history`."""
    if approved.command.spec.kind is not VerbKind.READ:
        raise ValueError(f"not a read verb: {approved.command.verb}")
    if approved.command.verb == "history":
        return render.history_message(await service.history(approved))
    return render.show_message(await service.show(approved))


async def tell_privately(reporter: ThreadReporter, text: str) -> None:
    """An ephemeral note to the requester: response_url when we have one, else postEphemeral."""
    message = render.Message(text=text)
    if await post_response_url(
        reporter.response_url, message, in_channel=False, session=reporter.client.session
    ):
        return
    try:
        await reporter.client.chat_postEphemeral(
            channel=reporter.channel, user=reporter.user_id, text=text, thread_ts=reporter.thread_ts
        )
    except Exception:
        log.exception("could not tell %s privately", reporter.user_id)
