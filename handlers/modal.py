"""`/room` with nothing after it: the command form (a modal), run through the typed pipeline.

`open_form` is what `/room`'s listener calls for empty text: it acks at once and opens the form
with the command's `trigger_id` (valid for 3 s) — unless the user may run nothing, who gets
the same help answer as before. Picking a verb redraws the form with the fields that verb
needs (`views.update`). A submission becomes command text (`handlers.form.command_text`) and
goes through the same presenter as a typed command: a refusal goes back onto the form's field
(`response_action: errors`); anything else closes the form and is delivered as a typed command
would be: a dry run, a confirmation prompt or a read answer privately (the slash command's
`response_url`), a change as a parent message in the channel with its thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, Final

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_sdk.web.async_client import AsyncWebClient

from bot.commands import VerbKind, normalise
from bot.outcomes import Actor, Approved, Plan, Rejected
from bot.presenter import Answer, Presenter
from bot.service import RoomService
from bot.wording import FAIL_MARK
from handlers import blocks
from handlers.blocks import Message
from handlers.delivery import SLACK_FAILURES, post_response_url, slack_error
from handlers.form import (
    ACTION_PICK_VERB,
    BLOCK_VERB,
    CALLBACK_FORM,
    FormContext,
    FormInput,
    command_text,
    field_error,
    form_problem,
    form_view,
    offered_verbs,
)
from handlers.middleware import actor_of
from handlers.renderer import SlackRenderer
from handlers.runtime import SlackRuntime
from handlers.slack_delivery import SlackDelivery
from handlers.timeline_file import deliver_timeline

log = logging.getLogger(__name__)

#: How long opening the form waits for the user's permissions (the ack must beat 3 s).
FORM_WITHIN_S: Final = 2.0


def is_empty(text: str) -> bool:
    """True when `/room` was typed with nothing after it (what opens the form)."""
    return not normalise(text)


async def offered(service: RoomService, actor: Actor) -> list[str]:
    """The verbs the form offers `actor` where they are."""
    return offered_verbs(await service.allowed_verbs(actor))


async def open_form(
    ack: AsyncAck,
    command: dict[str, Any],
    client: AsyncWebClient,
    actor: Actor,
    presenter: Presenter[Message],
) -> None:
    """Answer an empty `/room`: ack, then open the form in `views.open` (someone who may run
    nothing gets help instead, which says so). The picker needs the user's permissions, which
    may need Slack (user groups): they get `FORM_WITHIN_S`, so the ack is never late."""
    try:
        verbs = await asyncio.wait_for(offered(presenter.service, actor), FORM_WITHIN_S)
    except TimeoutError:
        await ack(
            response_type="ephemeral",
            text="⏳ Slack is slow to tell me your permissions (user groups), so the form cannot "
            "open now. Type the command instead (`/room help` lists them), or try again shortly.",
        )
        return
    if not verbs:
        reply = await presenter.answer("help", actor)
        message = reply.message if isinstance(reply, Answer) else Message(text="")
        await ack(response_type="ephemeral", text=message.text, blocks=message.blocks or None)
        return
    await ack()
    context = FormContext(
        channel_id=command["channel_id"], response_url=command.get("response_url")
    )
    try:
        # Right after the ack, not queued behind background work: the trigger lasts 3 s.
        await client.views_open(trigger_id=command["trigger_id"], view=form_view(verbs, context))
    except SLACK_FAILURES as exc:
        log.warning("could not open the /room form for %s: %s", actor.user_id, slack_error(exc))
        await _tell(
            context,
            actor,
            Message(
                text=f"{FAIL_MARK} Slack would not open the command form "
                f"(`{slack_error(exc)}`). Type the command instead: `/room help` lists them."
            ),
            client,
        )


@dataclass(frozen=True)
class Refusal(Message):
    """A refusal message that remembers its `Rejected`."""

    rejected: Rejected | None = None


class FormRenderer(SlackRenderer):
    """`SlackRenderer`, except that a refusal keeps the `Rejected` it came from (as a
    `Refusal`), so the form can put it on the field it is about."""

    def rejected(self, rejected: Rejected) -> Message:
        """A refusal, with what was refused."""
        return Refusal(text=blocks.rejected_text(rejected), rejected=rejected)


def register(app: AsyncApp, presenter: Presenter[Message], runtime: SlackRuntime) -> None:
    """Attach the form's listeners (the command picker, the submission) to `app`."""
    service = presenter.service
    forms = Presenter(service, FormRenderer())

    @app.action(ACTION_PICK_VERB)
    async def on_pick(
        ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient, context: AsyncBoltContext
    ) -> None:
        await ack()
        view = body.get("view") or {}
        form_context = FormContext.decode(view.get("private_metadata"))
        if form_context is None:
            return
        selected = (body["actions"][0].get("selected_option") or {}).get("value")
        verbs = await offered(service, actor_of(context))
        try:
            await client.views_update(
                view_id=view["id"],
                hash=view.get("hash"),
                view=form_view(verbs, form_context, selected),
            )
        except SLACK_FAILURES as exc:
            # hash_conflict: a newer pick already redrew the form; nothing to do.
            if slack_error(exc) != "hash_conflict":
                log.warning("could not redraw the /room form: %s", slack_error(exc))

    @app.view(CALLBACK_FORM)
    async def on_submit(
        ack: AsyncAck,
        view: dict[str, Any],
        client: AsyncWebClient,
        context: AsyncBoltContext,
    ) -> None:
        actor = actor_of(context)
        form_context = FormContext.decode(view.get("private_metadata"))
        form = FormInput.from_state((view.get("state") or {}).get("values") or {})
        if form_context is None:
            lost = "This form lost track of its channel: close it and type /room again."
            await ack(response_action="errors", errors={BLOCK_VERB: lost})
            return
        problem = form_problem(form)
        if problem is not None:
            await ack(response_action="errors", errors={problem.block_id: problem.text})
            return
        reply = await forms.answer(command_text(form), actor, defer=runtime.tasks.spawn)
        if isinstance(reply, Answer) and not reply.ok:
            rejected = reply.message.rejected if isinstance(reply.message, Refusal) else None
            error = field_error(form, rejected, reply.message.text, max_rooms=service.max_rooms)
            await ack(response_action="errors", errors={error.block_id: error.text})
            return
        await ack()
        if not isinstance(reply, Approved):
            # A dry run or a confirmation prompt: privately, as the typed command's ack would.
            await _tell(form_context, actor, reply.message, client)
            return
        if reply.command.spec.kind is VerbKind.READ:

            async def tell(correlation_id: str) -> None:
                unexpected = Message(text=blocks.unexpected_error_text(correlation_id))
                await _tell(form_context, actor, unexpected, client)

            runtime.tasks.spawn(_read(forms, reply, form_context, client), on_error=tell)
            return
        delivery = SlackDelivery.for_request(
            client,
            runtime,
            channel=form_context.channel_id,
            user_id=actor.user_id,
            response_url=form_context.response_url,
        )
        runtime.tasks.spawn(
            _run(service, service.plan(reply), delivery), on_error=delivery.unexpected
        )


