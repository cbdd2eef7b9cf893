"""Room cards' buttons: a click is a request like any other, then the card shows the new state.

The button's value (`card_blocks.CardClick`) names a verb and a room, decoded into the closed
set of a card's toggles on one of its rooms (anything else is refused, audited as invalid, and
nothing runs). The click is acked at once;
in the background it runs `VERB ROOM` through the same presenter as a typed command, for
whoever clicked (the policy is checked now, not when the card was drawn; refusals are audited),
so a confirmation, a refusal or the threaded result come exactly as for `/room VERB ROOM`
typed in that channel. After a change the card's rooms are read again and the card redrawn:
through the click's `response_url` for a card in an ephemeral `show` answer (Slack does not
send such a message back, hence the rooms in the value), with `chat.update` for a card in a
message (the DM of the App Home's Show button).

A button whose request asks first (`lockdown`, always) puts the Confirm / Cancel prompt in the
card's place; its buttons carry the rooms (`card_blocks.CardPrompt`), so that once the request ran,
was cancelled or could no longer be confirmed, the cards are drawn again with the rooms' state
then, in the same message.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind
from bot.commands.tokens import word
from bot.models import excerpt
from bot.outcomes import Actor, Approved, Rejected
from bot.presenter import Confirm, Presenter
from bot.wording import FAIL_MARK
from handlers import actions, blocks
from handlers.blocks import Message
from handlers.card_blocks import (
    ACTION_CARD_CANCEL,
    ACTION_CARD_CONFIRM,
    ACTION_CARD_PREFIX,
    CardClick,
    CardPrompt,
    card_confirmation,
)
from handlers.delivery import SLACK_FAILURES, ThreadReporter, post_response_url, slack_error
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import SlackDelivery

log = logging.getLogger(__name__)

_CARD_ACTION = re.compile("^" + re.escape(ACTION_CARD_PREFIX))
_NOT_OURS = "This button is not one of roombot's: nothing was run."


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the room cards' button listeners to `app`."""

    def spawn(
        body: dict[str, Any], client: AsyncWebClient, work: Coroutine[Any, Any, None]
    ) -> None:
        async def tell(correlation_id: str) -> None:
            await _tell(body, Message(text=blocks.unexpected_error_text(correlation_id)), client)

        runtime.tasks.spawn(work, on_error=tell)

    @app.action(_CARD_ACTION)
    async def on_card(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        spawn(body, client, _click(presenter, runtime, actor_of(context), body, client))

    @app.action(ACTION_CARD_CONFIRM)
    @app.action(ACTION_CARD_CANCEL)
    async def on_prompt(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        confirm = body["actions"][0].get("action_id") == ACTION_CARD_CONFIRM
        work = _settle(presenter, runtime, actor_of(context), body, client, confirm=confirm)
        spawn(body, client, work)


async def _click(
    presenter: Presenter[Message],
    runtime: SlackRuntime,
    actor: Actor,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    action = body["actions"][0]
    action_id, value = str(action.get("action_id") or ""), str(action.get("value") or "")
    click = CardClick.decode(value, action_id)
    if click is None:
        await presenter.service.refuse(
            actor,
            f"{excerpt(action_id)} {excerpt(value)}",
            "a room card's button that roombot did not draw: a card's button runs only its "
            "own toggle on its own room",
        )
        await _tell(body, Message(text=f"{FAIL_MARK} {_NOT_OURS}"), client)
        return
    reply = await presenter.answer(f"{click.verb} {word(click.room)}", actor)
    if isinstance(reply, Confirm):
        prompt = card_confirmation(reply.needs, click.rooms)
        if not await _replace(body, prompt, client):
            await _tell(body, reply.message, client)  # the ordinary prompt, beside the card
        return
    if not isinstance(reply, Approved):
        # A refusal: beside the card, which stays as it is.
        await _tell(body, reply.message, client)
        return
    if reply.command.spec.kind is not VerbKind.WRITE:
        await _tell(body, Message(text=f"{FAIL_MARK} A card button only changes rooms."), client)
        return
    service = presenter.service
    delivery = SlackDelivery.for_request(
        client,
        runtime,
        channel=actor.channel_id or "",
        user_id=actor.user_id,
        response_url=body.get("response_url"),
    )
    await service.submit(service.plan(reply), delivery)
    await _redraw(presenter, actor, click.rooms, body, client)


async def _settle(
    presenter: Presenter[Message],
    runtime: SlackRuntime,
    actor: Actor,
    body: dict[str, Any],
    client: AsyncWebClient,
    *,
    confirm: bool,
) -> None:
    """Confirm or Cancel on a prompt in a card's place; then the cards again, whatever came."""
    prompt = CardPrompt.decode(str(body["actions"][0].get("value") or ""))
    if prompt is None:
        await _tell(body, Message(text=f"{FAIL_MARK} {_NOT_OURS}"), client)
        return
    service = presenter.service
    note = None
    if confirm:
        await actions.confirm_click(service, runtime, actor, body, client, prompt.key)
    else:
        cancelled = await service.cancel(prompt.key, actor)
        if isinstance(cancelled, Rejected):
            await _tell(body, Message(text=blocks.rejected_text(cancelled)), client)
        else:
            note = f"Cancelled: `/room {cancelled.verb}` was not run. Nothing changed."
    await _redraw(presenter, actor, prompt.rooms, body, client, note=note)


async def _redraw(
    presenter: Presenter[Message],
    actor: Actor,
    rooms: tuple[str, ...],
    body: dict[str, Any],
    client: AsyncWebClient,
    *,
    note: str | None = None,
) -> None:
    """Read the card's rooms again and replace the message the button was on (with `note`
    above the cards)."""
    again = await presenter.answer("show " + " ".join(word(r) for r in rooms), actor)
    if not isinstance(again, Approved):
        log.info("card not redrawn for %s: show is not approved", actor.user_id)
        return
    message = (await presenter.read(again)).message
    if note is not None:
        message = Message(
            text=f"{note}\n\n{message.text}",
            blocks=[blocks.context(note), *message.blocks][: blocks.MAX_BLOCKS],
        )
    if not await _replace(body, message, client):
        log.warning("could not redraw the card for %s", actor.user_id)


async def _replace(body: dict[str, Any], message: Message, client: AsyncWebClient) -> bool:
    """Replace the message the button was on; True if Slack took it. An ephemeral one (a
    `show` answer) through the click's `response_url`, one in a conversation (the App Home's
    DM) with `chat.update`."""
    container = body.get("container") or {}
    if container.get("is_ephemeral") or "message" not in body:
        return await post_response_url(
            client, body.get("response_url"), message, in_channel=False, replace_original=True
        )
    try:
        await client.chat_update(
            channel=(body.get("channel") or {}).get("id") or "",
            ts=container.get("message_ts") or body["message"].get("ts"),
            text=message.text,
            blocks=message.blocks,
        )
    except SLACK_FAILURES as exc:
        log.warning("could not replace the card: %s", slack_error(exc))
        return False
    return True


async def _tell(body: dict[str, Any], message: Message, client: AsyncWebClient) -> None:
    """A note to whoever clicked, beside the card (never replacing it): the click's
    response_url, else an ephemeral message where the card is."""
    user = (body.get("user") or {}).get("id") or ""
    reporter = ThreadReporter(
        client=client,
        channel=(body.get("channel") or {}).get("id") or user,
        user_id=user,
        response_url=body.get("response_url"),
    )
    if not await reporter.tell(message):
        log.warning("could not tell %s about a card click", user)
