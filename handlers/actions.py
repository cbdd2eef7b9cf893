"""Button clicks: Confirm / Cancel a high-impact request, Undo a change, Retry failed rooms.

Every click is acked at once; the work runs in the background. The state a click needs lives in
the audit store (the button value only carries a key), so any instance can handle it, and the
service re-checks the policy for whoever clicked.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot import wording
from bot.outcomes import Actor, Rejected
from bot.service import RoomService
from handlers import blocks
from handlers.delivery import SLACK_FAILURES, post_response_url, slack_error
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import SlackDelivery

log = logging.getLogger(__name__)


def _value(body: dict[str, Any]) -> str:
    return str(body["actions"][0].get("value") or "")


async def _replace(body: dict[str, Any], text: str, client: AsyncWebClient) -> None:
    """Replace the (ephemeral) prompt the button was on, through the click's response_url."""
    replaced = await post_response_url(
        client,
        body.get("response_url"),
        blocks.Message(text=text),
        in_channel=False,
        replace_original=True,
    )
    if not replaced:
        log.warning("could not replace the prompt for %s", body["user"]["id"])


async def _tell(body: dict[str, Any], text: str, client: AsyncWebClient) -> None:
    """An ephemeral note to whoever clicked."""
    if not await post_response_url(
        client, body.get("response_url"), blocks.Message(text=text), in_channel=False
    ):
        log.warning("could not tell %s: %s", body["user"]["id"], text)


def register(app: AsyncApp, service: RoomService, runtime: SlackRuntime) -> None:
    """Attach the button listeners to `app`."""

    def spawn(
        body: dict[str, Any], client: AsyncWebClient, work: Coroutine[Any, Any, None]
    ) -> None:
        async def tell(correlation_id: str) -> None:
            await _tell(body, blocks.unexpected_error_text(correlation_id), client)

        runtime.tasks.spawn(work, on_error=tell)

    @app.action(blocks.ACTION_CONFIRM)
    async def on_confirm(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        work = confirm_click(service, runtime, actor_of(context), body, client, _value(body))
        spawn(body, client, work)

    @app.action(blocks.ACTION_CANCEL)
    async def on_cancel(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        spawn(body, client, _cancel(service, actor_of(context), body, client))

    @app.action(blocks.ACTION_UNDO)
    async def on_undo(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        work = _undo_or_retry(service, runtime, actor_of(context), body, client, undo=True)
        spawn(body, client, work)

    @app.action(blocks.ACTION_RETRY)
    async def on_retry(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        work = _undo_or_retry(service, runtime, actor_of(context), body, client, undo=False)
        spawn(body, client, work)


async def confirm_click(
    service: RoomService,
    runtime: SlackRuntime,
    actor: Actor,
    body: dict[str, Any],
    client: AsyncWebClient,
    key: str,
) -> None:
    """Confirm the request `key` for `actor` (policy re-checked now) and run it, reporting in
    a thread; the prompt is replaced meanwhile. If refused, the clicker is told why."""
    outcome = await service.confirm(key, actor)
    if isinstance(outcome, Rejected):
        await _tell(body, blocks.rejected_text(outcome), client)
        return
    running = f"{wording.OK_MARK} Confirmed — running `/room {outcome.command.verb}`."
    if outcome.approval is not None:
        running = (
            f"{wording.OK_MARK} Confirmed — `/room {outcome.command.verb}` now awaits a second "
            "person's approval (posted in this channel)."
        )
    await _replace(body, running, client)
    delivery = SlackDelivery.for_request(
        client,
        runtime,
        channel=outcome.actor.channel_id or actor.channel_id or "",
        user_id=actor.user_id,
        response_url=body.get("response_url"),
    )
    await service.submit(service.plan(outcome), delivery)


async def _cancel(
    service: RoomService, actor: Actor, body: dict[str, Any], client: AsyncWebClient
) -> None:
    outcome = await service.cancel(_value(body), actor)
    if isinstance(outcome, Rejected):
        await _tell(body, blocks.rejected_text(outcome), client)
        return
    await _replace(body, f"Cancelled: `/room {outcome.verb}` was not run. Nothing changed.", client)


async def _undo_or_retry(
    service: RoomService,
    runtime: SlackRuntime,
    actor: Actor,
    body: dict[str, Any],
    client: AsyncWebClient,
    *,
    undo: bool,
) -> None:
    key = _value(body)
    plan = await (service.plan_undo(key, actor) if undo else service.plan_retry(key, actor))
    if isinstance(plan, Rejected):
        await _tell(body, blocks.rejected_text(plan), client)
        return
    channel = actor.channel_id or ""
    container = body.get("container") or {}
    message = body.get("message") or {}
    message_ts = container.get("message_ts") or message.get("ts")
    thread_ts = container.get("thread_ts") or message.get("thread_ts") or message_ts
    if message_ts and message:
        # The button is spent (the audit claim already makes a second click a no-op): show it.
        action_id = blocks.ACTION_UNDO if undo else blocks.ACTION_RETRY
        used = "↩️ Undo" if undo else "🔁 Retry"
        spent = blocks.used_button_blocks(
            list(message.get("blocks") or []), action_id, f"{used} used by <@{actor.user_id}>"
        )
        try:
            await client.chat_update(
                channel=channel, ts=message_ts, text=message.get("text") or "", blocks=spent
            )
        except SLACK_FAILURES as exc:
            log.warning("could not disable the used button: %s", slack_error(exc))
    delivery = SlackDelivery.for_request(
        client,
        runtime,
        channel=channel,
        user_id=actor.user_id,
        response_url=body.get("response_url"),
        root_ts=thread_ts,
    )
    if await service.submit(plan, delivery) is None:
        done = "undone" if undo else "retried"
        await _tell(body, f"This request was already {done}; nothing was done again.", client)
