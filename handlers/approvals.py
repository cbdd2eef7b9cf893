"""Two-person approval in Slack (DESIGN §2.12): the request's message with Approve / Deny, its copy
in the approvals channel, both updated to the final state, and the clicks.

`SlackApprovalNotices` is the adapter's `bot.approvals.ApprovalNotices`: it posts the request
where it was asked (in the channel, or in a mention's thread), and a copy linking back in the
approvals channel when the policy names one; the request's reply address then grows an
`approval` entry (where both messages are) and its `thread_ts` becomes the request message, so
the run, once approved, is reported in that thread by whichever replica carries it out.

Approve and Deny are acked at once; the decision is the core's (`Approvals.approve` /
`deny`): exactly one click runs the request, across replicas and Slack's retries. Deny opens
a modal for an optional reason (when it cannot be opened, the request is denied without one).
A refused click is told privately.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot import wording
from bot.approvals import Approvals
from bot.audit import RequestRecord
from bot.outcomes import Actor, ApprovalPending, Plan, Rejected
from bot.requests.plans import PlanUnreadable, plan_from_json
from handlers import approval_blocks as ab
from handlers import blocks
from handlers.delivery import SLACK_FAILURES, post_response_url, slack_error
from handlers.middleware import actor_of
from handlers.runtime import SlackRuntime

log = logging.getLogger(__name__)


class SlackApprovalNotices:
    """Shows one request's approval in Slack (see the module docstring)."""

    def __init__(self, client: AsyncWebClient, address: Mapping[str, Any]) -> None:
        self._client = client
        self._address = dict(address)

    async def asked(self, pending: ApprovalPending) -> Mapping[str, Any] | None:
        channel = str(self._address.get("channel") or "")
        root = self._address.get("thread_ts") or None
        message = ab.request_message(pending)
        try:
            posted = await self._client.chat_postMessage(
                channel=channel,
                text=message.text,
                blocks=message.blocks,
                thread_ts=root,
                unfurl_links=False,
            )
        except SLACK_FAILURES as exc:
            log.warning("could not post the approval request in %s: %s", channel, slack_error(exc))
            await post_response_url(
                self._client, self._address.get("response_url"), message, in_channel=True
            )
            return None
        ts = str(posted["ts"])
        approval: dict[str, Any] = {"channel": channel, "ts": ts, "copy": None}
        if pending.channel and pending.channel != channel:
            link = ab.permalink(channel, str(root or ts))
            copy = ab.request_message(pending, link=link)
            try:
                copied = await self._client.chat_postMessage(
                    channel=pending.channel,
                    text=copy.text,
                    blocks=copy.blocks,
                    unfurl_links=False,
                )
                approval["copy"] = {"channel": pending.channel, "ts": str(copied["ts"])}
            except SLACK_FAILURES as exc:
                log.warning(
                    "could not post the approval request in %s: %s",
                    pending.channel,
                    slack_error(exc),
                )
        return {**self._address, "thread_ts": root or ts, "approval": approval}

    async def decided(self, record: RequestRecord) -> None:
        approval = record.reply.get("approval")
        if not isinstance(approval, dict):
            log.info("request %s: %s (nothing posted to update)", record.request_key, record.state)
            return
        try:
            plan = plan_from_json(record.plan, record.request_key)
        except PlanUnreadable as exc:
            log.warning("cannot show the decision on %s: %s", record.request_key, exc)
            return
        await self._update(approval.get("channel"), approval.get("ts"), plan, record, None)
        copy = approval.get("copy")
        if isinstance(copy, dict):
            root = record.reply.get("thread_ts") or approval.get("ts")
            link = ab.permalink(str(approval.get("channel")), str(root))
            await self._update(copy.get("channel"), copy.get("ts"), plan, record, link)

    async def _update(
        self, channel: Any, ts: Any, plan: Plan, record: RequestRecord, link: str | None
    ) -> None:
        if not isinstance(channel, str) or not isinstance(ts, str):
            return
        message = ab.decided_message(plan, record, link=link)
        try:
            await self._client.chat_update(
                channel=channel, ts=ts, text=message.text, blocks=message.blocks
            )
        except SLACK_FAILURES as exc:
            log.warning(
                "could not update the approval request in %s: %s", channel, slack_error(exc)
            )


def register_notices(approvals: Approvals, client: AsyncWebClient) -> None:
    """Show the approvals of Slack requests through `client`."""

    def build(address: Mapping[str, Any]) -> SlackApprovalNotices:
        return SlackApprovalNotices(client, address)

    approvals.register("slack", build)


