"""Room cards' buttons: a click is a request like any other, then the card shows the new state.

The button's value (`blocks.CardClick`) names a verb and a room. The click is acked at once;
in the background it runs `VERB ROOM` through the same presenter as a typed command, for
whoever clicked (the policy is checked now, not when the card was drawn; refusals are audited),
so a confirmation, a refusal or the threaded result come exactly as for `/room VERB ROOM`
typed in that channel. After a change the card's rooms are read again and the card redrawn:
through the click's `response_url` for a card in an ephemeral `show` answer (Slack does not
send such a message back, hence the rooms in the value), with `chat.update` for a card in a
message (the DM of the App Home's Show button).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind
from bot.commands.tokens import word
from bot.outcomes import Actor, Approved
from bot.presenter import Presenter
from bot.wording import FAIL_MARK
from handlers import blocks
from handlers.blocks import ACTION_CARD_PREFIX, CardClick, Message
from handlers.delivery import SLACK_FAILURES, ThreadReporter, post_response_url, slack_error
from handlers.flow import run_plan
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)

_CARD_ACTION = re.compile("^" + re.escape(ACTION_CARD_PREFIX))


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the room cards' button listener to `app`."""

    @app.action(_CARD_ACTION)
    async def on_card(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()

        async def tell(correlation_id: str) -> None:
            await _tell(body, Message(text=blocks.unexpected_error_text(correlation_id)), client)

        work = _click(presenter, runtime, actor_of(context), body, client)
        runtime.tasks.spawn(work, on_error=tell)


async def _click(
    presenter: Presenter[Message],
    runtime: SlackRuntime,
    actor: Actor,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    click = CardClick.decode(str(body["actions"][0].get("value") or ""))
    if click is None:
        await _tell(body, Message(text=f"{FAIL_MARK} This button is not one of roombot's."), client)
        return
    reply = await presenter.answer(f"{click.verb} {word(click.room)}", actor)
    if not isinstance(reply, Approved):
        # A refusal or a confirmation prompt: beside the card, which stays as it is.
        await _tell(body, reply.message, client)
        return
    if reply.command.spec.kind is not VerbKind.WRITE:
        await _tell(body, Message(text=f"{FAIL_MARK} A card button only changes rooms."), client)
        return
    service = presenter.service
    reporter = ThreadReporter(
        client=client,
        channel=actor.channel_id or "",
        user_id=actor.user_id,
        response_url=body.get("response_url"),
        budget=runtime.update_budget,
    )
    await run_plan(service, service.plan(reply), reporter, runtime.gate)
    await _redraw(presenter, actor, click, body, client)


async def _redraw(
    presenter: Presenter[Message],
    actor: Actor,
    click: CardClick,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    """Read the card's rooms again and replace the message the button was on."""
    again = await presenter.answer("show " + " ".join(word(r) for r in click.rooms), actor)
    if not isinstance(again, Approved):
        log.info("card not redrawn for %s: show is not approved", actor.user_id)
        return
    message = (await presenter.read(again)).message
    container = body.get("container") or {}
    if container.get("is_ephemeral") or "message" not in body:
        replaced = await post_response_url(
            client, body.get("response_url"), message, in_channel=False, replace_original=True
        )
        if not replaced:
            log.warning("could not redraw the card for %s", actor.user_id)
        return
    try:
        await client.chat_update(
            channel=(body.get("channel") or {}).get("id") or actor.channel_id or "",
            ts=container.get("message_ts") or body["message"].get("ts"),
            text=message.text,
            blocks=message.blocks,
        )
    except SLACK_FAILURES as exc:
        log.warning("could not redraw the card: %s", slack_error(exc))


async def _tell(body: dict[str, Any], message: Message, client: AsyncWebClient) -> None:
    """A note to whoever clicked, beside the card (never replacing it)."""
    if await post_response_url(client, body.get("response_url"), message, in_channel=False):
        return
    user = (body.get("user") or {}).get("id") or ""
    channel = (body.get("channel") or {}).get("id")
    try:
        if channel:
            await client.chat_postEphemeral(
                channel=channel, user=user, text=message.text, blocks=message.blocks or None
            )
        else:
            await client.chat_postMessage(
                channel=user, text=message.text, blocks=message.blocks or None
            )
    except SLACK_FAILURES as exc:
        log.warning("could not tell %s: %s", user, slack_error(exc))
