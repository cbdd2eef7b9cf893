"""The part of a request that is the same whether it came as `/room` or as `@roombot`."""

from __future__ import annotations

import logging

from bot import render
from bot.service import Approved, Progress, RoomService, new_correlation_id
from handlers.delivery import ThreadReporter, post_response_url

log = logging.getLogger(__name__)


async def run_write(service: RoomService, approved: Approved, reporter: ThreadReporter) -> None:
    """Post the parent, run the request with progress, and deliver the outcome in its thread."""
    command, actor = approved.command, approved.actor
    try:
        await reporter.start(render.parent_message(command, actor))

        async def on_progress(progress: Progress) -> None:
            status = render.progress_status(progress)
            await reporter.progress(progress, render.parent_message(command, actor, status))

        run = await service.execute(approved, progress=on_progress)
        final = render.parent_message(command, actor, render.final_status(run))
        await reporter.finish(run, final, render.result_messages(run))
    except Exception:
        correlation_id = new_correlation_id()
        log.exception(
            "request failed [%s] user=%s verb=%s", correlation_id, actor.user_id, command.verb
        )
        await tell_privately(reporter, render.unexpected_error_text(correlation_id))


async def tell_privately(reporter: ThreadReporter, text: str) -> None:
    """An ephemeral note to the requester: response_url when we have one, else postEphemeral."""
    message = render.Message(text=text)
    if await post_response_url(reporter.response_url, message, in_channel=False):
        return
    try:
        await reporter.client.chat_postEphemeral(
            channel=reporter.channel, user=reporter.user_id, text=text, thread_ts=reporter.thread_ts
        )
    except Exception:
        log.exception("could not tell %s: %s", reporter.user_id, text)