#: Draws a user's App Home again (after a decision taken there).
Republish = Callable[[AsyncWebClient, str], Awaitable[None]]


def register(
    app: AsyncApp,
    approvals: Approvals | None,
    runtime: SlackRuntime,
    republish: Republish | None = None,
) -> None:
    """Attach Approve, Deny and the Deny modal to `app`; a decision taken on the App Home
    draws it again with `republish`."""

    def decide(
        decision: Coroutine[Any, Any, None], client: AsyncWebClient, user_id: str, home: bool
    ) -> None:
        """Run `decision` after the ack; on the App Home, draw it again afterwards."""
        runtime.tasks.spawn(_then_home(decision, republish if home else None, client, user_id))

    @app.action(ab.ACTION_APPROVE)
    async def on_approve(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        key = str(body["actions"][0].get("value") or "")
        actor = actor_of(context)
        approving = _approve(approvals, actor, key, body, client)
        decide(approving, client, actor.user_id, _on_home(body))

    @app.action(ab.ACTION_DENY)
    async def on_deny(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        key = str(body["actions"][0].get("value") or "")
        home = _on_home(body)
        try:
            await client.views_open(
                trigger_id=body["trigger_id"], view=ab.deny_modal(key + (_HOME if home else ""))
            )
        except SLACK_FAILURES as exc:
            log.info("no Deny modal (%s): denying without a reason", slack_error(exc))
            actor = actor_of(context)
            decide(_deny(approvals, actor, key, None, body, client), client, actor.user_id, home)

    @app.view(ab.DENY_VIEW)
    async def on_deny_reason(
        ack: AsyncAck, view: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        metadata = str(view.get("private_metadata") or "")
        key, home = metadata.removesuffix(_HOME), metadata.endswith(_HOME)
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get(ab.DENY_BLOCK) or {}).get(ab.DENY_INPUT) or {}).get("value")
        actor = actor_of(context)
        decide(_deny(approvals, actor, key, reason, None, client), client, actor.user_id, home)


#: Marks a Deny modal opened from the App Home (its `private_metadata` is the request key).
_HOME: Final = "|home"


def _on_home(body: Mapping[str, Any]) -> bool:
    """True for a click on the App Home tab."""
    return str((body.get("view") or {}).get("type") or "") == "home"


async def _then_home(
    decision: Coroutine[Any, Any, None],
    republish: Republish | None,
    client: AsyncWebClient,
    user_id: str,
) -> None:
    """The decision, then (taken on the App Home) that Home drawn again without it."""
    await decision
    if republish is None:
        return
    try:
        await republish(client, user_id)
    except SLACK_FAILURES as exc:
        log.warning("could not redraw %s's Home: %s", user_id, slack_error(exc))


async def _approve(
    approvals: Approvals | None,
    actor: Actor,
    key: str,
    body: dict[str, Any],
    client: AsyncWebClient,
) -> None:
    if approvals is None:
        await _tell(body, actor, "approvals need the audit store", client)
        return
    outcome = await approvals.approve(key, actor)
    if isinstance(outcome, Rejected):
        await _tell(body, actor, outcome.message, client)


async def _deny(
    approvals: Approvals | None,
    actor: Actor,
    key: str,
    reason: str | None,
    body: dict[str, Any] | None,
    client: AsyncWebClient,
) -> None:
    if approvals is None:
        await _tell(body, actor, "approvals need the audit store", client)
        return
    outcome = await approvals.deny(key, actor, reason)
    if isinstance(outcome, Rejected):
        await _tell(body, actor, outcome.message, client)


async def _tell(
    body: dict[str, Any] | None, actor: Actor, message: str, client: AsyncWebClient
) -> None:
    """A refusal, privately: through the click's response_url, else an ephemeral message."""
    text = f"{wording.FAIL_MARK} {blocks.SLACK.prose(message)}"
    url = (body or {}).get("response_url")
    if url and await post_response_url(client, url, blocks.Message(text=text), in_channel=False):
        return
    try:
        if actor.channel_id:
            await client.chat_postEphemeral(channel=actor.channel_id, user=actor.user_id, text=text)
        else:  # a click on the App Home: no channel, no response_url; the user's DM
            await client.chat_postMessage(channel=actor.user_id, text=text)
    except SLACK_FAILURES as exc:
        log.warning("could not tell %s: %s", actor.user_id, slack_error(exc))
