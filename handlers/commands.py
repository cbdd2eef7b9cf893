"""`/room`: ack fast (answering parse errors, denials, help and dry runs right there), then work."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot import render
from bot.commands import VerbKind
from bot.service import (
    Actor,
    Approved,
    DryRun,
    HelpReply,
    NeedsConfirmation,
    Rejected,
    RoomService,
    Source,
    new_correlation_id,
)
from handlers.delivery import ThreadReporter, post_response_url
from handlers.flow import answer_read, run_plan
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)


def register(app: AsyncApp, service: RoomService, runtime: SlackRuntime) -> None:
    """Attach the `/room` listener to `app`."""

    @app.command("/room")
    async def on_room(ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient) -> None:
        actor = Actor(
            user_id=command["user_id"],
            source=Source.SLASH,
            team_id=command.get("team_id"),
            channel_id=command.get("channel_id"),
        )
        try:
            prepared = await service.prepare(
                command.get("text") or "", actor, defer=runtime.tasks.spawn
            )
        except Exception:
            correlation_id = new_correlation_id()
            log.exception("prepare failed [%s] user=%s", correlation_id, actor.user_id)
            await ack(response_type="ephemeral", text=render.unexpected_error_text(correlation_id))
            return

        if isinstance(prepared, Rejected):
            await ack(
                response_type="ephemeral",
                text=render.rejected_text(prepared.message, prepared.usage),
            )
            return
        if isinstance(prepared, HelpReply):
            message = render.help_message(prepared.text)
            await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
            return
        if isinstance(prepared, DryRun):
            message = render.dry_run_message(prepared)
            await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
            return
        if isinstance(prepared, NeedsConfirmation):
            message = render.confirmation_message(prepared)
            await ack(response_type="ephemeral", text=message.text, blocks=message.blocks)
            return

        await ack()
        response_url = command.get("response_url")
        if prepared.command.spec.kind is VerbKind.READ:
            runtime.tasks.spawn(_show(service, prepared, response_url, client))
            return
        reporter = ThreadReporter(
            client=client,
            channel=command["channel_id"],
            user_id=actor.user_id,
            response_url=response_url,
            budget=runtime.update_budget,
        )
        runtime.tasks.spawn(run_plan(service, service.plan(prepared), reporter, runtime.gate))


async def _show(
    service: RoomService, approved: Approved, response_url: str | None, client: AsyncWebClient
) -> None:
    try:
        message = await answer_read(service, approved)
    except Exception:
        correlation_id = new_correlation_id()
        log.exception("show failed [%s]", correlation_id)
        message = render.Message(text=render.unexpected_error_text(correlation_id))
    if not await post_response_url(response_url, message, in_channel=False, session=client.session):
        log.error(
            "could not deliver `%s` result for %s", approved.command.verb, approved.actor.user_id
        )
