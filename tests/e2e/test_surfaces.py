"""Slack-native surfaces end to end (issue #17): the `/room` form, room cards, the App Home tab.

Signed requests to the real HTTP endpoint; the fake Slack records views.open / views.update /
views.publish and checks every view against Slack's limits; the emulator is Room Engine.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bot.audit import Outcome, Source
from handlers import modal
from handlers.card_blocks import ACTION_CARD_CANCEL, ACTION_CARD_CONFIRM, ACTION_CARD_PREFIX
from handlers.form import ACTION_PICK_VERB
from handlers.home_view import ACTION_HOME_SHOW
from tests.e2e.stack import ALICE, GENERAL, MALLORY, Stack, running_stack

BOB = "U0BOB0001"
INCIDENT = "C0INCIDENT"
MODERATORS = f"""
[roles.moderators]
verbs = ["mute-all", "unmute-all", "show", "rename"]
users = ["{BOB}"]
"""


def _options(view: dict[str, Any]) -> list[str]:
    [picker] = [b for b in view["blocks"] if b.get("block_id") == "verb"]
    return [o["value"] for o in picker["element"]["options"]]


def _buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        element
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["type"] == "button"
    ]


def _card_button(blocks: list[dict[str, Any]], verb: str) -> dict[str, Any]:
    [found] = [b for b in _buttons(blocks) if b["action_id"] == ACTION_CARD_PREFIX + verb]
    return found


async def _rows(stack: Stack) -> list[Any]:
    store = stack.bot.audit
    assert store is not None
    return list(reversed(await store.query(limit=1000)))


async def _open_form(stack: Stack, *, user: str = ALICE, channel: str = GENERAL) -> dict[str, Any]:
    reply, key = await stack.slash("", user=user, channel=channel)
    assert reply.status == 200
    assert reply.elapsed_s < 3.0
    assert reply.json() == {}  # an empty ack: the form opens instead
    await stack.slack.wait_for(lambda: bool(stack.slack.calls_to("views.open")))
    assert stack.response_posts(key) == []
    return stack.slack.latest_view()


async def _pick(
    stack: Stack, view: dict[str, Any], verb: str, *, user: str = ALICE
) -> dict[str, Any]:
    """Pick `verb` in the form and wait for the redrawn form."""
    updates = len(stack.slack.calls_to("views.update"))
    reply = await stack.in_view(view, ACTION_PICK_VERB, value=verb, user=user)
    assert reply.status == 200
    await stack.slack.wait_for(lambda: len(stack.slack.calls_to("views.update")) > updates)
    return stack.slack.latest_view()


# -- the form ----------------------------------------------------------------------------------


async def test_an_empty_room_opens_the_form_with_only_the_verbs_the_user_may_run(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, policy_toml=MODERATORS) as stack:
        view = await _open_form(stack, user=BOB, channel=INCIDENT)

        [call] = stack.slack.calls_to("views.open")
        [slash] = [c for c in stack.slack.calls if c.method == "views.open"]
        assert slash.params["trigger_id"]  # the slash command's own trigger, used within 3 s
        assert call.params["view"]["callback_id"] == "roombot_form"
        assert _options(view) == ["mute-all", "unmute-all", "rename", "show"]
        assert json.loads(view["private_metadata"])["c"] == INCIDENT
        assert "<#C0INCIDENT>" in json.dumps(view["blocks"])

        # Picking a verb redraws the form with the value that verb needs.
        renamed = await _pick(stack, view, "rename", user=BOB)
        [value] = [b for b in renamed["blocks"] if b.get("block_id") == "value"]
        assert value["label"]["text"] == "New name"
        shown = await _pick(stack, renamed, "show", user=BOB)
        ids = [b.get("block_id") for b in shown["blocks"]]
        assert "value" not in ids
        assert "reason" not in ids
        assert "options" not in ids

        # `help` typed keeps answering help; a user who may run nothing gets help, not a form.
        help_reply, _ = await stack.slash("help", user=BOB)
        assert "/room mute-all" in help_reply.json()["text"]
        nothing, _ = await stack.slash("", user=MALLORY)
        assert "`/room help [VERB]`" in nothing.json()["text"]  # what an empty /room said before
        assert len(stack.slack.calls_to("views.open")) == 1


async def test_when_slack_will_not_open_the_form_the_user_is_told_to_type_instead(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        reply, key = await stack.slash("", trigger_id="1700000000.1.not-issued")
        assert reply.json() == {}
        await stack.slack.wait_for(lambda: bool(stack.response_posts(key)))
        [told] = stack.response_posts(key)
        assert told["response_type"] == "ephemeral"
        assert "would not open the command form (`invalid_arguments`)" in told["text"]
        assert "/room help" in told["text"]


async def test_submitting_the_form_mutes_the_room_and_threads_the_result_in_the_channel(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        view = await _pick(stack, await _open_form(stack), "mute-all")

        reply = await stack.submit(
            view, {"verb": "mute-all", "rooms": "room-test", "reason": "abuse “report”"}
        )
        assert reply.status == 200
        assert reply.json() == {}  # closes the form
        await stack.settle()

        [call] = stack.tencent_calls()
        assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is True
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        assert "`/room mute-all`" in parent["text"]
        assert 'abuse "report"' in parent["text"]
        assert "✅ done: 1/1 room changed" in parent["text"]
        [result] = stack.slack.thread(GENERAL, parent["ts"])
        assert f"RequestId `{call.request_id}`" in result["text"]

        [row] = await _rows(stack)
        assert row.source == Source.MODAL
        assert row.user_id == ALICE
        assert row.channel_id == GENERAL
        assert row.reason == 'abuse "report"'
        assert row.outcome is Outcome.OK


async def test_a_bad_room_id_is_shown_on_the_rooms_field_and_nothing_runs(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        view = await _pick(stack, await _open_form(stack), "mute-all")
        bad = "room-" + "x" * 60

        reply = await stack.submit(view, {"verb": "mute-all", "rooms": f"room-test {bad}"})

        assert reply.status == 200
        body = reply.json()
        assert body["response_action"] == "errors"
        assert list(body["errors"]) == ["rooms"]
        assert "65 bytes; the limit is 48" in body["errors"]["rooms"]  # the parser's message
        await stack.settle()
        assert stack.emulator.requests == []
        assert stack.slack.calls_to("chat.postMessage") == []
        [row] = await _rows(stack)  # audited like a typed invalid command
        assert row.outcome is Outcome.INVALID
        assert row.source == Source.MODAL


async def test_each_refusal_lands_on_its_own_field(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        form = await _open_form(stack)
        renamed = await _pick(stack, form, "rename")
        long_name = await stack.submit(
            renamed, {"verb": "rename", "rooms": "room-test", "value": "n" * 101}
        )
        assert list(long_name.json()["errors"]) == ["value"]
        two_rooms = await stack.submit(
            renamed, {"verb": "rename", "rooms": "room-test room-2", "value": "Town hall"}
        )
        assert two_rooms.json()["errors"] == {"rooms": "`rename` takes one room, got 2."}
        long_reason = await stack.submit(
            renamed,
            {"verb": "rename", "rooms": "room-test", "value": "Town hall", "reason": "r" * 1001},
        )
        assert list(long_reason.json()["errors"]) == ["reason"]
        await stack.settle()
        assert stack.emulator.requests == []

        # A value with quotes and an option-like word reaches Room Engine exactly as typed.
        odd = 'Town "hall" --dry-run'
        reply = await stack.submit(renamed, {"verb": "rename", "rooms": "room-test", "value": odd})
        assert reply.json() == {}
        await stack.settle()
        assert stack.emulator.rooms["room-test"]["RoomName"] == odd


async def test_a_denied_submission_is_shown_on_the_command_field(tmp_path: Path) -> None:
    async with running_stack(tmp_path, policy_toml=MODERATORS) as stack:
        view = await _pick(stack, await _open_form(stack, user=BOB), "mute-all", user=BOB)
        # The policy changes while the form is open: BOB may no longer mute.
        (tmp_path / "policy.toml").write_text(
            MODERATORS.replace('"mute-all", ', ""), encoding="utf-8"
        )
        assert stack.bot.reload_policy()

        reply = await stack.submit(view, {"verb": "mute-all", "rooms": "room-test"}, user=BOB)

        errors = reply.json()["errors"]
        assert list(errors) == ["verb"]
        assert f"You ({BOB}) are not allowed to run `mute-all`" in errors["verb"]
        await stack.settle()
        assert stack.emulator.requests == []


async def test_a_form_for_lockdown_asks_for_confirmation_and_dry_runs_like_the_typed_command(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        _reply, key = await stack.slash("")
        await stack.slack.wait_for(lambda: bool(stack.slack.calls_to("views.open")))
        view = await _pick(stack, stack.slack.latest_view(), "lockdown")
        submitted = await stack.submit(view, {"verb": "lockdown", "rooms": "room-test"})
        assert submitted.json() == {}
        await stack.settle()
        [prompt] = stack.response_posts(key)  # the slash command's response_url, privately
        assert prompt["response_type"] == "ephemeral"
        assert "Please confirm" in prompt["text"]
        assert stack.emulator.requests == []

        # A dry run answers the same way, with the exact body, and is audited as one.
        dry = await stack.submit(
            view, {"verb": "lockdown", "rooms": "room-test", "options": ["dry_run"]}
        )
        assert dry.json() == {}
        await stack.settle()
        _prompt, bodies = stack.response_posts(key)
        assert bodies["response_type"] == "ephemeral"
        assert "Dry run of `/room lockdown`" in bodies["text"]
        assert '"IsAudioDisabled": true' in bodies["text"]
        assert stack.emulator.requests == []
        [row] = [r for r in await _rows(stack) if r.outcome is Outcome.DRY_RUN]
        assert row.source == Source.MODAL


# -- room cards ----------------------------------------------------------------------------------


async def test_a_room_cards_button_mutes_the_room_and_redraws_the_card(tmp_path: Path) -> None:
    async with running_stack(tmp_path) as stack:
        _reply, key = await stack.slash("show room-test")
        await stack.settle()
        [card] = stack.response_posts(key)
        labels = [b["text"]["text"] for b in _buttons(card["blocks"])]
        assert labels == [
            "Mute all",
            "Disable chat",
            "Disable video",
            "Disable screen sharing",
            "Lockdown",
        ]
        mute = _card_button(card["blocks"], "mute-all")

        click, click_key = await stack.click(
            mute["action_id"], mute["value"], message_ts="1.000001", is_ephemeral=True
        )
        assert click.status == 200
        await stack.settle()

        [call] = stack.tencent_calls()
        assert call.body == {"RoomInfo": {"RoomId": "room-test", "IsAudioDisabled": True}}
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        assert "`/room mute-all`" in parent["text"]
        assert stack.slack.thread(GENERAL, parent["ts"])  # reported in a thread
        [redrawn] = stack.response_posts(click_key)
        assert redrawn["replace_original"] is True
        assert "audio ⛔ muted" in redrawn["text"]
        assert _card_button(redrawn["blocks"], "unmute-all")["text"]["text"] == "Unmute all"
        [row] = [r for r in await _rows(stack) if r.verb == "mute-all"]
        assert row.source == Source.BUTTON
        assert row.outcome is Outcome.OK


async def _lockdown_prompt_from_card(stack: Stack) -> dict[str, Any]:
    """`show room-test`, click its card's Lockdown: the prompt that took the card's place."""
    _reply, key = await stack.slash("show room-test")
    await stack.settle()
    [card] = stack.response_posts(key)
    lockdown = _card_button(card["blocks"], "lockdown")
    _click, click_key = await stack.click(
        lockdown["action_id"], lockdown["value"], message_ts="1.000002", is_ephemeral=True
    )
    await stack.settle()
    [prompt] = stack.response_posts(click_key)
    assert prompt["replace_original"] is True  # in the card's place, not beside it
    assert "Please confirm: `/room lockdown` on 1 room" in prompt["text"]
    assert [b["action_id"] for b in _buttons(prompt["blocks"])] == [
        ACTION_CARD_CONFIRM,
        ACTION_CARD_CANCEL,
    ]
    assert not stack.tencent_calls()
    return prompt


async def test_a_cards_lockdown_asks_first_in_the_cards_place_then_draws_the_locked_card(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        prompt = await _lockdown_prompt_from_card(stack)
        confirm = _buttons(prompt["blocks"])[0]

        _click, confirm_key = await stack.click(
            confirm["action_id"], confirm["value"], message_ts="1.000002", is_ephemeral=True
        )
        await stack.settle()

        [call] = stack.tencent_calls()
        assert call.body["RoomInfo"]["IsAudioDisabled"] is True
        assert call.body["RoomInfo"]["IsMessageDisabled"] is True
        [parent] = [m for m in stack.slack.messages(GENERAL) if m["thread_ts"] is None]
        assert "`/room lockdown`" in parent["text"]
        running, redrawn = stack.response_posts(confirm_key)
        assert "Confirmed — running `/room lockdown`" in running["text"]
        assert redrawn["replace_original"] is True
        assert "audio ⛔ muted" in redrawn["text"]
        labels = [b["text"]["text"] for b in _buttons(redrawn["blocks"])]
        assert labels == [
            "Unmute all",
            "Enable chat",
            "Enable video",
            "Enable screen sharing",
            "Lift lockdown",
        ]
        [row] = [r for r in await _rows(stack) if r.verb == "lockdown"]
        assert row.outcome is Outcome.OK


async def test_cancelling_a_cards_prompt_draws_the_card_again_and_changes_nothing(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        prompt = await _lockdown_prompt_from_card(stack)
        cancel = _buttons(prompt["blocks"])[1]

        _click, cancel_key = await stack.click(
            cancel["action_id"], cancel["value"], message_ts="1.000002", is_ephemeral=True
        )
        await stack.settle()

        assert not stack.tencent_calls()
        [redrawn] = stack.response_posts(cancel_key)
        assert redrawn["replace_original"] is True
        assert redrawn["text"].startswith("Cancelled: `/room lockdown` was not run.")
        assert _card_button(redrawn["blocks"], "lockdown")["text"]["text"] == "Lockdown"
        # The prompt is spent: Confirm on it now runs nothing, and says so.
        confirm = _buttons(prompt["blocks"])[0]
        _click, late_key = await stack.click(
            confirm["action_id"], confirm["value"], message_ts="1.000002", is_ephemeral=True
        )
        await stack.settle()
        assert not stack.tencent_calls()
        refusal, again = stack.response_posts(late_key)
        assert refusal["text"].startswith("❌")
        assert refusal.get("replace_original") is False
        assert _card_button(again["blocks"], "lockdown")  # the card, drawn again


async def test_a_card_offers_only_what_the_caller_may_run_and_checks_again_at_click(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, policy_toml=MODERATORS) as stack:
        _reply, key = await stack.slash("show room-test", user=BOB)
        await stack.settle()
        [card] = stack.response_posts(key)
        assert [b["text"]["text"] for b in _buttons(card["blocks"])] == ["Mute all"]
        mute = _card_button(card["blocks"], "mute-all")

        # Mallory clicks a button she was never offered: refused, audited, nothing changes.
        _click, click_key = await stack.click(
            mute["action_id"], mute["value"], user_id=MALLORY, message_ts="1.2", is_ephemeral=True
        )
        await stack.settle()
        [refusal] = stack.response_posts(click_key)
        assert "not allowed to run `mute-all`" in refusal["text"]
        assert refusal.get("replace_original") is False  # the card stays
        assert stack.emulator.requests
        assert not stack.tencent_calls()
        [row] = await _rows(stack)
        assert (row.user_id, row.outcome, row.source) == (MALLORY, Outcome.DENIED, Source.BUTTON)


async def test_show_of_many_rooms_lists_them_in_one_line_each_within_block_kit_limits(
    tmp_path: Path,
) -> None:
    rooms = [f"room-{i:03d}-" + "x" * 39 for i in range(40)]  # 48 bytes each
    async with running_stack(tmp_path, rooms=rooms) as stack:
        _reply, key = await stack.slash("show " + " ".join(rooms))
        await stack.settle()
        [post] = stack.response_posts(key)
        assert _buttons(post["blocks"]) == []  # cards (with buttons) only for up to 10 rooms
        text = json.dumps(post["blocks"])
        assert all(room in text for room in rooms)
        assert len(post["blocks"]) <= 50


# -- the App Home tab ----------------------------------------------------------------------------


async def test_the_home_tab_shows_permissions_recent_requests_and_rooms_with_show(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.slash("mute-all room-test --reason drill")
        await stack.settle()
        await stack.slash("disable-chat room-2 room-3")
        await stack.settle()
        await stack.slash("set-capacity room-3 lots")  # invalid
        await stack.slash("mute-all ghost-room")  # fails: no such room
        await stack.settle()

        reply = await stack.home_opened(ALICE)
        assert reply.status == 200
        await stack.settle()

        [call] = stack.slack.calls_to("views.publish")
        assert call.params["user_id"] == ALICE
        home = stack.slack.home_view(ALICE)
        assert home is not None
        assert home["type"] == "home"
        text = "\n".join(json.dumps(b, ensure_ascii=False) for b in home["blocks"])
        assert "In every channel: `mute-all`" in text
        assert "Your last 4 requests" in text
        lines = [
            line
            for b in home["blocks"]
            if b["type"] == "section"
            for line in b["text"]["text"].splitlines()
            if "/room " in line
        ]
        assert len(lines) == 4
        assert "❌ failed" in lines[0]
        assert "ghost-room" in lines[0]
        assert "invalid" in lines[1]
        assert "set-capacity" in lines[1]
        assert "✅ done" in lines[2]
        assert "`room-2`, `room-3`" in lines[2]
        assert "✅ done" in lines[3]
        assert "`room-test`" in lines[3]
        assert all("<!date^" in line for line in lines)
        shows = [
            b["accessory"]["value"]
            for b in home["blocks"]
            if b.get("accessory", {}).get("action_id") == ACTION_HOME_SHOW
        ]
        assert shows == ["ghost-room", "room-2", "room-3", "room-test"]

        # Show answers in the DM with a room card whose buttons work like any card's.
        await stack.in_view(home, ACTION_HOME_SHOW, value="room-test")
        await stack.settle()
        dm = stack.slack.dm_channel(ALICE)
        [card] = stack.slack.messages(dm)
        assert "audio ⛔ muted" in card["text"]
        unmute = _card_button(card["blocks"], "unmute-all")
        await stack.click(
            unmute["action_id"], unmute["value"], channel_id=dm, message_ts=card["ts"], message=card
        )
        await stack.settle()
        assert stack.emulator.rooms["room-test"]["IsAudioDisabled"] is False
        [redrawn] = [m for m in stack.slack.messages(dm) if m["ts"] == card["ts"]]
        assert "audio on" in redrawn["text"]
        assert _card_button(redrawn["blocks"], "mute-all")


async def test_the_home_tab_tells_a_user_without_permissions_how_to_get_access(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path) as stack:
        await stack.home_opened(MALLORY)
        await stack.settle()
        home = stack.slack.home_view(MALLORY)
        assert home is not None
        text = json.dumps(home["blocks"])
        assert "You may not run any roombot command yet" in text
        assert MALLORY in text
        assert "ROOMBOT_ALLOWED_USERS" in text
        assert ACTION_HOME_SHOW not in text
        assert "None yet" in text

        # Opening the Messages tab publishes nothing.
        await stack.home_opened(ALICE, tab="messages")
        await stack.settle()
        assert stack.slack.home_view(ALICE) is None


async def test_a_forged_card_button_runs_nothing_and_is_refused_and_audited(
    tmp_path: Path,
) -> None:
    """Issue 27, item 3: a card button's value once ran whatever text it held."""
    forged = [
        # Free text in the verb: another verb, more rooms, accounts, options.
        ("roombot_card.mute-all", {"v": "kick room-test alice bob --reason", "r": "room-test"}),
        ("roombot_card.kick", {"v": "kick", "r": "room-test alice", "s": ["room-test"]}),
        # A verb no card offers, and one that is not the button's own.
        ("roombot_card.destroy", {"v": "destroy", "r": "room-test", "s": ["room-test"]}),
        ("roombot_card.mute-all", {"v": "unmute-all", "r": "room-test", "s": ["room-test"]}),
        # More than one room, or a room that is not among the card's.
        ("roombot_card.mute-all", {"v": "mute-all", "r": "room-test room-2", "s": ["room-test"]}),
        ("roombot_card.mute-all", {"v": "mute-all", "r": "room-2", "s": ["room-test"]}),
    ]
    async with running_stack(tmp_path) as stack:
        for action_id, value in forged:
            reply, click_key = await stack.click(
                action_id, json.dumps(value), message_ts="1.000001", is_ephemeral=True
            )
            assert reply.status == 200
            await stack.settle()
            [told] = stack.response_posts(click_key)
            assert "This button is not one of roombot's" in told["text"], told
            assert told.get("replace_original") is not True  # the card stays as it was
        assert stack.emulator.requests == []
        refused = [r for r in await _rows(stack) if r.source == Source.BUTTON]
        assert len(refused) == len(forged)
        assert {r.outcome for r in refused} == {Outcome.INVALID}
        assert all("roombot_card." in (r.raw_text or "") for r in refused)


async def test_an_error_no_listener_handles_still_tells_the_user_its_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 22: an error inside `modal.open_form` (here: a bug building the form) used to reach
    the user with no error id. The bolt app's backstop (`app.error`) logs it with a fresh
    correlation id and tells the user that id, privately."""

    def broken_form(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("a bug building the form")

    monkeypatch.setattr(modal, "form_view", broken_form)
    async with running_stack(tmp_path) as stack:
        # (bolt drops an ack given just before the listener raised: Slack then says the command
        # failed, and the message below says why, with the id.)
        _reply, key = await stack.slash("")
        await stack.slack.wait_for(lambda: bool(stack.response_posts(key)))
        [post] = stack.response_posts(key)
        assert post["response_type"] == "ephemeral"
        found = re.search(r"error id `([0-9a-f]{8})`", post["text"])
        assert found is not None, post["text"]
        logged = [r for r in caplog.records if getattr(r, "correlation_id", None) == found[1]]
        assert logged, "the id the user sees is in the log"
        assert logged[0].exc_info is not None  # with the traceback
        assert stack.slack.calls_to("views.open") == []
