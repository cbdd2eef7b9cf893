"""The call types beside `RoomPatch`: a built `MemberCall` or `DestroyCall` is one the API takes."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bot.models import (
    DestroyCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    account_id_problem,
    default_reason,
    reason_problem,
)

KICK: dict[str, Any] = {"api": MemberApi.KICK, "room_id": "r1", "accounts": ("u1",), "reason": "x"}


def test_bodies_carry_only_what_each_api_takes() -> None:
    assert MemberCall(**KICK).body() == {
        "RoomId": "r1",
        "MemberList_Account": ["u1"],
        "Reason": "x",
    }
    ban = MemberCall(api="ban_room_member", room_id="r1", accounts=["u1"], reason="x", duration_s=9)
    assert ban.body() == {
        "RoomId": "r1",
        "MemberList_Account": ["u1"],
        "Reason": "x",
        "Duration": 9,
    }
    unban = MemberCall(api=MemberApi.UNBAN, room_id="r1", accounts=("u1", "u2"))
    assert unban.body() == {"RoomId": "r1", "MemberList_Account": ["u1", "u2"]}
    assert DestroyCall(room_id="r1").body() == {"RoomId": "r1"}


def test_every_call_type_names_its_api() -> None:
    assert MemberCall(**KICK).api == "kick_user_out"
    assert DestroyCall(room_id="r1").api == "destroy_room"
    assert RoomPatch.of("r1", {"IsAudioDisabled": True}).api == "update_room_info"


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"accounts": ()}, "a call carries 1-20 accounts, not 0"),
        ({"accounts": tuple(f"u{i}" for i in range(21))}, "a call carries 1-20 accounts, not 21"),
        ({"accounts": ("u1", "u1")}, "the accounts of a call must be distinct"),
        ({"accounts": ("a b",)}, "must be printable characters without spaces"),
        ({"accounts": ("x" * 33,)}, "is 33 bytes in UTF-8; the limit is 32"),
        ({"room_id": "a b"}, "must be printable ASCII"),
        ({"reason": None}, "kick_user_out requires a Reason"),
        ({"reason": " "}, "a reason cannot be empty"),
        ({"reason": "x" * 1001}, "the reason is 1001 bytes"),
        ({"duration_s": 60}, "kick_user_out takes no Duration"),
        ({"api": MemberApi.BAN}, "ban_room_member requires a Duration of 1-2147483647 seconds"),
        ({"api": MemberApi.BAN, "duration_s": 0}, "requires a Duration"),
        ({"api": MemberApi.UNBAN}, "unban_room_member takes no Reason and no Duration"),
        ({"api": "mute_member"}, "api"),
    ],
)
def test_an_invalid_member_call_cannot_be_built(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        MemberCall(**{**KICK, **changes})


def test_calls_are_frozen_and_refuse_unknown_fields() -> None:
    call = MemberCall(**KICK)
    with pytest.raises(ValidationError):
        call.reason = "y"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        MemberCall(**KICK, extra=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="room ID"):
        DestroyCall(room_id="")


@pytest.mark.parametrize(
    ("account", "problem"),
    [
        ("u1", None),
        ("alice@example.com", None),
        ("会议室-7", None),
        ("x" * 32, None),
        ("会" * 10 + "xx", None),  # 32 bytes
        ("", "an account ID cannot be empty"),
        ("a b", "printable characters without spaces"),
        ("a\tb", "printable characters without spaces"),
        ("a\u200bb", "printable characters without spaces"),
        ("x" * 33, "33 bytes"),
        ("会" * 11, "33 bytes"),
    ],
)
def test_account_id_rule(account: str, problem: str | None) -> None:
    found = account_id_problem(account)
    assert found is None if problem is None else problem in (found or "")


def test_reason_rule_and_default() -> None:
    assert reason_problem("x" * 1000) is None
    assert reason_problem("é" * 500) is None
    assert "1002 bytes" in (reason_problem("é" * 501) or "")
    assert reason_problem("") == "a reason cannot be empty"
    assert default_reason("U012ABCDEF") == "by U012ABCDEF via roombot"
