"""Getting a request's outcome in front of the requester, whatever Slack says.

`ThreadReporter` posts the parent message, keeps its status line up to date (throttled below
chat.update's Tier 3 limit), and posts the outcome in the parent's thread. When the bot cannot post
in the channel (a private channel it is not in, a DM) it falls back to the slash command's
`response_url` (visible in the channel) and tells the requester how to get threads. If every way
fails, the outcome is logged in full, so nothing is ever silently lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics
from bot.outcomes import RunResult
from handlers import blocks
from handlers.blocks import Message
from handlers.update_budget import UpdateBudget

log = logging.getLogger(__name__)

#: Errors meaning "the bot cannot post in this channel"; the response_url still works there.
CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived", "access_denied"})

#: Seconds between two progress edits of one parent message.
PROGRESS_INTERVAL_S = 3.0


def slack_error(exc: SlackApiError) -> str:
    """The `error` field of a failed Web API call."""
    data = getattr(exc.response, "data", None)
    if isinstance(data, dict):
        return str(data.get("error", "unknown_error"))
    return "unknown_error"


async def post_response_url(
    url: str | None,
    message: Message,
    *,
    in_channel: bool,
    thread_ts: str | None = None,
    replace_original: bool = False,
    session: aiohttp.ClientSession | None = None,
) -> bool:
    """POST a message to a `response_url`; True if Slack took it.

    `replace_original` replaces the message an interaction came from (e.g. a spent prompt).
    `session` is reused when given (the bot's shared one); otherwise a short-lived one is made.
    bolt's `respond()` swallows HTTP errors, so this checks the status itself.
    """
    if not url:
        return False
    payload: dict[str, Any] = {"text": message.text, "replace_original": replace_original}
    if not replace_original:
        payload["response_type"] = "in_channel" if in_channel else "ephemeral"
    if message.blocks:
        payload["blocks"] = message.blocks
    if thread_ts:
        payload["thread_ts"] = thread_ts
    try:
        if session is not None and not session.closed:
            return await _post_json(session, url, payload)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as own:
            return await _post_json(own, url, payload)
    except (aiohttp.ClientError, TimeoutError) as exc:
        log.warning("response_url failed: %s", type(exc).__name__)
        metrics.count_slack_error("response_url", "transport")
    return False


async def _post_json(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> bool:
    async with session.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=10)) as response:
        if response.status == 200:
            return True
        log.warning("response_url answered HTTP %s", response.status)
        metrics.count_slack_error("response_url", "http_error")
        return False


@dataclass
class ThreadReporter:
    """Where one request's messages go: a parent in `channel` (optionally itself in a thread)."""

    client: AsyncWebClient
    channel: str
    user_id: str
    response_url: str | None = None
    #: For mentions: the thread the mention was in; the parent becomes a reply there.
    root_ts: str | None = None
    budget: UpdateBudget | None = None
    #: Awaited before each Web API call: lets requests waiting for their ack go first.
    pause: Callable[[], Awaitable[None]] | None = None
    parent_ts: str | None = None
    fallback: bool = False
    _last_progress: float = field(default=0.0, repr=False)
    _parent: Message | None = field(default=None, repr=False)

    async def _pause(self) -> None:
        if self.pause is not None:
            await self.pause()

    @property
    def thread_ts(self) -> str | None:
        """The thread the outcome goes into."""
        return self.root_ts or self.parent_ts

    async def start(self, parent: Message) -> None:
        """Post the parent message; on 'cannot post here' switch to the response_url fallback."""
        self._parent = parent
        try:
            await self._pause()
            reply = await self.client.chat_postMessage(
                channel=self.channel,
                text=parent.text,
                blocks=parent.blocks or None,
                thread_ts=self.root_ts,
                unfurl_links=False,
                unfurl_media=False,
            )
            self.parent_ts = str(reply["ts"])
        except SlackApiError as exc:
            error = slack_error(exc)
            if error in CANNOT_POST and self.response_url:
                log.info("cannot post in %s (%s): using response_url", self.channel, error)
            else:
                log.warning("parent message failed in %s: %s", self.channel, error)
            self.fallback = True
        self._last_progress = time.monotonic()

    async def progress(self, parent: Callable[[], Message]) -> None:
        """Edit the parent's status line, at most every few seconds and within the budget.

        `parent` builds the edited message; it is only called when an edit is actually made.
        """
        if self.fallback or self.parent_ts is None:
            return
        now = time.monotonic()
        if now - self._last_progress < PROGRESS_INTERVAL_S:
            return
        if self.budget is not None and not self.budget.try_take():
            return
        self._last_progress = now
        await self._update(parent())

    async def finish(self, run: RunResult, parent: Message, results: list[Message]) -> None:
        """Deliver the outcome: in the thread and the parent's final status, or by fallback."""
        if not self.fallback:
            try:
                for message in results:
                    await self._pause()
                    await self.client.chat_postMessage(
                        channel=self.channel,
                        text=message.text,
                        blocks=message.blocks or None,
                        thread_ts=self.thread_ts,
                        unfurl_links=False,
                        unfurl_media=False,
                    )
            except SlackApiError as exc:
                log.warning("thread reply failed in %s: %s", self.channel, slack_error(exc))
                self.fallback = True
            else:
                await self._update(parent)
                return
        await self._deliver_by_fallback(run, parent, results)

    async def _update(self, parent: Message) -> None:
        if self.parent_ts is None:
            return
        try:
            await self._pause()
            await self.client.chat_update(
                channel=self.channel, ts=self.parent_ts, text=parent.text, blocks=parent.blocks
            )
        except SlackApiError as exc:
            # The outcome itself is already in the thread; a stale status line is not worth failing.
            log.warning("parent update failed in %s: %s", self.channel, slack_error(exc))

    async def _deliver_by_fallback(
        self, run: RunResult, parent: Message, results: list[Message]
    ) -> None:
        combined = Message(
            text=parent.text + "\n" + "\n".join(m.text for m in results),
            blocks=(parent.blocks + [b for m in results for b in m.blocks])[: blocks.MAX_BLOCKS],
        )
        session = self.client.session
        delivered = await post_response_url(
            self.response_url, combined, in_channel=True, session=session
        )
        if delivered:
            await post_response_url(
                self.response_url,
                Message(text=blocks.not_in_channel_hint()),
                in_channel=False,
                session=session,
            )
            return
        # Last resort: the log keeps every room's outcome and RequestId.
        log.error(
            "could not deliver outcome to %s for %s: %s",
            self.channel,
            self.user_id,
            "; ".join(
                f"{r.room_id}={'ok' if r.ok else 'failed'} request_id={r.request_id}"
                for r in run.results
            ),
        )
