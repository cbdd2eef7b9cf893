"""`@roombot <command>`: the same language, answered in the thread the mention was in."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind
from bot.outcomes import Actor, Approved
from bot.presenter import Presenter
from handlers.blocks import Message
from handlers.delivery import ThreadReporter
from handlers.flow import run_plan
from handlers.middleware import actor_of
from handlers.runtime import AckGate, SlackRuntime

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
        reporter = ThreadReporter(
            client=client,
            channel=event["channel"],
            user_id=actor.user_id,
            root_ts=event.get("thread_ts") or event["ts"],
            budget=runtime.update_budget,
        )
        text = command_text(event.get("text", ""))

        async def tell(correlation_id: str) -> None:
            await _ephemeral(reporter, presenter.renderer.unexpected_error(correlation_id))

        runtime.tasks.spawn(
            _handle(presenter, actor, text, reporter, event_id, runtime.gate), on_error=tell
        )


async def _handle(
    presenter: Presenter[Message],
    actor: Actor,
    text: str,
    reporter: ThreadReporter,
    event_id: str,
    gate: AckGate,
) -> None:
    service = presenter.service
    # Slack retries an event it thinks was not acknowledged; another instance may have it too.
    if not await service.first_delivery(event_id):
        log.info("ignoring repeated delivery of event %s", event_id)
        return
    reply = await presenter.answer(text, actor)
    if not isinstance(reply, Approved):
        await _ephemeral(reporter, reply.message)
    elif reply.command.spec.kind is VerbKind.READ:
        await _ephemeral(reporter, (await presenter.read(reply)).message)
    else:
        await run_plan(service, service.plan(reply), reporter, gate)


async def _ephemeral(reporter: ThreadReporter, message: Message) -> None:
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
