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

_ACTOR_KEY = "roombot_actor"
_RECEIVED_KEY = "roombot_received_at"


def actor_from_body(body: Mapping[str, Any]) -> Actor | None:
    """The `Actor` of a slash command, an `app_mention` event or an interaction; None for any
    other request (and for one without a user)."""
    if "command" in body and body.get("user_id"):
        return Actor(
            user_id=str(body["user_id"]),
            source=Source.SLASH,
            team_id=body.get("team_id"),
            channel_id=body.get("channel_id"),
        )
    if body.get("type") == "event_callback":
        event = body.get("event") or {}
        if event.get("type") == "app_mention" and event.get("user"):
            return Actor(
                user_id=str(event["user"]),
                source=Source.MENTION,
                team_id=body.get("team_id"),
                channel_id=event.get("channel"),
            )
        return None
    user = body.get("user") or {}
    if body.get("type") == "block_actions" and user.get("id"):
        return Actor(
            user_id=str(user["id"]),
            source=Source.BUTTON,
            team_id=(body.get("team") or {}).get("id"),
            channel_id=(body.get("channel") or {}).get("id"),
        )
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
