"""`bot.callbacks`' pure parts: authenticating a callback request, reading it into typed events
(leniently, never with anything but `CallbackInvalid`), folding a room's trail into what roombot
knew, the echo rule's candidates and the difference against what roombot knew."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.audit import AuditEntry, Outcome, Source
from bot.callbacks import (
    OUTSIDE_CREATE,
    OUTSIDE_DESTROY,
    OUTSIDE_UPDATE,
    CallbackInvalid,
    CallbackRefused,
    InFlight,
    Knowledge,
    authenticate,
    callback_sign,
    difference,
    echo_candidates,
    fold_trail,
    outside_conflicts,
    parse_callback,
    room_state,
)
from bot.models import CallbackCommand
from bot.tencent.emulator_callbacks import callback_sign as emulator_sign
from bot.tencent.emulator_callbacks import (
    create_room_body,
    destroy_room_body,
    member_enter_body,
    member_leave_body,
    seat_info_changed_body,
    update_room_info_body,
)

TOKEN = "unit-callback-token-0123456789"
APP = 1400000077
NOW = 1_700_000_000.0
ADMIN = "administrator"
UPDATE = CallbackCommand.UPDATE_ROOM_INFO.value

ROOM: dict[str, Any] = {
    "RoomId": "room-test",
    "RoomName": "Town hall",
    "Owner_Account": "alice",
    "TakeSeatMode": "ApplyToTake",
    "MaxMemberCount": 300,
    "IsVideoDisabled": False,
    "IsAudioDisabled": False,
    "IsMessageDisabled": False,
    "IsScreenSharingDisabled": False,
    "IsCloudRecordingDisabled": False,
    "CustomInfo": "",
}
STATE = {k: v for k, v in ROOM.items() if k not in ("RoomId", "Owner_Account")}


def good_query(**extra: str) -> dict[str, str]:
    return {"token": TOKEN, "SdkAppid": str(APP), "CallbackCommand": UPDATE, **extra}


# -- authentication -------------------------------------------------------------------------------


def test_the_token_and_our_sdkappid_are_enough_without_a_sign() -> None:
    authenticate(good_query(), token=TOKEN, sdkappid=APP, now=NOW)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"SdkAppid": str(APP)}, "no token"),
        ({"token": "", "SdkAppid": str(APP)}, "no token"),
        ({"token": TOKEN[:-1], "SdkAppid": str(APP)}, "wrong token"),
        ({"token": TOKEN + "x", "SdkAppid": str(APP)}, "wrong token"),
        ({"token": "tökén-ünïcode", "SdkAppid": str(APP)}, "wrong token"),
        ({"token": TOKEN}, "no SdkAppid"),
        ({"token": TOKEN, "SdkAppid": "1400000078"}, "another SdkAppid"),
        ({"token": TOKEN, "SdkAppid": f" {APP}"}, "another SdkAppid"),
        ({"token": TOKEN, "SdkAppid": str(APP), "Sign": "ab"}, "must come together"),
        ({"token": TOKEN, "SdkAppid": str(APP), "RequestTime": "1"}, "must come together"),
        (
            {"token": TOKEN, "SdkAppid": str(APP), "Sign": "ab", "RequestTime": "soon"},
            "must come together",
        ),
    ],
)
def test_anything_else_is_refused(query: dict[str, str], reason: str) -> None:
    with pytest.raises(CallbackRefused, match=reason) as info:
        authenticate(query, token=TOKEN, sdkappid=APP, now=NOW)
    assert info.value.status == 401
    assert TOKEN not in str(info.value)


def test_a_sign_is_checked_and_must_be_fresh() -> None:
    def query(at: float, sign: str | None = None) -> dict[str, str]:
        moment = str(int(at))
        return good_query(Sign=sign or callback_sign(TOKEN, moment), RequestTime=moment)

    for skew in (-60, 0, 60):
        authenticate(query(NOW + skew), token=TOKEN, sdkappid=APP, now=NOW)
    authenticate(  # hex in upper case is the same digest
        query(NOW, callback_sign(TOKEN, int(NOW)).upper()), token=TOKEN, sdkappid=APP, now=NOW
    )
    for skew in (-61, 61, -86_400):
        with pytest.raises(CallbackRefused, match="stale RequestTime"):
            authenticate(query(NOW + skew), token=TOKEN, sdkappid=APP, now=NOW)
    wrong = callback_sign("another-token-0123456789", int(NOW))
    with pytest.raises(CallbackRefused, match="wrong Sign"):
        authenticate(query(NOW, wrong), token=TOKEN, sdkappid=APP, now=NOW)
    with pytest.raises(CallbackRefused, match="wrong Sign"):
        authenticate(query(NOW, "not hex at all é"), token=TOKEN, sdkappid=APP, now=NOW)


def test_the_sign_is_the_emulators_and_the_reference_example() -> None:
    assert callback_sign(TOKEN, 1669872112) == emulator_sign(TOKEN, 1669872112)
    # Reference §5: token `xxxx`, RequestTime 1669872112 → sha256 of "xxxx1669872112".
    assert callback_sign("xxxx", "1669872112") == hashlib.sha256(b"xxxx1669872112").hexdigest()


def test_tencents_parameter_names_are_read_in_any_case() -> None:
    query = {"token": TOKEN, "sdkappid": str(APP), "sign": callback_sign(TOKEN, int(NOW))}
    query["requesttime"] = str(int(NOW))
    authenticate(query, token=TOKEN, sdkappid=APP, now=NOW)


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=40), max_size=6))
def test_without_our_token_nothing_is_ever_accepted(query: dict[str, str]) -> None:
    query.pop("token", None)
    with pytest.raises(CallbackRefused):
        authenticate(query, token=TOKEN, sdkappid=APP, now=NOW)


@given(st.text(min_size=1, max_size=80), st.integers(min_value=-60, max_value=60))
def test_only_the_exact_sign_passes(sign: str, skew: int) -> None:
    moment = str(int(NOW) + skew)
    query = good_query(Sign=sign, RequestTime=moment)
    if sign.lower() == callback_sign(TOKEN, moment):
        authenticate(query, token=TOKEN, sdkappid=APP, now=NOW)
    else:
        with pytest.raises(CallbackRefused, match="wrong Sign"):
            authenticate(query, token=TOKEN, sdkappid=APP, now=NOW)


# -- parsing --------------------------------------------------------------------------------------


def _parse(body: dict[str, Any], **query: str) -> Any:
    q = {"CallbackCommand": body["CallbackCommand"], "OptPlatform": "Web", **query}
    return parse_callback(q, json.dumps(body).encode())


def test_an_update_reads_every_settable_field_with_booleans_sent_as_strings() -> None:
    strings = _parse(update_room_info_body("bob", ROOM, 1_700_000_000_123, bools_as_strings=True))
    booleans = _parse(update_room_info_body("bob", ROOM, 1_700_000_000_123, bools_as_strings=False))
    assert strings.event.state == booleans.event.state == STATE
    assert strings.event.room_id == "room-test"
    assert strings.event.operator == "bob"
    assert strings.event.event_ms == 1_700_000_000_123
    assert strings.event.room_level
    assert strings.platform == "Web"
    assert strings.key != booleans.key  # different bodies, different deliveries


def test_numbers_sent_as_strings_are_read_too() -> None:
    assert room_state({"MaxMemberCount": "250", "IsAudioDisabled": "TRUE"}) == {
        "MaxMemberCount": 250,
        "IsAudioDisabled": True,
    }
    assert room_state({"IsVideoDisabled": 1, "RoomName": None}) == {"IsVideoDisabled": True}
    for bad in ({"IsAudioDisabled": "maybe"}, {"MaxMemberCount": "many"}, {"RoomName": 7}):
        with pytest.raises(CallbackInvalid, match=next(iter(bad))):
            room_state(bad)


def test_every_command_parses() -> None:
    created = _parse(create_room_body("ops", {**ROOM, "RoomType": "Conference"}, 1))
    assert (created.event.command, created.event.state) == (CallbackCommand.CREATE_ROOM, STATE)
    destroyed = _parse(destroy_room_body("ops", "room-test", 2))
    assert (destroyed.event.command, destroyed.event.room_id) == (
        CallbackCommand.DESTROY_ROOM,
        "room-test",
    )
    enter = _parse(member_enter_body("u1", "room-test", ["u1"], 5, 3))
    assert (enter.event.member_count, enter.event.accounts, enter.event.room_level) == (
        5,
        ("u1",),
        False,
    )
    leave = _parse(
        member_leave_body("u1", "room-test", ["u1"], 4, 4, leave_type="Kicked", reason="spam")
    )
    assert (leave.event.leave_type, leave.event.member_count) == ("Kicked", 4)
    seats = _parse(seat_info_changed_body("u1", "room-test", [{"Index": 0}, {"Index": 1}], 5))
    assert (seats.event.seats, seats.event.room_level) == (2, False)


def test_the_command_may_come_from_the_body_alone() -> None:
    body = destroy_room_body("ops", "room-test", 2)
    delivery = parse_callback({}, json.dumps(body).encode())
    assert delivery.event.command is CallbackCommand.DESTROY_ROOM
    assert delivery.platform is None


@pytest.mark.parametrize(
    ("query", "body", "problem"),
    [
        ({}, b"{not json", "not JSON"),
        ({}, b"\xff\xfe", "not JSON"),
        ({}, b"[1, 2]", "not a JSON object"),
        ({}, b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        ({}, b'{"RoomId": "r1"}', "no CallbackCommand"),
        ({"CallbackCommand": "Room.CallbackUpdateRoomInfo"}, b"{}", "unknown CallbackCommand"),
        ({}, b'{"CallbackCommand": 7}', "not a string"),
        (
            {"CallbackCommand": UPDATE},
            b'{"CallbackCommand": "Room.CallbackAfterDestroyRoom"}',
            "differs",
        ),
        ({"CallbackCommand": UPDATE}, b'{"RoomId": "r1"}', "RoomInfo is missing"),
        ({"CallbackCommand": UPDATE}, b'{"RoomInfo": {}}', "RoomId is missing"),
        ({"CallbackCommand": UPDATE}, b'{"RoomInfo": {"RoomId": "a b"}}', "not a valid room"),
        ({"CallbackCommand": "Room.CallbackAfterDestroyRoom"}, b"{}", "RoomId is missing"),
    ],
)
def test_unreadable_callbacks_are_invalid(query: dict[str, str], body: bytes, problem: str) -> None:
    with pytest.raises(CallbackInvalid, match=problem) as info:
        parse_callback(query, body)
    assert info.value.status == 400


@given(st.binary(max_size=300), st.sampled_from([None, UPDATE, "Mic.CallbackAfterSeatInfoChanged"]))
def test_any_body_is_read_or_invalid_never_a_crash(body: bytes, command: str | None) -> None:
    query = {} if command is None else {"CallbackCommand": command}
    with contextlib.suppress(CallbackInvalid):
        parse_callback(query, body)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@given(st.dictionaries(st.sampled_from([*STATE, "RoomId", "Extra"]), json_values, max_size=8))
def test_any_json_room_info_is_read_or_invalid(info: dict[str, Any]) -> None:
    body = {"CallbackCommand": UPDATE, "RoomInfo": info, "EventTime": 1}
    try:
        delivery = parse_callback({}, json.dumps(body).encode())
    except CallbackInvalid:
        return
    assert set(delivery.event.state) <= set(STATE)


@given(st.permutations(list(ROOM)))
def test_the_key_of_a_delivery_ignores_key_order(order: list[str]) -> None:
    body = update_room_info_body("bob", ROOM, 5, bools_as_strings=True)
    shuffled = {**body, "RoomInfo": {k: body["RoomInfo"][k] for k in order}}
    assert _parse(shuffled).key == _parse(body).key


def test_the_key_changes_with_the_event() -> None:
    first = _parse(update_room_info_body("bob", ROOM, 5, bools_as_strings=True))
    later = _parse(update_room_info_body("bob", ROOM, 6, bools_as_strings=True))
    assert first.key != later.key
    assert first.key.startswith("callback:")
    member = _parse(member_enter_body("u1", "room-test", ["u1"], 5, 3))
    assert member.key == ""  # never stored, so never de-duplicated: no hashing


# -- what roombot knew ----------------------------------------------------------------------------

_ids = iter(range(1, 10_000))


def row(
    *,
    source: str = "slash",
    verb: str | None = "mute-all",
    patch: dict[str, Any] | None = None,
    previous: dict[str, Any] | None = None,
    outcome: Outcome = Outcome.OK,
    created_at: float = NOW,
    error_code: int | None = None,
    user_id: str = "U0ALICE01",
) -> AuditEntry:
    return AuditEntry(
        id=next(_ids),
        created_at=created_at,
        finished_at=None,
        request_key="k",
        source=source,
        user_id=user_id,
        verb=verb,
        raw_text="",
        room_id="room-test",
        team_id=None,
        channel_id=None,
        reason=None,
        patch=patch,
        previous=previous,
        outcome=outcome,
        detail=None,
        undo_of=None,
        error_code=error_code,
        error_info=None,
        tencent_request_id=None,
        latency_ms=None,
    )


def fold(rows: list[AuditEntry], matched: tuple[int, ...] = (), now: float = NOW) -> Knowledge:
    return fold_trail(rows, matched=matched, now=now, window_s=30)


def test_a_confirmed_request_teaches_what_it_read_and_set() -> None:
    mute = row(patch={"IsAudioDisabled": True}, previous={"IsAudioDisabled": False})
    knowledge = fold([mute], now=NOW + 31)  # old enough to be out of flight
    assert knowledge.state == {"IsAudioDisabled": True}
    assert knowledge.in_flight == ()


def test_recent_requests_that_may_have_applied_are_in_flight_until_matched() -> None:
    pending = row(patch={"IsAudioDisabled": True}, outcome=Outcome.PENDING)
    lost = row(patch={"IsVideoDisabled": True}, outcome=Outcome.FAILED, error_code=None)
    refused = row(patch={"IsMessageDisabled": True}, outcome=Outcome.FAILED, error_code=100004)
    kick = row(verb="kick", patch={"Member_Account": "bob"})
    knowledge = fold([pending, lost, refused, kick])
    assert [f.row_id for f in knowledge.in_flight] == [pending.id, lost.id]
    assert knowledge.state == {}  # none of them is known to be in place
    matched = fold([pending, lost, refused, kick], matched=(pending.id,))
    assert [f.row_id for f in matched.in_flight] == [lost.id]
    assert matched.state == {"IsAudioDisabled": True}  # an echo confirmed it


def test_callback_rows_teach_what_they_reported_and_destruction_forgets() -> None:
    created = row(source=Source.TENCENT, verb=OUTSIDE_CREATE, patch=dict(STATE))
    changed = row(
        source=Source.TENCENT,
        verb=OUTSIDE_UPDATE,
        patch={"IsAudioDisabled": True},
        previous={"IsAudioDisabled": False},
    )
    assert fold([created, changed]).state == {**STATE, "IsAudioDisabled": True}
    gone = row(source=Source.TENCENT, verb=OUTSIDE_DESTROY, patch={}, previous=dict(STATE))
    knowledge = fold([created, changed, gone])
    assert knowledge.state == {}
    assert knowledge.destroyed


def test_an_echo_seen_by_this_process_teaches_the_whole_room() -> None:
    mute = row(patch={"IsAudioDisabled": True}, previous={"IsAudioDisabled": False})
    later = row(patch={"IsVideoDisabled": True}, previous={"IsVideoDisabled": False})
    echoed = {mute.id: {**STATE, "IsAudioDisabled": True}}
    knowledge = fold_trail(
        [mute, later], matched=(mute.id, later.id), now=NOW + 60, window_s=30, echoed=echoed
    )
    assert knowledge.state == {**STATE, "IsAudioDisabled": True, "IsVideoDisabled": True}


def _update(state: dict[str, Any], operator: str = ADMIN, platform: str = "RESTAPI") -> Any:
    body = update_room_info_body(operator, {**ROOM, **state}, 9, bools_as_strings=True)
    return _parse(body, OptPlatform=platform)


def test_an_echo_needs_our_admin_the_rest_api_and_a_matching_request() -> None:
    mute = InFlight(1, {"IsAudioDisabled": True}, {"IsAudioDisabled": False})
    knowledge = Knowledge(state=dict(STATE), in_flight=(mute,))
    echo = _update({"IsAudioDisabled": True})
    assert echo_candidates(echo.event, echo.platform, knowledge, admin_id=ADMIN) == [mute]
    by_someone = _update({"IsAudioDisabled": True}, operator="ops")
    assert echo_candidates(by_someone.event, by_someone.platform, knowledge, admin_id=ADMIN) == []
    from_web = _update({"IsAudioDisabled": True}, platform="Web")
    assert echo_candidates(from_web.event, from_web.platform, knowledge, admin_id=ADMIN) == []
    other_value = _update({"IsAudioDisabled": False})
    assert echo_candidates(other_value.event, "RESTAPI", knowledge, admin_id=ADMIN) == []
    # our admin, our value, but a field roombot knew changed as well: someone else's change
    more = _update({"IsAudioDisabled": True, "IsVideoDisabled": True})
    assert echo_candidates(more.event, "RESTAPI", knowledge, admin_id=ADMIN) == []


def test_two_requests_in_flight_explain_each_others_fields() -> None:
    mute = InFlight(1, {"IsAudioDisabled": True}, {"IsAudioDisabled": False})
    video = InFlight(2, {"IsVideoDisabled": True}, {"IsVideoDisabled": False})
    knowledge = Knowledge(
        state={**STATE, "IsAudioDisabled": True, "IsVideoDisabled": True}, in_flight=(mute, video)
    )
    first = _update({"IsAudioDisabled": True, "IsVideoDisabled": False})
    assert echo_candidates(first.event, "RESTAPI", knowledge, admin_id=ADMIN) == [mute]
    second = _update({"IsAudioDisabled": True, "IsVideoDisabled": True})
    assert echo_candidates(second.event, "RESTAPI", knowledge, admin_id=ADMIN) == [mute, video]


def test_a_destroy_echoes_only_a_destroy() -> None:
    destroy = InFlight(3, {}, {}, destroys=True)
    mute = InFlight(4, {"IsAudioDisabled": True}, {})
    gone = _parse(destroy_room_body(ADMIN, "room-test", 1), OptPlatform="RESTAPI")
    knowledge = Knowledge(in_flight=(mute, destroy))
    assert echo_candidates(gone.event, "RESTAPI", knowledge, admin_id=ADMIN) == [destroy]


def test_the_difference_counts_only_what_roombot_cannot_explain() -> None:
    mute = InFlight(1, {"IsAudioDisabled": True}, {"IsAudioDisabled": False})
    knowledge = Knowledge(
        state={"IsAudioDisabled": False, "MaxMemberCount": 300, "IsVideoDisabled": False},
        in_flight=(mute,),
    )
    diff = difference(
        {"IsAudioDisabled": False, "MaxMemberCount": 50, "IsVideoDisabled": 0, "RoomName": "x"},
        knowledge,
    )
    # audio: roombot's own mute may not have applied yet; video: 0 is not False.
    assert diff.changed == {"MaxMemberCount": 50, "IsVideoDisabled": 0}
    assert diff.before == {"MaxMemberCount": 300, "IsVideoDisabled": False}
    assert diff.reported == {"RoomName": "x"}
    assert not diff.empty
    assert difference({"MaxMemberCount": 300}, knowledge).empty


def test_undo_conflicts_are_later_outside_changes_to_its_fields() -> None:
    before = row(source=Source.TENCENT, verb=OUTSIDE_UPDATE, patch={"IsAudioDisabled": False})
    request = row(patch={"IsAudioDisabled": True}, previous={"IsAudioDisabled": False})
    video = row(source=Source.TENCENT, verb=OUTSIDE_UPDATE, patch={"IsVideoDisabled": True})
    nothing = row(source=Source.TENCENT, verb=OUTSIDE_UPDATE, patch={}, outcome=Outcome.NOOP)
    ours = row(patch={"IsAudioDisabled": False})  # roombot's own: the read before undo sees it
    audio = row(source=Source.TENCENT, verb=OUTSIDE_UPDATE, patch={"IsAudioDisabled": False})
    again = row(source=Source.TENCENT, verb=OUTSIDE_UPDATE, patch={"IsAudioDisabled": True})
    trail = [again, audio, ours, nothing, video, request, before]  # newest first, as queried
    fields = ["IsAudioDisabled"]
    assert outside_conflicts(trail, after_row=request.id, fields=fields) == [audio, again]
    assert outside_conflicts(trail, after_row=again.id, fields=fields) == []
    assert outside_conflicts([video, nothing], after_row=0, fields=fields) == []
    recreated = row(source=Source.TENCENT, verb=OUTSIDE_CREATE, patch={"RoomName": "x"})
    assert outside_conflicts([recreated], after_row=0, fields=fields) == [recreated]


# -- account IDs from outside are bounded and checked (issue 27, item 2) -------------------------

FORGED_OPERATOR = "ops\n2026-01-01 00:00:00,000 INFO bot: \x1b[31mforged\x1b[0m"


@pytest.mark.parametrize(
    "operator",
    [FORGED_OPERATOR, "a" * 33, "with space", "bidi\u202eevil", "", 42, None, ["ops"]],
    ids=["newline-ansi", "33-bytes", "space", "bidi", "empty", "number", "null", "list"],
)
def test_an_operator_that_is_no_account_id_is_not_taken_as_one(operator: Any) -> None:
    from bot.callbacks import UNKNOWN_OPERATOR

    body = update_room_info_body("bob", ROOM, 5, bools_as_strings=True)
    body["Operator_Account"] = operator
    event = _parse(body).event
    assert event.operator == UNKNOWN_OPERATOR
    assert event.state == STATE  # the change itself is still read


def test_a_valid_operator_of_32_bytes_is_kept() -> None:
    body = destroy_room_body("é" * 16, "room-test", 2)
    assert _parse(body).event.operator == "é" * 16


def test_member_accounts_that_are_no_account_ids_are_dropped() -> None:
    body = member_enter_body("u1", "room-test", ["u1", FORGED_OPERATOR, "b" * 40, "u2"], 5, 3)
    body["MemberList_Account"].insert(3, 7)
    assert _parse(body).event.accounts == ("u1", "u2")


@given(st.text(max_size=50))
def test_whatever_the_operator_it_is_a_bounded_printable_id(operator: str) -> None:
    from bot.models import account_id_problem

    body = destroy_room_body(operator, "room-test", 2)
    kept = _parse(body).event.operator
    assert len(kept.encode()) <= 32 or kept.startswith("(")
    assert kept.isprintable()
    assert kept == operator or account_id_problem(operator) is not None


def test_query_values_that_are_not_printable_are_dropped() -> None:
    body = destroy_room_body("ops", "room-test", 2)
    delivery = _parse(body, OptPlatform="Web\n\x1b[31mX", ClientIP="203.0.113.9\u202e")
    assert (delivery.platform, delivery.client_ip) == (None, None)
    assert _parse(body, OptPlatform="RESTAPI" * 20).platform == ("RESTAPI" * 20)[:64]


@given(st.text(max_size=700), st.sampled_from(["RoomName", "CustomInfo", "TakeSeatMode"]))
def test_a_reported_text_is_kept_within_room_engines_limit(text: str, name: str) -> None:
    from bot.models import utf8_len

    limit = {"RoomName": 100, "CustomInfo": 500, "TakeSeatMode": 32}[name]
    kept = room_state({name: text})[name]
    assert utf8_len(kept) <= limit
    if utf8_len(text) <= limit:
        assert kept == text
    else:
        assert kept.endswith("…")
        assert text.startswith(kept.removesuffix("…"))
