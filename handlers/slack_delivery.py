"""The Slack adapter's `Delivery`: how a request is reported in Slack, from any replica.

`SlackDelivery` implements `bot.requests.delivery.Delivery` on a `ThreadReporter`: `start` posts
the parent message (who ran what, on which rooms, why), `progress` edits its status line,
`finish` posts the outcome in its thread and the parent's final status, `takeover` posts what a
survivor found of a request whose replica stopped. Its reply address, which the request record
keeps so any replica can report, is (JSON; `v` is its version):

    {"v": 2, "adapter": "slack",
     "channel": "C…", "user": "U…",
     "parent_ts": "1700000000.000100" | null,  # the request's parent message, once posted
     "thread_ts": "1700000000.000100" | null,  # where its outcome goes (a mention's thread)
     "response_url": "https://hooks.slack.com/…" | null,
     "fallback": false}                        # true: the channel refused the parent

(Version 1, a lease context of roombot before request records, also carried `kind` and `head`,
the parent's text; it is still read.)

A takeover is posted in the request's thread (every room's verdict, and Retry for what is not
done), then the parent's status line is rewritten. When the thread is unknown (the replica
stopped before it could record where the parent was posted) the report goes to the channel and
says so plainly: never a second parent, never silence. When the channel refuses it (or there
never was a thread) it falls back as the rest of delivery does: the response_url (visible in the
channel), then an ephemeral message to the requester; if every way fails it raises
`TakeoverUndelivered` and the loop tries again later. A request with no Slack address is posted
in its rows' channel if they name one, else only logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from slack_sdk.web.async_client import AsyncWebClient

from bot import wording
from bot.errors import RoombotError
from bot.outcomes import Plan, Progress, RunKind, RunResult
from bot.requests.delivery import Deliveries
from bot.requests.takeover import TakeoverReport
from handlers import blocks
from handlers.blocks import Message
from handlers.delivery import (
    PROGRESS_INTERVAL_S,
    SLACK_FAILURES,
    ThreadReporter,
    post_response_url,
    slack_error,
)
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)

#: The version of the reply address's shape.
ADDRESS_VERSION: Final = 2
#: Said in a takeover report posted outside the request's thread because the thread is unknown.
THREAD_UNKNOWN: Final = (
    "(The replica carrying this out stopped before it recorded which thread it posted in, so "
    "this report is here rather than in that thread.)"
)


class TakeoverUndelivered(RoombotError):
    """No way to post a takeover report worked (thread, response_url, ephemeral)."""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class SlackDelivery:
    """One request's delivery in Slack (see the module docstring).

    `restarted` words takeover reports for one process that restarted (SQLite) rather than a
    survivor replica (PostgreSQL); `wait` is awaited before each Web API call (requests waiting
    for their ack go first).
    """

    reporter: ThreadReporter
    restarted: bool = False
    wait: Callable[[], Awaitable[None]] | None = None
    progress_interval: float = PROGRESS_INTERVAL_S
    guard: Callable[[], None] | None = None
    #: A version 1 address's parent text, for reports of requests recorded before plans were.
    legacy_head: str | None = field(default=None, repr=False)

    @classmethod
    def for_request(
        cls,
        client: AsyncWebClient,
        runtime: SlackRuntime,
        *,
        channel: str,
        user_id: str,
        response_url: str | None = None,
        root_ts: str | None = None,
        restarted: bool = False,
    ) -> SlackDelivery:
        """A delivery for a new request in `channel` (a mention's or a click's thread:
        `root_ts`)."""
        reporter = ThreadReporter(
            client=client,
            channel=channel,
            user_id=user_id,
            response_url=response_url,
            root_ts=root_ts,
            budget=runtime.update_budget,
            pause=runtime.gate.wait_idle,
        )
        return cls(reporter, restarted=restarted, wait=runtime.gate.wait_idle)

    @classmethod
    def from_address(
        cls,
        client: AsyncWebClient,
        runtime: SlackRuntime,
        address: Mapping[str, Any],
        *,
        restarted: bool = False,
    ) -> SlackDelivery:
        """The delivery of a recorded request, rebuilt from its reply address."""
        parent_ts = _text(address.get("parent_ts"))
        thread_ts = _text(address.get("thread_ts"))
        reporter = ThreadReporter(
            client=client,
            channel=_text(address.get("channel")) or "",
            user_id=_text(address.get("user")) or "",
            response_url=_text(address.get("response_url")),
            root_ts=thread_ts if thread_ts != parent_ts else None,
            budget=runtime.update_budget,
            pause=runtime.gate.wait_idle,
            parent_ts=parent_ts,
            fallback=bool(address.get("fallback")),
        )
        return cls(
            reporter,
            restarted=restarted,
            wait=runtime.gate.wait_idle,
            legacy_head=_text(address.get("head")),
        )

    # -- the Delivery protocol ------------------------------------------------------------------

    def address(self) -> dict[str, Any]:
        reporter = self.reporter
        return {
            "v": ADDRESS_VERSION,
            "adapter": "slack",
            "channel": reporter.channel,
            "user": reporter.user_id,
            "parent_ts": reporter.parent_ts,
            "thread_ts": reporter.thread_ts,
            "response_url": reporter.response_url,
            "fallback": reporter.fallback,
        }

    def __post_init__(self) -> None:
        # Every Web API call of the reporter waits its turn here, and is fenced here.
        self.reporter.pause = self.pause

    async def pause(self) -> None:
        if self.wait is not None:
            await self.wait()
        if self.guard is not None:
            self.guard()

    async def start(self, plan: Plan) -> None:
        reporter = self.reporter
        if plan.kind is RunKind.REVERT and reporter.root_ts is None and reporter.parent_ts:
            # A time-boxed change's revert is told in the change's own thread.
            reporter.root_ts = reporter.parent_ts
        await self.reporter.start(blocks.parent_message(plan.command, plan.actor, kind=plan.kind))

    async def progress(self, plan: Plan, progress: Progress) -> None:
        await self.reporter.progress(
            lambda: blocks.parent_message(
                plan.command, plan.actor, wording.progress_status(progress), plan.kind
            )
        )

    async def finish(self, run: RunResult) -> None:
        final = blocks.parent_message(run.command, run.actor, wording.final_status(run), run.kind)
        await self.reporter.finish(run, final, blocks.result_messages(run))

    async def unexpected(self, correlation_id: str) -> None:
        text = blocks.unexpected_error_text(correlation_id, work_started=True)
        if not await self.reporter.tell(Message(text=text)):
            log.error("could not tell %s about error [%s]", self.reporter.user_id, correlation_id)

    async def takeover(self, report: TakeoverReport) -> None:
        """Post `report` where its request was reported (see the module). Raises
        `TakeoverUndelivered` when no way worked."""
        reporter = self.reporter
        channel = reporter.channel or report.channel_id
        user = reporter.user_id or report.user_id
        if channel is None or not channel:
            log.warning(
                "takeover of %s: nowhere in Slack to report it (no channel); the audit trail "
                "has the verdicts: %s",
                report.request_key,
                _one_line(report),
            )
            return
        thread_ts = reporter.thread_ts
        parent_ts = reporter.parent_ts
        head = self._head(report)
        if not reporter.fallback:
            # Outside the request's thread the report must say which request it is about, and
            # that its thread is unknown.
            outside = None
            if thread_ts is None and head is not None:
                outside = f"{head}\n{THREAD_UNKNOWN}"
            messages = blocks.takeover_messages(report, restarted=self.restarted, head=outside)
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
        if await self._response_url(reporter.response_url, combined):
            return
        if user and await self._ephemeral(channel, user, thread_ts, combined):
            return
        raise TakeoverUndelivered(
            f"could not post the takeover report of {report.request_key} in {channel}"
        )

    def _head(self, report: TakeoverReport) -> str | None:
        plan = report.plan
        if plan is not None:
            return blocks.parent_head(plan.command, plan.actor, plan.kind)
        return self.legacy_head or _head_from_rows(report)

    # -- the ways to post ----------------------------------------------------------------------

    @property
    def client(self) -> AsyncWebClient:
        """The Web API client the reports go through."""
        return self.reporter.client

    async def _pause(self) -> None:
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


def slack_deliveries(
    deliveries: Deliveries, client: AsyncWebClient, runtime: SlackRuntime, *, restarted: bool
) -> Deliveries:
    """Register the Slack adapter in `deliveries`: requests recorded with a Slack address (and
    those of versions that recorded none: their rows name the channel) are reported through
    `client`."""

    def build(address: Mapping[str, Any]) -> SlackDelivery:
        return SlackDelivery.from_address(client, runtime, address, restarted=restarted)

    deliveries.register("slack", build)
    deliveries.register("unknown", build)
    return deliveries
