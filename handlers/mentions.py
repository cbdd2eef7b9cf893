"""`@roombot <command>`: the same language, answered in the thread the mention was in."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncApp
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
from handlers.delivery import ThreadReporter
from handlers.flow import answer_read, run_plan
from handlers.runtime import AckGate, SlackRuntime

log = logging.getLogger(__name__)

_LEADING_MENTIONS = re.compile(r"^\s*(?:<@[A-Z0-9]+(?:\|[^>]*)?>[\s,:]*)+")


def command_text(event_text: str) -> str:
    """The command in a mention's text: everything after the leading `<@BOT>` mention(s)."""
    return _LEADING_MENTIONS.sub("", event_text or "", count=1).strip()


def register(app: AsyncApp, service: RoomService, runtime: SlackRuntime) -> None:
    """Attach the `app_mention` listener to `app`."""

    @app.event("app_mention")
    async def on_mention(
        event: dict[str, Any], body: dict[str, Any], client: AsyncWebClient
    ) -> None:
        event_id = str(body.get("event_id") or f"{event.get('channel')}:{event.get('ts')}")
        user_id = event.get("user")
        if not user_id or not runtime.events.first_time(event_id):
            return
        channel = event["channel"]
        actor = Actor(
            user_id=user_id,
            source=Source.MENTION,
            team_id=body.get("team_id"),
            channel_id=channel,
        )
        reporter = ThreadReporter(
            client=client,
            channel=channel,
            user_id=user_id,
            root_ts=event.get("thread_ts") or event["ts"],
            budget=runtime.update_budget,
        )
        text = command_text(event.get("text", ""))
        runtime.tasks.spawn(_handle(service, actor, text, reporter, event_id, runtime.gate))


async def _handle(
    service: RoomService,
    actor: Actor,
    text: str,
    reporter: ThreadReporter,
    event_id: str,
    gate: AckGate,
) -> None:
    # Slack retries an event it thinks was not acknowledged; another instance may have it too.
    if not await service.first_delivery(event_id):
        log.info("ignoring repeated delivery of event %s", event_id)
        return
    try:
        prepared = await service.prepare(text, actor)
        if isinstance(prepared, Approved):
            if prepared.command.spec.kind is VerbKind.READ:
                await _ephemeral(reporter, await answer_read(service, prepared))
            else:
                await run_plan(service, service.plan(prepared), reporter, gate)
            return
        if isinstance(prepared, Rejected):
            message = render.Message(text=render.rejected_text(prepared.message, prepared.usage))
        elif isinstance(prepared, HelpReply):
            message = render.help_message(prepared.text)
        elif isinstance(prepared, NeedsConfirmation):
            message = render.confirmation_message(prepared)
        else:
            assert isinstance(prepared, DryRun)
            message = render.dry_run_message(prepared)
        await _ephemeral(reporter, message)
    except Exception:
        correlation_id = new_correlation_id()
        log.exception("mention failed [%s] user=%s", correlation_id, actor.user_id)
        await _ephemeral(
            reporter, render.Message(text=render.unexpected_error_text(correlation_id))
        )


async def _ephemeral(reporter: ThreadReporter, message: render.Message) -> None:
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
