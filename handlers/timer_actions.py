"""A time-boxed change's buttons (`--for`, DESIGN §2.11): Revert now, Extend 30 min, Keep.

Each click is acked at once and handled in the background by the core (`bot.timers`): the
clicker must be allowed to run the change's verb (the same permission as the change itself),
and the timer must still be pending; the store op that acts on it (`take_waiting` for Revert
now, `settle_waiting` for Extend and Keep) lets exactly one of several clicks, on any replica,
and the loop act. The button value is only the timer's key, so this works after a restart and
on another replica. What happened is said in the change's thread, and the buttons are updated.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.outcomes import Actor, Rejected
from bot.service import RoomService
from bot.wording import OK_MARK
from bot.wording.timers import reverts_line
from handlers import blocks
from handlers.delivery import SLACK_FAILURES, post_response_url, slack_error
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import SlackDelivery

log = logging.getLogger(__name__)


def register(app: AsyncApp, service: RoomService, runtime: SlackRuntime) -> None:
    """Attach the timer buttons' listeners to `app`."""

    async def on_click(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        work = timer_click(service, runtime, actor_of(context), body, client)

        async def tell(correlation_id: str) -> None:
            await _tell(body, blocks.unexpected_error_text(correlation_id), client)

        runtime.tasks.spawn(work, on_error=tell)

    for action_id in blocks.TIMER_ACTIONS:
        app.action(action_id)(on_click)


async def timer_click(
    service: RoomService,
    runtime: SlackRuntime,
    actor: Actor,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    """Carry out one timer click for `actor` (see the module docstring)."""
    action = body["actions"][0]
    action_id = str(action.get("action_id") or "")
    key = str(action.get("value") or "")
    timers = service.timers
    if timers is None:
        await _tell(body, "Timers need the audit store, which is not configured.", client)
        return
    channel = actor.channel_id or ""
    container = body.get("container") or {}
    message = body.get("message") or {}
    message_ts = container.get("message_ts") or message.get("ts")
    thread_ts = container.get("thread_ts") or message.get("thread_ts") or message_ts
    who = f"<@{actor.user_id}>"
    if action_id == blocks.ACTION_REVERT_NOW:
        delivery = SlackDelivery.for_request(
            client,
            runtime,
            channel=channel,
            user_id=actor.user_id,
            response_url=body.get("response_url"),
            root_ts=thread_ts,
        )
        outcome = await service.revert_now(key, actor, delivery)
        if isinstance(outcome, Rejected):
            await _tell(body, blocks.rejected_text(outcome), client)
            return
        note = f"⏰ Reverted now by {who}"
    else:
        keep = action_id == blocks.ACTION_KEEP
        settled = await (timers.keep(key, actor) if keep else timers.extend(key, actor))
        if isinstance(settled, Rejected):
            await _tell(body, blocks.rejected_text(settled), client)
            return
        if keep:
            note = f"{OK_MARK} Kept by {who}: this change stays; it will not be reverted."
        else:
            note = f"⏰ Extended by {who}: now {reverts_line(settled.due, time.time())}."
        await _say(client, channel, thread_ts, note)
    await _spend_buttons(client, channel, message_ts, message, action_id, note)


async def _say(client: AsyncWebClient, channel: str, thread_ts: str | None, text: str) -> None:
    try:
        await client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text)
    except SLACK_FAILURES as exc:
        log.warning("could not post a timer change in the thread: %s", slack_error(exc))


async def _spend_buttons(
    client: AsyncWebClient,
    channel: str,
    message_ts: str | None,
    message: dict[str, Any],
    action_id: str,
    note: str,
) -> None:
    """The timer buttons are spent once the timer ran or was kept; Extend leaves them."""
    if not message_ts or not message:
        return
    gone = () if action_id == blocks.ACTION_EXTEND else blocks.TIMER_ACTIONS
    spent: list[dict[str, Any]] = []
    for block in message.get("blocks") or []:
        if block.get("type") == "actions":
            kept = [e for e in block.get("elements", []) if e.get("action_id") not in gone]
            if kept:
                spent.append({**block, "elements": kept})
            continue
        spent.append(block)
    spent = [*spent, blocks.context(note)][: blocks.MAX_BLOCKS]
    try:
        await client.chat_update(
            channel=channel, ts=message_ts, text=message.get("text") or "", blocks=spent
        )
    except SLACK_FAILURES as exc:
        log.warning("could not update the timer buttons: %s", slack_error(exc))


async def _tell(body: dict[str, Any], text: str, client: AsyncWebClient) -> None:
    """An ephemeral note to whoever clicked."""
    if not await post_response_url(
        client, body.get("response_url"), blocks.Message(text=text), in_channel=False
    ):
        log.warning("could not tell %s: %s", body["user"]["id"], text)
