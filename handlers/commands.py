"""`/room`: ack fast (answering parse errors, denials, help and dry runs right there), then work.

Slack wants the ack within 3 s, and some answers need Slack first (a policy role granted through
a user group: `usergroups.users.list`, which may be slow or rate-limited). So the answer gets
`ANSWER_WITHIN_S`; if it is not ready by then the command is acknowledged with a holding note
and answered through its `response_url` when ready, so the ack never misses its deadline.

A command is never acted on when its ack was late (Slack has then told the user it failed, and
they may well type it again), and never twice: a replayed request (same `trigger_id`) is claimed
in the audit store, so it acts once across replicas. A write without a `trigger_id` (Slack
always sends one; a hand-made request may not) is refused, since its replay could not be told
apart; reads still answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind
from bot.outcomes import Approved
from bot.presenter import Answer, Confirm, Presenter
from handlers import modal
from handlers.approval_blocks import WAIT_MARK
from handlers.blocks import SLACK, Message
from handlers.delivery import post_response_url
from handlers.middleware import acknowledged, actor_of, received_at
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import SlackDelivery
from handlers.timeline_file import deliver_timeline

log = logging.getLogger(__name__)

#: How long the ack waits for the answer before acknowledging with a holding note.
ANSWER_WITHIN_S: Final = 2.0
#: Slack's ack deadline, measured from when the request reached roombot (a little generous:
#: Slack's 3 s include the network).
ACK_DEADLINE_S: Final = 3.0

_HOLDING: Final = (
    "⏳ Slack is slow to tell me your permissions (user groups); your answer will follow here "
    "in a moment. Please do not run the command again."
)
_NO_TRIGGER: Final = (
    "❌ This command came without a trigger_id, so I cannot make sure it runs only once: "
    "nothing was run. Slack sends one with every /room command; if you typed it in Slack, "
    "run it again."
)
_TOO_LATE: Final = (
    "⚠️ Slack gave up waiting for my answer to this command, so I did not run it. Nothing was "
    "changed; run it again."
)


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
        answering = asyncio.ensure_future(
            presenter.answer(command.get("text") or "", actor, defer=runtime.tasks.spawn)
        )
        done, _ = await asyncio.wait({answering}, timeout=ANSWER_WITHIN_S)
        if not done:
            await ack(response_type="ephemeral", text=_HOLDING)
            runtime.tasks.spawn(_answer_later(presenter, runtime, command, answering, client))
            return
        reply = answering.result()
        if not isinstance(reply, Approved):
            message = reply.message
            await ack(response_type="ephemeral", text=message.text, blocks=message.blocks or None)
            return
        if _unreplayable(reply, command):
            await ack(response_type="ephemeral", text=_NO_TRIGGER)
            runtime.tasks.spawn(_refuse_untriggered(presenter, reply, command))
            return
        if reply.approval is not None:
            await ack(response_type="ephemeral", text=approval_pending_text(reply.approval))
        else:
            await ack()
        acknowledged(context)  # its work may start once the other acks of a burst are out
        if time.monotonic() - received_at(context) > ACK_DEADLINE_S:
            log.warning("not running a command whose ack was late: user=%s", actor.user_id)
            tell = Message(text=_TOO_LATE)
            await post_response_url(client, command.get("response_url"), tell, in_channel=False)
            return
        _carry_out(presenter, runtime, command, reply, client)


async def _answer_later(
    presenter: Presenter[Message],
    runtime: SlackRuntime,
    command: dict[str, Any],
    answering: asyncio.Future[Answer[Message] | Confirm[Message] | Approved],
    client: AsyncWebClient,
) -> None:
    """The answer the ack could not wait for, through the command's response_url."""
    reply = await answering
    if isinstance(reply, Approved) and _unreplayable(reply, command):
        await _refuse_untriggered(presenter, reply, command)
        await post_response_url(
            client, command.get("response_url"), Message(text=_NO_TRIGGER), in_channel=False
        )
        return
    if isinstance(reply, Approved):
        _carry_out(presenter, runtime, command, reply, client)
        return
    if not await post_response_url(
        client, command.get("response_url"), reply.message, in_channel=False
    ):
        log.error("could not deliver a late answer to %s", command.get("user_id"))


def approval_pending_text(why: str) -> str:
    """The ack of a write that awaits a second person's approval."""
    return (
        f"{WAIT_MARK} Approval pending: {SLACK.prose(why)}. I posted the request in this channel "
        "for an approver; nothing runs until one approves it (you cannot approve your own)."
    )


def _unreplayable(approved: Approved, command: dict[str, Any]) -> bool:
    """True for a write that came without a `trigger_id`: its replay could not be told apart
    (Slack sends one with every slash command; only a hand-made request lacks it)."""
    return approved.command.spec.kind is VerbKind.WRITE and not command.get("trigger_id")


async def _refuse_untriggered(
    presenter: Presenter[Message], approved: Approved, command: dict[str, Any]
) -> None:
    log.warning("refusing a /room write without a trigger_id (user=%s)", approved.actor.user_id)
    await presenter.service.refuse(
        approved.actor, str(command.get("text") or ""), "a /room command without a trigger_id"
    )


def _carry_out(
    presenter: Presenter[Message],
    runtime: SlackRuntime,
    command: dict[str, Any],
    approved: Approved,
    client: AsyncWebClient,
) -> None:
    """After the ack: a read answers through the response_url; a write runs in its thread."""
    response_url = command.get("response_url")
    if approved.command.spec.kind is VerbKind.READ:

        async def tell(correlation_id: str) -> None:
            message = presenter.renderer.unexpected_error(correlation_id)
            await _deliver(message, approved, response_url, client)

        channel = str(command.get("channel_id") or "")
        runtime.tasks.spawn(
            _read(presenter, approved, response_url, client, channel), on_error=tell
        )
        return
    delivery = SlackDelivery.for_request(
        client,
        runtime,
        channel=command["channel_id"],
        user_id=approved.actor.user_id,
        response_url=response_url,
    )
    trigger = str(command.get("trigger_id") or "")
    runtime.tasks.spawn(
        _run_once(presenter, approved, delivery, trigger), on_error=delivery.unexpected
    )


async def _run_once(
    presenter: Presenter[Message], approved: Approved, delivery: SlackDelivery, trigger_id: str
) -> None:
    """Run an approved write, unless this very command (its `trigger_id`) already ran: a signed
    request replayed within Slack's 5 minutes must not change rooms twice (its request record
    holds the trigger id once, whichever replica it lands on)."""
    service = presenter.service
    dedupe = f"slash:{trigger_id}" if trigger_id else None
    if await service.submit(service.plan(approved), delivery, dedupe_key=dedupe) is None:
        log.warning("ignoring a replayed /room command (user=%s)", approved.actor.user_id)


async def _read(
    presenter: Presenter[Message],
    approved: Approved,
    response_url: str | None,
    client: AsyncWebClient,
    channel: str,
) -> None:
    answer = await presenter.read(approved)
    if answer.message.files:  # `timeline`: a summary in the channel, the file in its thread
        await deliver_timeline(client, answer.message, channel=channel, response_url=response_url)
        return
    await _deliver(answer.message, approved, response_url, client)


async def _deliver(
    message: Message, approved: Approved, response_url: str | None, client: AsyncWebClient
) -> None:
    if not await post_response_url(client, response_url, message, in_channel=False):
        log.error(
            "could not deliver `%s` result for %s", approved.command.verb, approved.actor.user_id
        )
