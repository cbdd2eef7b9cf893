"""`bot.wording`: the vocabulary every adapter shares, formatted through a simple test `Style`.

The style marks each of its choices visibly (`[literal]`, `@user`, `#channel`, `*strong*`, `&`
escaped in free text), so each assertion shows which piece went through which choice.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot import wording
from bot.audit import AuditEntry, Outcome
from bot.commands import Command, parse_command
from bot.models import PATCH_FIELDS, RoomInfo, RoomSnapshot
from bot.outcomes import (
    Actor,
    Failure,
    FailureKind,
    Progress,
    RoomResult,
    RoomView,
    RunKind,
    RunResult,
    Source,
)
from bot.policy import Denial
from bot.tencent.errors import hint_for
from bot.wording import Style

S = Style(
    literal=lambda text: f"[{text}]",
    text=lambda text: text.replace("&", "&amp;"),
    user=lambda user_id: f"@{user_id}",
    channel=lambda channel_id: f"#{channel_id}",
    you=lambda user_id: f"You ({user_id})",
    strong=lambda text: f"*{text}*",
)
QUOTING = replace(S, quote=lambda text: f"'{text}'")
ALICE = Actor(user_id="U0ALICE01", source=Source.SLASH, team_id="T0TEAM001", channel_id="C0GEN")


def _ok(
    room: str, changes: dict[str, Any], *, previous: dict[str, Any] | None = None
) -> RoomResult:
    return RoomResult(room_id=room, changes=changes, request_id=f"Id-{room}", previous=previous)


def _failed(room: str, failure: Failure) -> RoomResult:
    return RoomResult(
        room_id=room, changes={"IsAudioDisabled": True}, failure=failure, request_id=None
    )


_GONE = Failure(
    kind=FailureKind.API,
    message="room 'ghost' does not exist",
    hint=hint_for(100004),
    code=100004,
    request_id="Id-gone",
)


def _run(*results: RoomResult, kind: RunKind = RunKind.REQUEST, **fields: Any) -> RunResult:
    rooms = tuple(r.room_id for r in results)
    command = Command("mute-all", rooms, {"IsAudioDisabled": True})
    return RunResult(
        command=command,
        actor=ALICE,
        request_key="k",
        results=list(results),
        kind=kind,
        **fields,
    )


# -- describe_change ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("IsAudioDisabled", True, "audio muted"),
        ("IsAudioDisabled", False, "audio unmuted"),
        ("IsVideoDisabled", True, "video disabled"),
        ("IsVideoDisabled", False, "video enabled"),
        ("IsMessageDisabled", True, "chat disabled"),
        ("IsMessageDisabled", False, "chat enabled"),
        ("IsScreenSharingDisabled", True, "screen sharing disabled"),
        ("IsScreenSharingDisabled", False, "screen sharing enabled"),
        ("IsCloudRecordingDisabled", True, "cloud recording disabled"),
        ("IsCloudRecordingDisabled", False, "cloud recording enabled"),
        ("RoomName", "Q&A bridge", "renamed to “Q&amp;A bridge”"),
        ("MaxMemberCount", 200, "member limit set to 200"),
        ("CustomInfo", "", "custom info cleared"),
        ("CustomInfo", '{"tier":"gold"}', 'custom info set to [{"tier":"gold"}]'),
        ("TakeSeatMode", "FreeToTake", "seat mode set to free (open mic)"),
        ("TakeSeatMode", "ApplyToTake", "seat mode set to apply (mic on request)"),
        ("TakeSeatMode", "A&B", "seat mode set to A&amp;B"),
        ("IsSeatEnabled", True, "IsSeatEnabled set to [true]"),
        ("Mystery", "ü", 'Mystery set to ["ü"]'),
    ],
)
def test_describe_change(name: str, value: Any, said: str) -> None:
    assert wording.describe_change(S, name, value) == said


_SAMPLES: dict[type, Any] = {bool: True, int: 7, str: "x"}


@pytest.mark.parametrize("name", list(PATCH_FIELDS))
def test_every_patch_field_has_its_own_words(name: str) -> None:
    said = wording.describe_change(S, name, _SAMPLES[PATCH_FIELDS[name]])
    assert name not in said  # not the generic "Field set to value" fallback


def test_describe_changes_joins_in_order() -> None:
    said = wording.describe_changes(S, {"IsAudioDisabled": True, "MaxMemberCount": 5})
    assert said == "audio muted, member limit set to 5"


# -- status lines ---------------------------------------------------------------------------------


_WAS_ON = {"IsAudioDisabled": False}


def test_final_status_when_every_room_changed() -> None:
    one = _run(_ok("a", {"IsAudioDisabled": True}, previous=_WAS_ON))
    assert wording.final_status(one) == "✅ done: 1/1 room changed"
    two = _run(
        _ok("a", {"IsAudioDisabled": True}, previous=_WAS_ON),
        _ok("b", {"IsAudioDisabled": True}, previous=_WAS_ON),
    )
    assert wording.final_status(two) == "✅ done: 2/2 rooms changed"


def test_final_status_without_a_read_first_says_set_not_changed() -> None:
    two = _run(_ok("a", {"IsAudioDisabled": True}), _ok("b", {"IsAudioDisabled": True}))
    assert wording.final_status(two) == "✅ done: 2/2 rooms set"


def test_final_status_when_some_rooms_failed() -> None:
    run = _run(
        _ok("a", {"IsAudioDisabled": True}, previous=_WAS_ON),
        _failed("g", _GONE),
        _ok("b", {"IsAudioDisabled": True}, previous={"IsAudioDisabled": True}),
    )
    assert wording.final_status(run) == "⚠️ partly done: 1/3 rooms changed, 1 already so, 1 failed"


def test_final_status_when_every_room_failed() -> None:
    assert wording.final_status(_run(_failed("g", _GONE))) == "❌ failed: no room changed (1 error)"
    both = _run(_failed("g", _GONE), _failed("h", _GONE))
    assert wording.final_status(both) == "❌ failed: no room changed (2 errors)"


def test_final_status_does_not_call_a_noop_a_change() -> None:
    noop = _ok("a", {"IsAudioDisabled": True}, previous={"IsAudioDisabled": True})
    assert noop.noop
    assert wording.final_status(_run(noop)) == "✅ done: 1/1 room already so, nothing changed"


def test_progress_status() -> None:
    assert wording.progress_status(Progress(done=37, failed=0, total=120)) == "⏳ 37/120 done"
    assert (
        wording.progress_status(Progress(done=37, failed=2, total=120))
        == "⏳ 37/120 done, 2 failed"
    )


def test_notes_appear_only_when_they_apply() -> None:
    big = _run(_ok("a", {}), read_before=False)
    note = wording.read_before_note(big)
    assert note is not None
    assert "not read first" in note
    assert "(1 rooms)" in note
    assert wording.read_before_note(_run(_ok("a", {}))) is None
    assert (
        wording.read_before_note(_run(_ok("a", {}), read_before=False, kind=RunKind.RETRY)) is None
    )

    broken = _run(_ok("a", {}), audit_error="disk & I/O error")
    assert wording.audit_failed_note(S, broken) == (
        "⚠️ The audit trail could not be written (disk &amp; I/O error); the results above are "
        "still what Room Engine answered."
    )
    assert wording.audit_failed_note(S, _run(_ok("a", {}))) is None


# -- one room's line ------------------------------------------------------------------------------


def test_room_line_for_a_change() -> None:
    line = wording.room_line(S, _ok("room-test", {"IsAudioDisabled": True}))
    assert line == "✅ [room-test] — audio muted · RequestId [Id-room-test]"


def test_room_line_for_a_noop_says_nothing_changed() -> None:
    result = _ok("room-test", {"IsAudioDisabled": True}, previous={"IsAudioDisabled": True})
    assert wording.room_line(S, result) == (
        "✅ [room-test] — audio muted — it already was, nothing changed · RequestId [Id-room-test]"
    )


def test_room_line_for_a_failure_gives_code_hint_and_request_id() -> None:
    assert wording.room_line(S, _failed("ghost", _GONE)) == (
        "❌ [ghost] — error 100004: room 'ghost' does not exist — check the ID · "
        "RequestId [Id-gone]"
    )


def test_room_line_for_a_failure_without_an_answer() -> None:
    timeout = Failure(
        kind=FailureKind.TIMEOUT,
        message="Room Engine did not answer in time",
        hint="check the room with `/room show` first",
    )
    assert wording.room_line(S, _failed("late", timeout)) == (
        "❌ [late] — Room Engine did not answer in time — check the room with [/room show] "
        "first · no RequestId (Tencent did not answer)"
    )


# -- the head of a request ------------------------------------------------------------------------


def test_request_head_for_a_request() -> None:
    one = parse_command("mute-all room-test")
    assert wording.request_head(S, one, ALICE, RunKind.REQUEST) == (
        "@U0ALICE01 ran [/room mute-all] on 1 room: [room-test]"
    )
    two = parse_command("mute-all a b")
    assert wording.request_head(S, two, ALICE, RunKind.REQUEST) == (
        "@U0ALICE01 ran [/room mute-all] on 2 rooms: [a], [b]"
    )


def test_request_head_for_an_undo_and_a_retry() -> None:
    command = parse_command("mute-all a b")
    assert wording.request_head(S, command, ALICE, RunKind.UNDO) == (
        "↩️ @U0ALICE01 is undoing [/room mute-all] on 2 rooms: [a], [b]"
    )
    one = parse_command("mute-all a")
    assert wording.request_head(S, one, ALICE, RunKind.RETRY) == (
        "🔁 @U0ALICE01 is retrying [/room mute-all] on 1 failed room: [a]"
    )


def test_the_undo_of_a_ban_is_labelled_as_undoing_the_ban() -> None:
    """Issue 27, item 9: it read "undoing /room unban" (the call it makes, not what it undoes)."""
    from bot.commands import Command

    unban = Command(verb="unban", rooms=("room-test",), accounts=("dave",))
    head = wording.request_head(S, unban, ALICE, RunKind.UNDO)
    assert head == "↩️ @U0ALICE01 is undoing [/room ban] on 1 room: [room-test] (account [dave])"
    # An unban the user typed is still an unban.
    assert "ran [/room unban]" in wording.request_head(S, unban, ALICE, RunKind.REQUEST)


def test_many_rooms_are_shortened() -> None:
    rooms = [f"r{i}" for i in range(12)]
    command = parse_command("mute-all " + " ".join(rooms))
    head = wording.request_head(S, command, ALICE, RunKind.REQUEST)
    assert head.endswith("on 12 rooms: " + ", ".join(f"[r{i}]" for i in range(10)) + " and 2 more")


# -- denials --------------------------------------------------------------------------------------


def test_denial_of_an_unknown_verb() -> None:
    denial = Denial("frob", "U0MALLORY", "C0GEN", unknown_verb=True)
    assert wording.denial_sentence(S, denial) == (
        "You (U0MALLORY) cannot run [frob]: it is not a verb this policy knows."
    )


def test_denial_in_a_channel_and_elsewhere() -> None:
    here = Denial("mute-all", "U0MALLORY", "C0GEN")
    assert wording.denial_sentence(S, here) == (
        "You (U0MALLORY) are not allowed to run [mute-all] in this channel. "
        "Ask an admin to add you to a role that allows it."
    )
    nowhere = Denial("mute-all", "U0MALLORY", None)
    assert wording.denial_sentence(S, nowhere).startswith(
        "You (U0MALLORY) are not allowed to run [mute-all] here."
    )


def test_denial_by_a_channel_guardrail() -> None:
    one = Denial(
        "lockdown",
        "U0BOB0001",
        "C0GEN",
        guardrail_roles=("responders",),
        guardrail_channels=("C0INC",),
    )
    assert wording.denial_sentence(S, one) == (
        "You (U0BOB0001) are not allowed to run [lockdown] in this channel. Your role "
        "[responders] allows it only in #C0INC (a channel guardrail): run it there, or ask an "
        "admin for a role that allows it here."
    )
    two = replace(one, guardrail_roles=("a", "b"), guardrail_channels=("C0ONE", "C0TWO"))
    assert "Your roles [a], [b] allow it only in #C0ONE, #C0TWO (a channel guardrail)" in (
        wording.denial_sentence(S, two)
    )


def test_denial_notes_groups_that_could_not_be_checked() -> None:
    denial = Denial(
        "mute-all",
        "U0BOB0001",
        "C0GEN",
        group_problems=("could not check user group S0MODS: ratelimited & retried.",),
        groups_unavailable=True,
    )
    said = wording.denial_sentence(S, denial)
    assert said.endswith(
        "Ask an admin to add you to a role that allows it. Note: could not check user group "
        "S0MODS: ratelimited &amp; retried; try again in a minute. Note: roles granted through "
        "user groups cannot be checked here."
    )


def test_denial_quotes_names_when_the_style_quotes() -> None:
    denial = Denial(
        "lockdown", "U0BOB0001", None, guardrail_roles=("r",), guardrail_channels=("C0X",)
    )
    said = wording.denial_sentence(QUOTING, denial)
    assert "run 'lockdown' here" in said
    assert "Your role 'r' allows" in said


# -- prose ----------------------------------------------------------------------------------------


def test_prose_turns_backticked_literals_through_literal() -> None:
    assert S.prose("run `/room help` & `x&y` now") == "run [/room help] &amp; [x&y] now"


def test_prose_prefers_quote_inside_sentences() -> None:
    assert QUOTING.prose("see `room-test`") == "see 'room-test'"


def test_prose_leaves_unpaired_and_multiline_backticks_as_text() -> None:
    assert S.prose("a ` b & c") == "a ` b &amp; c"
    assert S.prose("`a\nb` & c") == "`a\nb` &amp; c"  # a code span never spans lines


@given(st.text(max_size=60))
def test_prose_with_identity_pieces_gives_the_sentence_back(sentence: str) -> None:
    same = Style(
        literal=lambda text: f"`{text}`",
        text=lambda text: text,
        user=str,
        channel=str,
        you=str,
        strong=str,
    )
    assert same.prose(sentence) == sentence


@given(st.text(alphabet="ab &`\n", max_size=40))
def test_prose_never_passes_a_code_span_through_text(sentence: str) -> None:
    seen: list[str] = []

    def text(part: str) -> str:
        seen.append(part)
        return part

    Style(literal=str, text=text, user=str, channel=str, you=str, strong=str).prose(sentence)
    for part in seen:  # no line of free text still holds a `…` pair
        assert all(line.count("`") < 2 for line in part.split("\n")), part


# -- reads ----------------------------------------------------------------------------------------


def test_room_view_lines() -> None:
    room = RoomInfo.model_validate(
        {
            "RoomId": "room-test",
            "RoomName": "Q&A",
            "Owner_Account": "admin",
            "RoomStatus": "Running",
            "MemberCount": 3,
            "MaxMemberCount": 300,
            "TakeSeatMode": "ApplyToTake",
            "IsAudioDisabled": True,
            "CustomInfo": "gold",
        }
    )
    lines = wording.room_view_lines(S, RoomView("room-test", snapshot=RoomSnapshot(room, "Id-1")))
    assert lines == [
        "*Q&amp;A* ([room-test]) — owner [admin], status Running",
        "members 3/300 · seat mode apply (mic on request)",
        "audio ⛔ muted · video on · chat on · screen sharing on · recording on",
        "custom info: [gold]",
        "RequestId [Id-1]",
    ]
    failed = wording.room_view_lines(S, RoomView("ghost", failure=_GONE))
    assert failed == [
        "❌ [ghost] — error 100004: room 'ghost' does not exist — check the ID · "
        "RequestId [Id-gone]"
    ]


def test_history_line() -> None:
    when = datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC).timestamp()
    entry = AuditEntry(
        id=1,
        created_at=when,
        finished_at=when,
        request_key="k",
        source="slash",
        user_id="U0ALICE01",
        verb="mute-all",
        raw_text="mute-all ghost",
        room_id="ghost",
        team_id=None,
        channel_id=None,
        reason=None,
        patch={"IsAudioDisabled": True},
        previous=None,
        outcome=Outcome.FAILED,
        detail=None,
        undo_of=None,
        error_code=100004,
        error_info="gone",
        tencent_request_id="Id-9",
        latency_ms=3.0,
    )
    assert wording.history_line(S, entry) == (
        "2024-05-01 12:30:05 UTC · @U0ALICE01 · [mute-all] · audio muted · *failed (100004)* · "
        "RequestId [Id-9]"
    )
    denied = replace(entry, outcome=Outcome.DENIED, error_code=None, tencent_request_id=None)
    assert wording.history_line(S, denied).endswith("· [mute-all] · audio muted · *denied*")


def _outside(**overrides: Any) -> AuditEntry:
    when = datetime(2024, 5, 1, 12, 30, 5, tzinfo=UTC).timestamp()
    values: dict[str, Any] = {
        "id": 7,
        "created_at": when,
        "finished_at": when,
        "request_key": "tencent-1",
        "source": "tencent",
        "user_id": "ops-console",
        "verb": "outside-update",
        "raw_text": "Room.CallbackAfterUpdateRoomInfo (OptPlatform Web)",
        "room_id": "room-test",
        "team_id": None,
        "channel_id": None,
        "reason": None,
        "patch": {"IsAudioDisabled": False, "MaxMemberCount": 50},
        "previous": {"IsAudioDisabled": True, "MaxMemberCount": 300},
        "outcome": Outcome.OK,
        "detail": None,
        "undo_of": None,
        "error_code": None,
        "error_info": None,
        "tencent_request_id": None,
        "latency_ms": None,
    }
    values.update(overrides)
    return AuditEntry(**values)


def test_history_marks_changes_made_outside_roombot_with_the_account() -> None:
    assert wording.history_line(S, _outside()) == (
        "2024-05-01 12:30:05 UTC · ⚠️ outside roombot · [ops-console] · [outside-update] · "
        "audio unmuted, member limit set to 50 (was member limit 300)"
    )
    destroyed = _outside(verb="outside-destroy", patch={}, previous={"IsAudioDisabled": True})
    assert wording.history_line(S, destroyed).endswith("· [outside-destroy] · room destroyed")
    created = _outside(verb="outside-create", patch={"RoomName": "x"}, previous=None)
    assert wording.history_line(S, created).endswith("· [outside-create] · room created")
    nothing = _outside(patch={}, previous=None, outcome=Outcome.NOOP)
    assert wording.history_line(S, nothing).endswith("· nothing roombot knew of changed")
    first = _outside(patch={"IsAudioDisabled": True, "RoomName": "A & B"}, previous=None)
    assert wording.history_line(S, first).endswith(
        "· roombot did not know its settings before; now audio muted, name “A &amp; B”"
    )


def test_an_outside_change_line_names_room_operator_platform_and_change() -> None:
    from bot.outcomes import ChangeKind, OutsideChange

    change = OutsideChange(
        kind=ChangeKind.UPDATED,
        room_id="room-test",
        operator="ops-console",
        platform="Web",
        at=0.0,
        changed={"RoomName": "New", "IsVideoDisabled": True},
        before={"RoomName": "Old", "IsVideoDisabled": False},
        reported={"CustomInfo": "ignored when something known changed"},
    )
    assert wording.outside_change_line(S, change) == (
        "⚠️ [room-test] was changed outside roombot by [ops-console] via Web: "
        "renamed to “New” (was name “Old”), video disabled"
    )
    gone = replace(change, kind=ChangeKind.DESTROYED, platform=None, note="unchecked")
    assert wording.outside_change_line(S, gone) == (
        "⚠️ [room-test] was destroyed outside roombot by [ops-console] (unchecked)"
    )


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("IsAudioDisabled", False, "audio on"),
        ("IsScreenSharingDisabled", True, "screen sharing disabled"),
        ("MaxMemberCount", 9, "member limit 9"),
        ("CustomInfo", "", "no custom info"),
        ("CustomInfo", "x", "custom info [x]"),
        ("TakeSeatMode", "FreeToTake", "seat mode free (open mic)"),
        ("TakeSeatMode", "None", "seat mode None"),
        ("Future", [1], "Future [[1]]"),
    ],
)
def test_describe_setting(name: str, value: Any, said: str) -> None:
    assert wording.describe_setting(S, name, value) == said


def test_outside_summary_is_a_core_sentence() -> None:
    assert wording.outside_summary(_outside(patch={"IsAudioDisabled": False})) == (
        "by `ops-console` at 2024-05-01 12:30:05 UTC (audio unmuted)"
    )


# -- wording that repeated or misled (issue 27, item 10) -------------------------------------------


def test_a_failure_does_not_say_the_same_thing_twice() -> None:
    gone = Failure(
        kind=FailureKind.API,
        message="room 'x' does not exist",
        hint=hint_for(100004),
        code=100004,
    )
    line = wording.failure_phrase(S, gone)
    assert line.count("exist") == 1, line
    assert line.startswith("error 100004: room 'x' does not exist — ")
    assert "check the ID" in line
    # Without Tencent's text, the hint says what the code means.
    bare = replace(gone, message="error 100004")
    assert wording.failure_phrase(S, bare) == f"error 100004: {hint_for(100004)}"


def test_a_timeout_says_once_that_nobody_answered() -> None:
    from bot.failures import describe_failure
    from bot.tencent.errors import RequestTimeout

    failure = describe_failure(RequestTimeout("update_room_info: no answer within 5 s"))
    line = wording.failure_phrase(S, failure)
    assert line.count("did not answer") == 1, line
    assert "may or may not have applied" in line


def test_a_read_that_timed_out_does_not_talk_of_a_change() -> None:
    from bot.failures import describe_failure
    from bot.tencent.errors import RequestTimeout

    failure = describe_failure(RequestTimeout("get_room_info: no answer"), reading=True)
    line = wording.failure_phrase(S, failure)
    assert "applied" not in line
    assert "the change" not in line
    assert "nothing was changed" in line


def test_a_failure_keeps_a_hint_that_adds_something() -> None:
    sig = Failure(
        kind=FailureKind.API, message="sig verify failed", hint=hint_for(70003), code=70003
    )
    assert wording.failure_phrase(S, sig) == f"error 70003: sig verify failed — {hint_for(70003)}"


def test_the_history_head_counts_in_words() -> None:
    assert wording.history_head(S, "room-test", 1) == "Last audit entry for [room-test]:"
    assert wording.history_head(S, "room-test", 2) == (
        "Last 2 audit entries for [room-test], newest first:"
    )


@given(st.text(max_size=60), st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_a_failure_always_keeps_what_to_do(message: str, meaning: str, action: str) -> None:
    if " — " in meaning + action or "`" in meaning + action:
        return
    failure = Failure(
        kind=FailureKind.API, message=message, hint=f"{meaning} — {action}", code=100001
    )
    assert wording.failure_phrase(S, failure).endswith(f" {S.prose(action)}")
