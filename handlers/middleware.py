"""bolt middleware: who is asking (`Actor`), built once per request from Slack's envelope.

Every listener reads `context["actor"]` (through `actor_of`) instead of picking IDs out of the
payload itself, so the user, team and channel a decision is made about come from one place, and
only from the envelope Slack signed, never from command text.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.context.async_context import AsyncBoltContext

from bot.outcomes import Actor, Source
from handlers.form import form_channel
from handlers.runtime import ADMISSION_KEY, Admission

_ACTOR_KEY = "roombot_actor"
_RECEIVED_KEY = "roombot_received_at"


def actor_from_body(body: Mapping[str, Any]) -> Actor | None:
    """The `Actor` of a slash command, an `app_mention` or `app_home_opened` event, a form
    submission or an interaction; None for any other request (and for one without a user).

    The channel of a form (the `/room` modal) and of the clicks inside it is the one `/room`
    was typed in, which the form carries in its `private_metadata`; a click on the App Home tab
    has no channel.
    """
    if "command" in body and body.get("user_id"):
        return Actor(
            user_id=str(body["user_id"]),
            source=Source.SLASH,
            team_id=body.get("team_id"),
            channel_id=body.get("channel_id"),
        )
    if body.get("type") == "event_callback":
        return _event_actor(body)
    user = body.get("user") or {}
    if not user.get("id"):
        return None
    team_id = (body.get("team") or {}).get("id")
    view = body.get("view") or {}
    if body.get("type") == "view_submission" or (
        body.get("type") == "block_actions" and view.get("type") == "modal"
    ):
        return Actor(
            user_id=str(user["id"]),
            source=Source.MODAL,
            team_id=team_id,
            channel_id=form_channel(view),
        )
    if body.get("type") == "block_actions":
        return Actor(
            user_id=str(user["id"]),
            source=Source.BUTTON,
            team_id=team_id,
            channel_id=(body.get("channel") or {}).get("id"),
        )
    return None


def _event_actor(body: Mapping[str, Any]) -> Actor | None:
    event = body.get("event") or {}
    if not event.get("user"):
        return None
    if event.get("type") == "app_mention":
        return Actor(
            user_id=str(event["user"]),
            source=Source.MENTION,
            team_id=body.get("team_id"),
            channel_id=event.get("channel"),
        )
    if event.get("type") == "app_home_opened":
        # The event names the user's DM with the app; the Home tab itself is in no channel.
        return Actor(user_id=str(event["user"]), source=Source.HOME, team_id=body.get("team_id"))
    return None


async def attach_actor(
    body: dict[str, Any], context: AsyncBoltContext, next: Callable[[], Awaitable[Any]]
) -> Any:
    """bolt middleware: put the request's `Actor` (and when it arrived) into the context before
    any listener runs."""
    context[_RECEIVED_KEY] = time.monotonic()
    actor = actor_from_body(body)
    if actor is not None:
        context[_ACTOR_KEY] = actor
    return await next()


def acknowledged(context: AsyncBoltContext) -> None:
    """The listener's ack is out: background work need not wait for this request any more
    (`handlers.runtime.AckGate`; bolt itself notices the ack up to 10 ms later)."""
    admission = context.get(ADMISSION_KEY)
    if isinstance(admission, Admission):
        admission.done()


def received_at(context: AsyncBoltContext) -> float:
    """When this request reached roombot (`time.monotonic()`), for the ack deadline."""
    value = context.get(_RECEIVED_KEY)
    return float(value) if isinstance(value, int | float) else time.monotonic()


def actor_of(context: AsyncBoltContext) -> Actor:
    """The `Actor` `attach_actor` found for this request (listeners only run for requests that
    have one)."""
    actor = context.get(_ACTOR_KEY)
    if not isinstance(actor, Actor):
        raise LookupError("no actor for this request: is attach_actor installed?")
    return actor
