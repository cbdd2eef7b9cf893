"""`@roombot <command>`: the same language, answered in the thread the mention was in."""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind
from bot.outcomes import Actor, Approved
from bot.presenter import Presenter
from handlers.blocks import Message
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import SlackDelivery
from handlers.timeline_file import deliver_timeline

log = logging.getLogger(__name__)

_LEADING_MENTIONS = re.compile(r"^\s*(?:<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")


def command_text(event_text: str) -> str:
    """The command in a mention's text: everything after the leading `<@BOT>` mention(s)."""
    return _LEADING_MENTIONS.sub("", event_text or "", count=1).strip()


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the `app_mention` listener to `app`."""

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any],
        body: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        event_id = str(body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}")
        if not event.get("user") or not runtime.events.first_time(event_id):
            return
        actor = actor_of(context)
        delivery = SlackDelivery.for_request(
            client,
            runtime,
            channel=event["channel"],
            user_id=actor.user_id,
            root_ts=event.get("thread_ts") or event["ts"],
        )
        text = command_text(event.get("text", ""))

        async def tell(correlation_id: str) -> None:
            await _ephemeral(delivery, presenter.renderer.unexpected_error(correlation_id))

        runtime.tasks.spawn(_handle(presenter, actor, text, delivery, event_id), on_error=tell)


async def _handle(
    presenter: Presenter[Message],
    actor: Actor,
    text: str,
    delivery: SlackDelivery,
    event_id: str,
) -> None:
    service = presenter.service
    # Audit writes of refusals wait until the event is known to be new (below).
    later: list[Coroutine[Any, Any, None]] = []
    reply = await presenter.answer(text, actor, defer=later.append)
    # Slack retries an event it thinks was not acknowledged, maybe to another replica. A write's
    # request record holds the event id once; anything else claims it.
    if isinstance(reply, Approved) and reply.command.spec.kind is not VerbKind.READ:
        plan = service.plan(reply)
        if await service.submit(plan, delivery, dedupe_key=f"event:{event_id}") is None:
            log.info("ignoring repeated delivery of event %s", event_id)
        return
    if not await service.first_delivery(event_id):
        log.info("ignoring repeated delivery of event %s", event_id)
        for work in later:
            work.close()
        return
    for work in later:
        await work
    if isinstance(reply, Approved):
        message = (await presenter.read(reply)).message
        if message.files:  # `timeline`: the summary and the file in the mention's thread
            reporter = delivery.reporter
            await deliver_timeline(
                reporter.client, message, channel=reporter.channel, thread_ts=reporter.root_ts
            )
            return
        await _ephemeral(delivery, message)
    else:
        await _ephemeral(delivery, reply.message)


async def _ephemeral(delivery: SlackDelivery, message: Message) -> None:
    reporter = delivery.reporter
    try:
        await reporter.client.chat_postEphemeral(
            channel=reporter.channel,
            user=reporter.user_id,
            text=message.text,
            blocks=message.blocks or None,
            thread_ts=reporter.root_ts,
        )
    except Exception:
        log.exception("could not answer %s in %s", reporter.user_id, reporter.channel)
