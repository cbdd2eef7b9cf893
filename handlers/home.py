"""The App Home tab: published for a user each time they open it, and its Show buttons.

`app_home_opened` (Home tab only) → `views.publish` of `home_view.home_view`: the requests
awaiting the user's approval (with Approve / Deny), what the user may run, their last requests
with outcome and time, the rooms they touched lately with a Show button. A user who may run
nothing is told how to get access.

Show answers in the user's DM with roombot (the app's Messages tab, next to Home): the Home tab
has no channel and no `response_url`, and a card there stays where the user expects to find it
again, its toggle buttons work like any card's (results threaded under it in the DM), and no
scope beyond `chat:write` is needed. A modal would vanish on the first click of a toggle.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.outcomes import Actor
from bot.presenter import Presenter
from bot.service import RoomService
from handlers import blocks
from handlers.blocks import Message
from handlers.delivery import SLACK_FAILURES, slack_error
from handlers.home_view import ACTION_HOME_SHOW, home_view
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)


async def publish_home(service: RoomService, client: AsyncWebClient, user_id: str) -> None:
    """Publish `user_id`'s Home tab as it is now."""
    access = await service.access(user_id)
    activity = await service.activity(user_id)
    approvals = service.approvals
    awaiting = await approvals.awaiting_for(user_id) if approvals is not None else []
    await client.views_publish(user_id=user_id, view=home_view(access, activity, awaiting))


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the App Home listeners to `app`."""
    service = presenter.service

    @app.event("app_home_opened")
    async def on_home_opened(
        event: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages tab: nothing to publish
        runtime.tasks.spawn(_publish(service, client, actor_of(context)))

    @app.action(ACTION_HOME_SHOW)
    async def on_show(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        actor = actor_of(context)
        room = str(body["actions"][0].get("value") or "")

        async def tell(correlation_id: str) -> None:
            await _dm(client, actor, Message(text=blocks.unexpected_error_text(correlation_id)))

        runtime.tasks.spawn(_show(presenter, client, actor, room), on_error=tell)


async def _publish(service: RoomService, client: AsyncWebClient, actor: Actor) -> None:
    try:
        await publish_home(service, client, actor.user_id)
    except SLACK_FAILURES as exc:
        log.warning("could not publish the Home tab for %s: %s", actor.user_id, slack_error(exc))


async def _show(
    presenter: Presenter[Message], client: AsyncWebClient, actor: Actor, room: str
) -> None:
    """`show ROOM` for the Home tab's user, answered (room card or refusal) in their DM."""
    await _dm(client, actor, (await presenter.show_rooms([room], actor)).message)


async def _dm(client: AsyncWebClient, actor: Actor, message: Message) -> None:
    try:
        await client.chat_postMessage(
            channel=actor.user_id,
            text=message.text,
            blocks=message.blocks or None,
            unfurl_links=False,
            unfurl_media=False,
        )
    except SLACK_FAILURES as exc:
        log.warning("could not DM %s: %s", actor.user_id, slack_error(exc))
