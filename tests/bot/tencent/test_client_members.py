"""The client's member and callback-configuration calls against `httpx.MockTransport`."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.models import BannedMember, CallbackConfig, MemberPage, RoomMember
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator_members import RoomMembers
from bot.tencent.errors import ApiError, MalformedResponse, RequestTimeout, TransportError
from tests.bot.tencent.test_client import Recorder, fail, make_client, ok

Call = Callable[[RoomEngineClient], Awaitable[Any]]
_PROPS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
UPDATE = "Room.CallbackAfterUpdateRoomInfo"
_CB_URL = "https://x.example/cb"


def body_of(request: httpx.Request) -> Any:
    return json.loads(request.content)


# -- what goes on the wire ----------------------------------------------------------------------


_WIRE: list[tuple[Call, str, dict[str, Any], httpx.Response]] = [
    (
        lambda c: c.get_room_member_list("r1"),
        "/v4/room_engine_http_srv/get_room_member_list",
        {"RoomId": "r1", "Count": 50, "Next": ""},
        ok(Response={"Next": "", "MemberList": []}),
    ),
    (
        lambda c: c.get_room_member_list("r1", count=7, next_cursor="abc"),
        "/v4/room_engine_http_srv/get_room_member_list",
        {"RoomId": "r1", "Count": 7, "Next": "abc"},
        ok(Response={"Next": "", "MemberList": []}),
    ),
    (
        lambda c: c.kick_user_out("r1", ["u1", "u2"], "spam ☃"),
        "/v4/room_engine_http_srv/kick_user_out",
        {"RoomId": "r1", "MemberList_Account": ["u1", "u2"], "Reason": "spam ☃"},
        ok(),
    ),
    (
        lambda c: c.ban_room_member("r1", ("u1",), "abuse", 3600),
        "/v4/room_engine_http_srv/ban_room_member",
        {"RoomId": "r1", "MemberList_Account": ["u1"], "Reason": "abuse", "Duration": 3600},
        ok(),
    ),
    (
        lambda c: c.unban_room_member("r1", ["u1"]),
        "/v4/room_engine_http_srv/unban_room_member",
        {"RoomId": "r1", "MemberList_Account": ["u1"]},
        ok(),
    ),
    (
        lambda c: c.get_banned_member_list("r1", limit=20, offset=40),
        "/v4/room_engine_http_srv/get_banned_member_list",
        {"RoomId": "r1", "Limit": 20, "Offset": 40},
        ok(Response={"BannedAccountList": [], "NextOffset": 0}),
    ),
    (
        lambda c: c.set_callback("https://bot.example/cb?token=t", [UPDATE]),
        "/v4/room_config/set_callback",
        {"Url": "https://bot.example/cb?token=t", "CallbackCommandList": [UPDATE]},
        ok(),
    ),
    (
        lambda c: c.update_callback("https://bot.example/cb", (UPDATE,)),
        "/v4/room_config/update_callback",
        {"Url": "https://bot.example/cb", "CallbackCommandList": [UPDATE]},
        ok(),
    ),
    (lambda c: c.get_callback(), "/v4/room_config/get_callback", {}, ok()),
    (lambda c: c.delete_callback(), "/v4/room_config/delete_callback", {}, ok()),
]


@pytest.mark.parametrize(("invoke", "path", "body", "answer"), _WIRE)
async def test_requests_are_built_exactly(
    invoke: Call, path: str, body: dict[str, Any], answer: httpx.Response
) -> None:
    recorder = Recorder(answer)
    async with make_client(recorder) as client:
        await invoke(client)
    (request,) = recorder.requests
    assert request.url.path == path
    assert set(request.url.params) == {"sdkappid", "identifier", "usersig", "random", "contenttype"}
    assert body_of(request) == body


# -- arguments the client refuses before calling anything -------------------------------------


@pytest.mark.parametrize(
    ("invoke", "message"),
    [
        (lambda c: c.kick_user_out("r", "alice", "x"), "one string"),
        (lambda c: c.kick_user_out("r", [], "x"), "at least one"),
        (lambda c: c.kick_user_out("r", [f"u{n}" for n in range(21)], "x"), "at most 20"),
        (lambda c: c.kick_user_out("r", ["u1", "u1"], "x"), "more than once"),
        (lambda c: c.kick_user_out("r", ["u1", ""], "x"), "non-empty"),
        (lambda c: c.kick_user_out("r", ["u1"], ""), "reason"),
        (lambda c: c.kick_user_out("r", ["u1"], "é" * 501), "1000 bytes"),
        (lambda c: c.ban_room_member("r", ["u1"], "x", 0), "duration_s"),
        (lambda c: c.ban_room_member("r", ["u1"], "x", -60), "duration_s"),
        (lambda c: c.ban_room_member("r", ["u1"], "x", True), "duration_s"),
        (lambda c: c.ban_room_member("r", ["u1"], "x", 2**31), "duration_s"),
        (lambda c: c.ban_room_member("r", ["u1"], "", 60), "reason"),
        (lambda c: c.unban_room_member("r", [f"u{n}" for n in range(21)]), "at most 20"),
        (lambda c: c.get_room_member_list("r", count=0), "count"),
        (lambda c: c.get_banned_member_list("r", limit=0), "limit"),
        (lambda c: c.get_banned_member_list("r", limit=101), "limit"),
        (lambda c: c.get_banned_member_list("r", offset=-1), "offset"),
        (lambda c: c.get_room_members("r", max_members=0), "max_members"),
        (lambda c: c.get_banned_members("r", page_size=101), "page_size"),
        (lambda c: c.set_callback("", [UPDATE]), "URL"),
        (lambda c: c.update_callback("https://x.example/cb", UPDATE), "one string"),
    ],
)
async def test_bad_arguments_raise_value_error_without_a_call(invoke: Call, message: str) -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        with pytest.raises(ValueError, match=message):
            await invoke(client)
    assert recorder.requests == []


async def test_twenty_accounts_and_1000_bytes_are_allowed() -> None:
    recorder = Recorder(ok())
    async with make_client(recorder) as client:
        await client.kick_user_out("r", [f"u{n}" for n in range(20)], "é" * 500)
    assert len(body_of(recorder.requests[0])["MemberList_Account"]) == 20


# -- reading the answers --------------------------------------------------------------------------


async def test_member_page_is_parsed_leniently() -> None:
    members = [
        {
            "Member_Account": "user2",
            "NameCard": "123",
            "Role": "RoomOwner",  # Tencent's sample; the field table says Owner
            "Marks": [1000, 1002, 1003],
            "CustomInfo": "",
        },
        {"Member_Account": "user3", "Role": "Admin", "Extra": "ignored"},
        {"Member_Account": "user4", "Role": "Member"},
    ]
    recorder = Recorder(ok("Id-m-O-Seq-1", Response={"Next": "cur-2", "MemberList": members}))
    async with make_client(recorder) as client:
        page = await client.get_room_member_list("r1")
    assert page == MemberPage(
        members=(
            RoomMember("user2", "123", "Owner", (1000, 1002, 1003), ""),
            RoomMember("user3", "", "Admin"),
            RoomMember("user4", "", "Member"),
        ),
        next_cursor="cur-2",
        request_id="Id-m-O-Seq-1",
    )
    assert not page.done


@pytest.mark.parametrize(
    "response",
    [
        {"MemberList": []},  # no Next: the last page
        {},  # neither: an empty room
    ],
)
async def test_missing_member_fields_mean_empty_and_done(response: dict[str, Any]) -> None:
    async with make_client(Recorder(ok(Response=response))) as client:
        page = await client.get_room_member_list("r1")
    assert (page.members, page.done) == ((), True)


@pytest.mark.parametrize(
    ("invoke", "response"),
    [
        (lambda c: c.get_room_member_list("r"), None),
        (lambda c: c.get_room_member_list("r"), {"MemberList": [{"NameCard": "no account"}]}),
        (lambda c: c.get_room_member_list("r"), {"MemberList": "nope"}),
        (lambda c: c.get_room_member_list("r"), {"Next": 5, "MemberList": []}),
        (lambda c: c.get_room_member_list("r"), {"MemberList": [{"Member_Account": ""}]}),
        (lambda c: c.get_banned_member_list("r"), None),
        (
            lambda c: c.get_banned_member_list("r"),
            {"BannedAccountList": [{"Member_Account": "u1", "BannedUntil": "soon"}]},
        ),
        (lambda c: c.get_banned_member_list("r"), {"BannedAccountList": [], "NextOffset": -1}),
        (lambda c: c.get_callback(), {"Url": 5}),
        (lambda c: c.get_callback(), {"Url": "https://x.example", "CallbackCommandList": "all"}),
    ],
)
async def test_answers_that_do_not_fit_are_malformed(
    invoke: Call, response: dict[str, Any] | None
) -> None:
    answer = ok("Id-bad-O-Seq-1") if response is None else ok("Id-bad-O-Seq-1", Response=response)
    recorder = Recorder(answer)
    async with make_client(recorder) as client:
        with pytest.raises(MalformedResponse) as excinfo:
            await invoke(client)
    assert excinfo.value.request_id == "Id-bad-O-Seq-1"
    assert len(recorder.requests) == 1


async def test_banned_page_is_parsed() -> None:
    bans = [{"Member_Account": "user2", "BannedUntil": 1703559417}]
    recorder = Recorder(ok("Id-b-O-Seq-1", Response={"BannedAccountList": bans, "NextOffset": 0}))
    async with make_client(recorder) as client:
        page = await client.get_banned_member_list("r1")
    assert page.members == (BannedMember("user2", 1703559417),)
    assert page.done
    assert page.request_id == "Id-b-O-Seq-1"


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (fail(100301, "callback configuration does not exist"), None),
        (ok(), None),  # success without a Response
        (ok(Response={"Url": "", "CallbackCommandList": []}), None),
        (
            ok("Id-cb-O-Seq-1", Response={"Url": _CB_URL, "CallbackCommandList": [UPDATE]}),
            CallbackConfig(_CB_URL, (UPDATE,), "Id-cb-O-Seq-1"),
        ),
    ],
)
async def test_get_callback(answer: httpx.Response, expected: CallbackConfig | None) -> None:
    async with make_client(Recorder(answer)) as client:
        assert await client.get_callback() == expected


async def test_get_callback_raises_other_errors() -> None:
    async with make_client(Recorder(fail(70009, "bad key"))) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.get_callback()
    assert excinfo.value.code == 70009


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (100005, "not a member"),
        (100006, "permission"),
        (100300, "update it"),
        (100301, "roombot callbacks install"),
    ],
)
async def test_new_codes_carry_hints(code: int, hint: str) -> None:
    async with make_client(Recorder(fail(code))) as client:
        with pytest.raises(ApiError) as excinfo:
            await client.delete_callback()
    assert hint in excinfo.value.hint


# -- which calls are retried ------------------------------------------------------------------

_IDEMPOTENT: list[Call] = [
    lambda c: c.get_room_member_list("r"),
    lambda c: c.get_banned_member_list("r"),
    lambda c: c.get_callback(),
    lambda c: c.update_callback("https://x.example/cb", [UPDATE]),
]
_ONCE_ONLY: list[Call] = [
    lambda c: c.kick_user_out("r", ["u1"], "x"),
    lambda c: c.ban_room_member("r", ["u1"], "x", 60),
    lambda c: c.unban_room_member("r", ["u1"]),
    lambda c: c.set_callback("https://x.example/cb", [UPDATE]),
    lambda c: c.delete_callback(),
    lambda c: c.destroy_room("r"),
    lambda c: c.create_room("r"),
]
_GOOD = ok(
    Response={
        "Next": "",
        "MemberList": [],
        "BannedAccountList": [],
        "NextOffset": 0,
        "Url": "https://x.example/cb",
        "CallbackCommandList": [UPDATE],
    }
)
_AMBIGUOUS: list[httpx.Response | Exception] = [
    fail(100001),
    httpx.Response(502),
    httpx.ReadTimeout("slow"),
    httpx.RemoteProtocolError("reset mid-answer"),
]
_CERTAINLY_NOT_APPLIED: list[httpx.Response | Exception] = [
    fail(60007),
    fail(60018),
    httpx.ConnectError("refused"),
]


@pytest.mark.parametrize("first", _AMBIGUOUS)
@pytest.mark.parametrize("invoke", _IDEMPOTENT)
async def test_idempotent_calls_retry_any_transient_failure(
    invoke: Call, first: httpx.Response | Exception
) -> None:
    recorder = Recorder(first, _GOOD)
    async with make_client(recorder) as client:
        await invoke(client)
    assert len(recorder.requests) == 2


@pytest.mark.parametrize("first", _AMBIGUOUS)
@pytest.mark.parametrize("invoke", _ONCE_ONLY)
async def test_other_calls_are_not_repeated_when_they_may_have_applied(
    invoke: Call, first: httpx.Response | Exception
) -> None:
    recorder = Recorder(first, _GOOD)
    async with make_client(recorder) as client:
        with pytest.raises((ApiError, TransportError)) as excinfo:
            await invoke(client)
    assert len(recorder.requests) == 1
    if isinstance(excinfo.value, RequestTimeout):
        assert "may or may not have applied" in excinfo.value.hint


@pytest.mark.parametrize("first", _CERTAINLY_NOT_APPLIED)
@pytest.mark.parametrize("invoke", _ONCE_ONLY)
async def test_every_call_retries_what_certainly_did_not_apply(
    invoke: Call, first: httpx.Response | Exception
) -> None:
    recorder = Recorder(first, _GOOD)
    async with make_client(recorder) as client:
        await invoke(client)
    assert len(recorder.requests) == 2


# -- the whole-list helpers ------------------------------------------------------------------


def member_server(
    room: RoomMembers, *, request_ids: list[str] | None = None
) -> Callable[[httpx.Request], httpx.Response]:
    """Answers get_room_member_list from a `RoomMembers` (the emulator's own paging)."""

    def answer(request: httpx.Request) -> httpx.Response:
        body = body_of(request)
        page, cursor = room.page(body["Count"], body["Next"])
        request_id = f"Id-p{len(request_ids or [])}-O-Seq-1"
        if request_ids is not None:
            request_ids.append(request_id)
        return ok(request_id, Response={"Next": cursor, "MemberList": page})

    return answer


@_PROPS
@given(
    total=st.integers(min_value=0, max_value=120),
    page_size=st.integers(min_value=1, max_value=60),
    cap=st.integers(min_value=1, max_value=150),
)
async def test_get_room_members_returns_each_member_once_up_to_the_cap(
    total: int, page_size: int, cap: int
) -> None:
    room = RoomMembers(owner="u0")
    for n in range(total):
        room.add(f"u{n}")
    ids: list[str] = []
    recorder = Recorder(member_server(room, request_ids=ids))
    async with make_client(recorder) as client:
        listing = await client.get_room_members("r", max_members=cap, page_size=page_size)
    accounts = [m.account for m in listing.members]
    assert accounts == [f"u{n}" for n in range(min(total, cap))]
    assert listing.truncated == (total > cap)
    assert (listing.next_cursor != "") == listing.truncated
    assert listing.request_ids == tuple(ids)
    counts = [body_of(r)["Count"] for r in recorder.requests]
    assert all(1 <= count <= page_size for count in counts)
    assert sum(counts) <= max(cap, page_size)  # never asks for more than it will keep


async def test_a_truncated_listing_can_be_continued() -> None:
    room = RoomMembers(owner="u0")
    for n in range(10):
        room.add(f"u{n}")
    async with make_client(Recorder(member_server(room))) as client:
        first = await client.get_room_members("r", max_members=4, page_size=3)
        rest = await client.get_room_member_list("r", count=50, next_cursor=first.next_cursor)
    assert [m.account for m in first.members + rest.members] == [f"u{n}" for n in range(10)]


async def test_members_listed_twice_are_kept_once() -> None:
    pages = [_page("Id-1", "c1", "a"), _page("Id-2", "c2", "a", "b"), _page("Id-3", "", "c")]
    async with make_client(Recorder(*pages)) as client:
        listing = await client.get_room_members("r")
    assert [m.account for m in listing.members] == ["a", "b", "c"]
    assert listing.request_ids == ("Id-1", "Id-2", "Id-3")
    assert not listing.truncated


def _page(request_id: str, cursor: str, *accounts: str) -> httpx.Response:
    members = [{"Member_Account": account} for account in accounts]
    return ok(request_id, Response={"Next": cursor, "MemberList": members})


async def test_a_repeated_cursor_is_malformed() -> None:
    # The same cursor again: following it would go round forever.
    recorder = Recorder(_page("Id-1", "c1", "a"), _page("Id-2", "c1", "b"))
    async with make_client(recorder) as client:
        with pytest.raises(MalformedResponse, match="does not advance") as excinfo:
            await client.get_room_members("r")
    assert excinfo.value.request_id == "Id-2"
    assert len(recorder.requests) == 2


async def test_new_cursors_without_new_members_give_up() -> None:
    cursors = iter(range(10_000))

    def empty_page(request: httpx.Request) -> httpx.Response:
        return _page("Id-n", f"c-new-{next(cursors)}")

    recorder = Recorder(_page("Id-1", "c1", "a"), empty_page)
    async with make_client(recorder) as client:
        with pytest.raises(MalformedResponse, match="does not advance"):
            await client.get_room_members("r")
    assert len(recorder.requests) == 4  # the first page, then three that added nobody


@_PROPS
@given(
    total=st.integers(min_value=0, max_value=250),
    page_size=st.integers(min_value=1, max_value=100),
    cap=st.integers(min_value=1, max_value=300),
)
async def test_get_banned_members_returns_each_ban_once_up_to_the_cap(
    total: int, page_size: int, cap: int
) -> None:
    bans = [{"Member_Account": f"u{n}", "BannedUntil": 1_700_000_000 + n} for n in range(total)]

    def answer(request: httpx.Request) -> httpx.Response:
        body = body_of(request)
        limit, offset = body["Limit"], body["Offset"]
        assert 1 <= limit <= 100
        nxt = offset + limit if offset + limit < total else 0
        return ok(Response={"BannedAccountList": bans[offset : offset + limit], "NextOffset": nxt})

    async with make_client(Recorder(answer)) as client:
        listing = await client.get_banned_members("r", max_members=cap, page_size=page_size)
    assert [b.account for b in listing.members] == [f"u{n}" for n in range(min(total, cap))]
    assert [b.banned_until for b in listing.members][:1] == ([1_700_000_000] if total else [])
    assert listing.truncated == (total > cap)
    assert (listing.next_offset != 0) == listing.truncated


async def test_a_next_offset_that_goes_back_is_malformed() -> None:
    bans = [[{"Member_Account": account, "BannedUntil": 1}] for account in "ab"]
    pages = [ok(Response={"BannedAccountList": page, "NextOffset": 1}) for page in bans]
    async with make_client(Recorder(*pages)) as client:
        with pytest.raises(MalformedResponse, match="NextOffset"):
            await client.get_banned_members("r")


async def test_a_page_longer_than_asked_for_still_respects_the_cap() -> None:
    # Tencent ignoring Count must not push the list past the cap, nor hide that it was cut.
    recorder = Recorder(_page("Id-1", "", "a", "b", "c", "d"))
    async with make_client(recorder) as client:
        listing = await client.get_room_members("r", max_members=3, page_size=3)
    assert [m.account for m in listing.members] == ["a", "b", "c"]
    assert listing.truncated
    assert listing.next_cursor == ""  # no cursor that would not skip "d"
    bans = [{"Member_Account": a, "BannedUntil": 1} for a in "abcd"]
    recorder = Recorder(ok(Response={"BannedAccountList": bans, "NextOffset": 0}))
    async with make_client(recorder) as client:
        banned = await client.get_banned_members("r", max_members=2, page_size=2)
    assert ([b.account for b in banned.members], banned.truncated) == (["a", "b"], True)