async def _run(service: RoomService, plan: Plan, delivery: SlackDelivery) -> None:
    await service.submit(plan, delivery)


async def _read(
    presenter: Presenter[Message], approved: Approved, context: FormContext, client: AsyncWebClient
) -> None:
    answer = await presenter.read(approved)
    if answer.message.files:  # `timeline`: a summary in the channel, the file in its thread
        await deliver_timeline(
            client,
            answer.message,
            channel=context.channel_id,
            response_url=context.response_url,
        )
        return
    await _tell(context, approved.actor, answer.message, client)


async def _tell(
    context: FormContext, actor: Actor, message: Message, client: AsyncWebClient
) -> None:
    """Say `message` to the form's user only: through the slash command's `response_url`
    (valid for 30 minutes), else `chat.postEphemeral` in the channel, else a DM."""
    if await post_response_url(client, context.response_url, message, in_channel=False):
        return
    text, content = message.text, message.blocks or None
    try:
        await client.chat_postEphemeral(
            channel=context.channel_id, user=actor.user_id, text=text, blocks=content
        )
        return
    except SLACK_FAILURES as exc:
        log.info("form answer not ephemeral in %s: %s", context.channel_id, slack_error(exc))
    try:
        await client.chat_postMessage(channel=actor.user_id, text=text, blocks=content)
    except SLACK_FAILURES as exc:
        log.error("could not answer %s's form: %s", actor.user_id, slack_error(exc))
