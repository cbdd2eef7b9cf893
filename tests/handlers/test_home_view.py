"""The App Home tab's view: permissions, last requests, rooms with Show, within Slack's limits."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.audit import Outcome
from bot.commands import VERBS
from bot.outcomes import Access, Activity, RequestSummary
from handlers import blocks
from handlers.home_view import ACTION_HOME_SHOW, home_view, outcome_phrase, request_line
from testkit.slack_api import view_problems

_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ALICE = "U0ALICE01"
EVERY_VERB = tuple(v for v in VERBS if v != "help")
NOW = 1_796_000_000.0


def _request(
    verb: str | None = "mute-all", rooms: tuple[str, ...] = ("room-test",), **outcomes: int
) -> RequestSummary:
    return RequestSummary(
        request_key="k",
        verb=verb,
        rooms=rooms,
        outcomes={Outcome(k): n for k, n in (outcomes or {"ok": len(rooms)}).items()},
        created_at=NOW,
        source="slash",
        text=f"{verb} {' '.join(rooms)}",
    )


def _text(view: dict[str, object]) -> str:
    return json.dumps(view["blocks"], ensure_ascii=False)


@pytest.mark.parametrize(
    ("outcomes", "phrase"),
    [
        ({Outcome.OK: 2}, "✅ done"),
        ({Outcome.OK: 1, Outcome.NOOP: 1}, "✅ done"),
        ({Outcome.OK: 1, Outcome.FAILED: 2}, "⚠️ partly done: 2/3 failed"),
        ({Outcome.FAILED: 1}, "❌ failed"),
        ({Outcome.NOT_ATTEMPTED: 3}, "❌ failed"),
        ({Outcome.DENIED: 1}, "⛔ denied"),
        ({Outcome.INVALID: 1}, "❌ invalid"),
        ({Outcome.DRY_RUN: 4}, "dry run, nothing sent"),
        ({Outcome.CANCELLED: 1}, "cancelled, nothing changed"),
        ({Outcome.PENDING: 1, Outcome.OK: 1}, "⏳ in progress"),
        ({Outcome.UNKNOWN: 1}, "⚠️ outcome unknown: check the rooms"),
        ({Outcome.IN_PLACE: 1}, "✅ done"),
    ],
)
def test_each_outcome_is_said_plainly(outcomes: dict[Outcome, int], phrase: str) -> None:
    assert outcome_phrase(outcomes) == phrase


def test_a_request_line_names_the_command_rooms_and_time_in_the_readers_zone() -> None:
    line = request_line(_request("disable-chat", ("room-2", "room-3")))
    assert line.startswith("✅ done · `/room disable-chat` on `room-2`, `room-3` · ")
    assert f"<!date^{int(NOW)}^{{date_short_pretty}} {{time}}|" in line
    invalid = request_line(_request(None, (), invalid=1))
    assert "`/room None `" not in invalid
    assert invalid.startswith("❌ invalid · `/room")


def test_a_user_with_permissions_sees_them_their_requests_and_rooms() -> None:
    access = Access(
        ALICE, everywhere=("mute-all", "show"), only_in=(("C0INCIDENT", ("lockdown",)),)
    )
    activity = Activity(ALICE, requests=(_request(),), rooms=("room-test", "room-2"))
    view = home_view(access, activity)
    assert view["type"] == "home"
    assert view_problems(view, "home") == []
    text = _text(view)
    assert "In every channel: `mute-all`, `show`" in text
    assert "Only in <#C0INCIDENT>: `lockdown`" in text
    assert "Your last request" in text
    shows = [b["accessory"] for b in view["blocks"] if "accessory" in b]
    assert [(s["action_id"], s["value"]) for s in shows] == [
        (ACTION_HOME_SHOW, "room-test"),
        (ACTION_HOME_SHOW, "room-2"),
    ]


def test_a_user_without_permissions_is_told_how_to_get_access() -> None:
    view = home_view(Access("U0MALLORY"), Activity("U0MALLORY"))
    assert view_problems(view, "home") == []
    text = _text(view)
    assert "You may not run any roombot command yet" in text
    assert "`U0MALLORY`" in text
    assert "ROOMBOT_ALLOWED_USERS" in text
    assert "ROOMBOT_POLICY_FILE" in text
    assert "None yet" in text
    assert "accessory" not in text


def test_rooms_without_show_permission_get_no_button_and_say_why() -> None:
    access = Access(ALICE, everywhere=("mute-all",))
    view = home_view(access, Activity(ALICE, rooms=("room-test",)))
    text = _text(view)
    assert ACTION_HOME_SHOW not in text
    assert "no Show button" in text


def test_an_unreadable_audit_trail_is_said() -> None:
    view = home_view(Access(ALICE, everywhere=("show",)), Activity(ALICE, problem="disk <full>"))
    assert "Could not read the audit trail: disk &lt;full&gt;" in _text(view)


def test_every_verb_many_guardrails_and_ten_requests_of_500_long_rooms_fit() -> None:
    rooms = tuple(f"room-{i:03d}-" + "x" * 39 for i in range(500))
    access = Access(
        ALICE,
        everywhere=EVERY_VERB,
        only_in=tuple((f"C0CHAN{i:04d}", EVERY_VERB) for i in range(40)),
    )
    activity = Activity(
        ALICE,
        requests=tuple(_request("set-custom", rooms, ok=400, failed=100) for _ in range(10)),
        rooms=rooms[:10],
    )
    view = home_view(access, activity)
    assert view_problems(view, "home") == []
    assert len(view["blocks"]) <= blocks.MAX_VIEW_BLOCKS
    assert _text(view).count(ACTION_HOME_SHOW) == 10
    assert "Only in <#C0CHAN0039>" in _text(view)  # every channel is listed, none cut off


_room_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=48)


@_SETTINGS
@given(
    rooms=st.lists(_room_ids, max_size=10, unique=True),
    typed=st.text(st.characters(exclude_categories=["Cs"]), max_size=3000),
)
def test_any_room_ids_and_typed_text_fit(rooms: list[str], typed: str) -> None:
    invalid = RequestSummary("k", None, (), {Outcome.INVALID: 1}, NOW, "slash", typed)
    view = home_view(
        Access(ALICE, everywhere=EVERY_VERB),
        Activity(ALICE, requests=(invalid, _request(rooms=tuple(rooms))), rooms=tuple(rooms)),
    )
    assert view_problems(view, "home") == []
    values = [b["accessory"]["value"] for b in view["blocks"] if "accessory" in b]
    assert values == rooms
