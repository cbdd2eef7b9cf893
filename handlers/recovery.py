"""Telling Slack what became of a request whose replica stopped mid-way.

Two halves:

* `lease_context(reporter, plan)`: what the Slack adapter stores with a request's lease, so that
  whichever replica finds it stranded can report in its original place. Its shape (JSON, opaque
  to the core; `v` is its version):

      {"v": 1, "adapter": "slack", "kind": "request" | "undo" | "retry",
       "channel": "C…", "user": "U…",
       "parent_ts": "1700000000.000100" | null,  # the request's parent message, once posted
       "thread_ts": "1700000000.000100" | null,  # where its outcome goes (a mention's thread)
       "response_url": "https://hooks.slack.com/…" | null,
       "fallback": false,                         # true: the channel refused the parent
       "head": "<@U…> ran `/room mute-all` on 3 rooms: …"}  # the parent without its status

* `SlackRecovery.deliver(report)`: posts a `TakeoverReport` in the request's thread (every
  room's verdict, and Retry for what is not done), then rewrites the parent's status line. When
  the channel refuses (or there never was a thread), it falls back as the rest of delivery
  does: the response_url (visible in the channel), then an ephemeral message to the requester.
  If every way fails it raises `TakeoverUndelivered`, and the `Sweeper` tries again later.
  A request without any Slack context (the console's, or rows written without a lease) is
  posted in the rows' channel if they name one, else only logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from slack_sdk.web.async_client import AsyncWebClient

from bot import wording
from bot.errors import RoombotError
from bot.outcomes import Plan
from bot.takeover import TakeoverReport
from handlers import blocks
from handlers.blocks import Message
from handlers.delivery import SLACK_FAILURES, ThreadReporter, post_response_url, slack_error

log = logging.getLogger(__name__)

#: The version of `lease_context`'s shape.
CONTEXT_VERSION: Final = 1


class TakeoverUndelivered(RoombotError):
    """No way to post a takeover report worked (thread, response_url, ephemeral)."""


def lease_context(reporter: ThreadReporter, plan: Plan) -> dict[str, Any]:
    """What a survivor needs to report `plan` where `reporter` delivers it (see the module)."""
    return {
        "v": CONTEXT_VERSION,
        "adapter": "slack",
        "kind": plan.kind.value,
        "channel": reporter.channel,
        "user": reporter.user_id,
        "parent_ts": reporter.parent_ts,
        "thread_ts": reporter.thread_ts,
        "response_url": reporter.response_url,
        "fallback": reporter.fallback,
        "head": blocks.parent_head(plan.command, plan.actor, plan.kind),
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class SlackRecovery:
    """Delivers takeover reports through `client`.

    `restarted` words them for one process that restarted (SQLite) rather than a survivor
    replica (PostgreSQL). `pause`, if given, is awaited before each Web API call (requests
    waiting for their ack go first).
    """

    client: AsyncWebClient
    restarted: bool = False
    pause: Callable[[], Awaitable[None]] | None = None

    async def deliver(self, report: TakeoverReport) -> None:
        """Post `report` where its request was reported (see the module). Raises
        `TakeoverUndelivered` when no way worked."""
        context = report.context
        channel = _text(context.get("channel"))
        user = _text(context.get("user")) or report.user_id
        if context.get("adapter") is None:
            # No Slack context (rows written without a lease): their channel is all there is.
            channel = channel or report.channel_id
        if channel is None:
            log.warning(
                "takeover of %s: nowhere in Slack to report it (no channel); the audit trail "
                "has the verdicts: %s",
                report.request_key,
                _one_line(report),
            )
            return
        thread_ts = _text(context.get("thread_ts"))
        parent_ts = _text(context.get("parent_ts"))
        head = _text(context.get("head")) or _head_from_rows(report)
        if not context.get("fallback"):
            # Outside the request's thread the report must say which request it is about.
            messages = blocks.takeover_messages(
                report, restarted=self.restarted, head=None if thread_ts else head
            )
            if await self._post(channel, thread_ts, messages):
                if parent_ts is not None and head is not None:
                    await self._update_parent(channel, parent_ts, head, report)
                return
        standalone = blocks.takeover_messages(report, restarted=self.restarted, head=head)
        text = "\n".join(m.text for m in standalone)
        if len(text) > blocks.MAX_TEXT_CHARS:
            text = text[: blocks.MAX_TEXT_CHARS - 1] + "…"
        combined = Message(
            text=text,
            blocks=[b for m in standalone for b in m.blocks][: blocks.MAX_BLOCKS],
        )
        if await self._response_url(_text(context.get("response_url")), combined):
            return
        if user is not None and await self._ephemeral(channel, user, thread_ts, combined):
            return
        raise TakeoverUndelivered(
            f"could not post the takeover report of {report.request_key} in {channel}"
        )

    # -- the ways to post ----------------------------------------------------------------------

    async def _pause(self) -> None:
        if self.pause is not None:
            await self.pause()

    async def _post(self, channel: str, thread_ts: str | None, messages: list[Message]) -> bool:
        try:
            for message in messages:
                await self._pause()
                await self.client.chat_postMessage(
                    channel=channel,
                    text=message.text,
                    blocks=message.blocks or None,
                    thread_ts=thread_ts,
                    unfurl_links=False,
                    unfurl_media=False,
                )
        except SLACK_FAILURES as exc:
            log.warning("takeover report: posting in %s failed: %s", channel, slack_error(exc))
            return False
        return True

    async def _update_parent(
        self, channel: str, parent_ts: str, head: str, report: TakeoverReport
    ) -> None:
        parent = blocks.parent_with_status(head, wording.takeover_status(report))
        try:
            await self._pause()
            await self.client.chat_update(
                channel=channel, ts=parent_ts, text=parent.text, blocks=parent.blocks
            )
        except SLACK_FAILURES as exc:
            # The report itself is in the thread; a stale status line is not worth failing.
            log.warning(
                "takeover report: updating the parent in %s failed: %s", channel, slack_error(exc)
            )

    async def _response_url(self, url: str | None, message: Message) -> bool:
        if url is None:
            return False
        return await post_response_url(self.client, url, message, in_channel=True)

    async def _ephemeral(
        self, channel: str, user: str, thread_ts: str | None, message: Message
    ) -> bool:
        try:
            await self._pause()
            await self.client.chat_postEphemeral(
                channel=channel,
                user=user,
                text=message.text,
                blocks=message.blocks or None,
                thread_ts=thread_ts,
            )
        except SLACK_FAILURES as exc:
            log.warning("takeover report: telling %s privately failed: %s", user, slack_error(exc))
            return False
        return True


def _head_from_rows(report: TakeoverReport) -> str | None:
    if report.raw_text is None:
        return None
    who = blocks.user(report.user_id) if report.user_id else "someone"
    return f"{who} ran {blocks.code('/room ' + report.raw_text)}"


def _one_line(report: TakeoverReport) -> str:
    return json.dumps(
        [
            {
                "room": v.room_id,
                "outcome": v.outcome.value,
                "request_id": v.request_id,
            }
            for v in report.verdicts
        ]
    )
