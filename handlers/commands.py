"""`/room`: ack fast (answering parse errors, denials, help and dry runs right there), then work."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind
from bot.outcomes import Approved
from bot.presenter import Presenter
from handlers import modal
from handlers.blocks import Message
from handlers.delivery import ThreadReporter, post_response_url
from handlers.flow import run_plan, spawn_for
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the `/room` listener to `app`."""

    @app.command("/room")
    async def on_room(
        ack: AsyncAck, command: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        actor = actor_of(context)
        if modal.is_empty(command.get("text") or ""):
            await modal.open_form(ack, command, client, actor, presenter)  # the command form
            return
        reply = await presenter.answer(command.get("text") or "", actor, defer=runtime.tasks.spawn)
        if not isinstance(reply, Approved):
            message = reply.message
            await ack(response_type="ephemeral", text=message.text, blocks=message.blocks or None)
            return

        await ack()
        response_url = command.get("response_url")
        if reply.command.spec.kind is VerbKind.READ:

            async def tell(correlation_id: str) -> None:
                message = presenter.renderer.unexpected_error(correlation_id)
                await _deliver(message, reply, response_url, client)

            runtime.tasks.spawn(_read(presenter, reply, response_url, client), on_error=tell)
            return
        reporter = ThreadReporter(
            client=client,
            channel=command["channel_id"],
            user_id=actor.user_id,
            response_url=response_url,
            budget=runtime.update_budget,
        )
        service = presenter.service
        spawn_for(runtime, reporter, run_plan(service, service.plan(reply), reporter, runtime.gate))


async def _read(
    presenter: Presenter[Message],
    approved: Approved,
    response_url: str | None,
    client: AsyncWebClient,
) -> None:
    answer = await presenter.read(approved)
    await _deliver(answer.message, approved, response_url, client)


async def _deliver(
    message: Message, approved: Approved, response_url: str | None, client: AsyncWebClient
) -> None:
    if not await post_response_url(response_url, message, in_channel=False, session=client.session):
        log.error(
            "could not deliver `%s` result for %s", approved.command.verb, approved.actor.user_id
        )
