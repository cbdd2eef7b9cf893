"""Getting a request's outcome in front of the requester, whatever Slack says.

`ThreadReporter` posts the parent message, keeps its status line up to date (throttled below
chat.update's Tier 3 limit), and posts the outcome in the parent's thread. Every Slack failure
counts, not only Slack's error answers: a timeout, a refused connection or a rate limit longer
than roombot will wait (`SlackRetries`) too. When the thread cannot be used the outcome goes by
the slash command's `response_url` (visible in the channel), else privately to the requester
(`chat.postEphemeral`); a parent whose final status could not be written is retried, and the
requester is told if it stays stale. Each request's outcome is also logged by the core (one
structured line with every RequestId), so it is never only in Slack.

A `response_url` is only ever posted to when it is Slack's own (`https://hooks.slack.com/…`) or
on the host of `SLACK_API_URL` (the tests' fake Slack), and redirects are not followed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlsplit

import aiohttp
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from bot.outcomes import RunResult
from bot.wording import WARN_MARK
from handlers import blocks
from handlers.blocks import Message
from handlers.update_budget import UpdateBudget

log = logging.getLogger(__name__)

#: Errors meaning "the bot cannot post in this channel"; the response_url still works there.
CANNOT_POST = frozenset({"not_in_channel", "channel_not_found", "is_archived", "access_denied"})

#: Seconds between two progress edits of one parent message.
PROGRESS_INTERVAL_S = 3.0

#: Pauses before the retries of a parent's final status edit (it is the line people look at).
FINAL_UPDATE_PAUSES_S: Final = (0.5, 2.0)

#: Slack's own host for response URLs.
SLACK_HOOKS_HOST: Final = "hooks.slack.com"

#: Every way a Web API call can fail: Slack's error answer, or no usable answer at all.
SLACK_FAILURES: Final = (
    SlackApiError,
    SlackRequestError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
)


def slack_error(exc: BaseException) -> str:
    """What went wrong with a Web API call, in one short word: Slack's `error` field, or the kind
    of failure when Slack gave no answer."""
    if isinstance(exc, SlackApiError):
        data = getattr(exc.response, "data", None)
        if isinstance(data, dict):
            return str(data.get("error", "unknown_error"))
        return "unknown_error"
    if isinstance(exc, TimeoutError):
        return "timeout"
    return type(exc).__name__


def response_url_allowed(url: str, api_url: str) -> bool:
    """True when `url` is a response URL roombot may post to: `https://hooks.slack.com/…`, or on
    the scheme and host of `api_url` (SLACK_API_URL, which tests point at a fake)."""
    try:
        parts = urlsplit(url)
        api = urlsplit(api_url)
        host, port = parts.hostname, parts.port
    except ValueError:  # a malformed URL: a bad port, brackets, …
        return False
    if not host or not parts.scheme or len(url) > 2000:
        return False
    if parts.scheme == "https" and host == SLACK_HOOKS_HOST and port in (None, 443):
        return True
    return (parts.scheme, host, port) == (api.scheme, api.hostname, api.port)


async def post_response_url(
    client: AsyncWebClient,
    url: str | None,
    message: Message,
    *,
    in_channel: bool,
    thread_ts: str | None = None,
    replace_original: bool = False,
) -> bool:
    """POST a message to a `response_url`; True if Slack took it.

    Only a URL `response_url_allowed` accepts is used, without following redirects. The Web API
    client's shared session is reused. `replace_original` replaces the message an interaction
    came from (e.g. a spent prompt). bolt's `respond()` swallows HTTP errors, so this checks the
    status itself.
    """
    if not url:
        return False
    if not response_url_allowed(url, client.base_url):
        log.warning("refused to post to a response_url that is not Slack's (%.60s)", url)
        return False
    payload: dict[str, Any] = {"text": message.text, "replace_original": replace_original}
    if not replace_original:
        payload["response_type"] = "in_channel" if in_channel else "ephemeral"
    if message.blocks:
        payload["blocks"] = message.blocks
    if thread_ts:
        payload["thread_ts"] = thread_ts
    try:
        session = client.session
        if session is not None and not session.closed:
            return await _post_json(session, url, payload)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as own:
            return await _post_json(own, url, payload)
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        log.warning("response_url failed: %s", type(exc).__name__)
    return False


async def _post_json(session: aiohttp.ClientSession, url: str, payload: dict[str, Any]) -> bool:
    async with session.post(
        url, json=payload, timeout=aiohttp.ClientTimeout(total=10), allow_redirects=False
    ) as response:
        if response.status == 200:
            return True
        log.warning("response_url answered HTTP %s", response.status)
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
    #: Awaited between retries of the final status edit (tests pass a fake).
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    parent_ts: str | None = None
    fallback: bool = False
    #: Why the thread is not used (a Slack error code), when it is not.
    fallback_reason: str | None = None
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
        """Post the parent message; if Slack refuses or fails, switch to the fallback."""
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
        except SLACK_FAILURES as exc:
            error = slack_error(exc)
            if error in CANNOT_POST and self.response_url:
                log.info("cannot post in %s (%s): using response_url", self.channel, error)
            else:
                log.warning("parent message failed in %s: %s", self.channel, error)
            self.fallback = True
            self.fallback_reason = error
        self._last_progress = time.monotonic()

    async def progress(self, parent: Callable[[], Message]) -> None:
        """Edit the parent's status line, at most every few seconds and within the budget.

        `parent` builds the edited message; it is only called when an edit is actually made.
        A failed progress edit is skipped: the next one, or the final status, will do.
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
        """Deliver the outcome: in the thread and the parent's final status, or by fallback.

        Never raises for a Slack failure: every way that fails leads to the next one.
        """
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
            except SLACK_FAILURES as exc:
                error = slack_error(exc)
                log.warning("thread reply failed in %s: %s", self.channel, error)
                self.fallback = True
                self.fallback_reason = error
            else:
                if not await self._final_update(parent):
                    await self.tell(
                        Message(
                            text=f"{WARN_MARK} The result is in the thread, but the "
                            "message above it could not be updated and may still say "
                            "“working”."
                        )
                    )
                return
        await self._deliver_by_fallback(run, parent, results)

    async def _update(self, parent: Message) -> bool:
        if self.parent_ts is None:
            return True
        try:
            await self._pause()
            await self.client.chat_update(
                channel=self.channel, ts=self.parent_ts, text=parent.text, blocks=parent.blocks
            )
        except SLACK_FAILURES as exc:
            log.warning("parent update failed in %s: %s", self.channel, slack_error(exc))
            return False
        return True

    async def _final_update(self, parent: Message) -> bool:
        """The parent's final status, retried: it is what people glance at."""
        if await self._update(parent):
            return True
        for pause in FINAL_UPDATE_PAUSES_S:
            await self.sleep(pause)
            if await self._update(parent):
                return True
        return False

    async def tell(self, message: Message) -> bool:
        """Privately to the requester: the response_url, else chat.postEphemeral. True if
        either took it."""
        if await post_response_url(self.client, self.response_url, message, in_channel=False):
            return True
        try:
            await self.client.chat_postEphemeral(
                channel=self.channel,
                user=self.user_id,
                text=message.text,
                blocks=message.blocks or None,
                thread_ts=self.thread_ts,
            )
        except SLACK_FAILURES as exc:
            log.warning("could not tell %s privately: %s", self.user_id, slack_error(exc))
            return False
        return True

    async def _deliver_by_fallback(
        self, run: RunResult, parent: Message, results: list[Message]
    ) -> None:
        if self.parent_ts is not None:
            # The parent exists: let it show the final status, even if the rest goes elsewhere.
            await self._final_update(parent)
        combined = Message(
            text=parent.text + "\n" + "\n".join(m.text for m in results),
            blocks=(parent.blocks + [b for m in results for b in m.blocks])[: blocks.MAX_BLOCKS],
        )
        reason = self.fallback_reason
        hint = Message(text=blocks.fallback_hint(reason, not_here=reason in CANNOT_POST))
        if await post_response_url(self.client, self.response_url, combined, in_channel=True):
            await post_response_url(self.client, self.response_url, hint, in_channel=False)
            return
        # No response_url (a mention or a click) or it failed: privately, then the last resort.
        private = Message(text=combined.text + "\n" + hint.text, blocks=combined.blocks)
        if await self.tell(private):
            return
        # Last resort: the log keeps every room's outcome and RequestId (the core's structured
        # "request finished" line has them too).
        log.error(
            "could not deliver outcome to %s for %s: %s",
            self.channel,
            self.user_id,
            "; ".join(
                f"{r.room_id}={'ok' if r.ok else 'failed'} request_id={r.request_id}"
                for r in run.results
            ),
        )
