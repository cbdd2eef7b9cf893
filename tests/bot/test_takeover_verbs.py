"""Taking over member verbs and destroy: a kick is in place when the account is not a member, a
ban when it is banned, an unban (and the undo of a ban) when it is not, a destroy when Room
Engine answers 100004; a list cut short that does not name the account cannot tell. Each room's
list is read once however many of its accounts a request named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.audit import AuditStore, NewEntry, Outcome, open_store
from bot.requests.takeover import take_over
from bot.tencent.client import RoomEngineClient
from bot.tencent.emulator import RoomEngineEmulator
from tests.bot.requestkit import APP, KEY, emulator_client, new_request


@pytest.fixture
async def emulator() -> AsyncIterator[RoomEngineEmulator]:
    emu = RoomEngineEmulator(
        sdkappid=APP,
        secret_key=KEY,
        rooms=[
            {"RoomId": "room-m", "Owner_Account": "owner"},
            {"RoomId": "room-kept"},
            {"RoomId": "room-destroyed"},
        ],
    )
    await emu.start()
    for account in ("stayed", "banned-now", "unbanned-not"):
        emu.member_enter("room-m", account)
    yield emu
    await emu.stop()


@pytest.fixture
async def client(emulator: RoomEngineEmulator) -> AsyncIterator[RoomEngineClient]:
    async with emulator_client(emulator) as c:
        # The world as the stopped replica left it: some of its calls happened, some did not.
        await c.ban_room_member("room-m", ["banned-now"], "spam", 3600)
        await c.ban_room_member("room-m", ["unbanned-not"], "spam", 3600)
        await c.destroy_room("room-destroyed")
        yield c


def row(verb: str, room: str, patch: dict[str, Any], key: str) -> NewEntry:
    return NewEntry(
        request_key=key,
        source="slash",
        user_id="U0ALICE",
        verb=verb,
        raw_text=f"{verb} {room}",
        room_id=room,
        channel_id="C1",
        patch=patch,
    )


async def verdicts(store: AuditStore, client: RoomEngineClient, rows: list[NewEntry]) -> Any:
    """The report and the stored rows once `store` took over a request with `rows` that
    another replica began and gave up (its replica stopped)."""
    key = rows[0].request_key
    gone = AuditStore(store.dialect, owner="gone")  # another replica on the same database
    lease = await gone.claim_request(new_request(key, verb=rows[0].verb))
    assert lease is not None
    await gone.begin_request(lease, rows)
    await gone.abandon_request(lease)
    [taken] = await store.take_over()
    report = await take_over(store, client, taken)
    stored = await store.rows_for_request(key)
    return report, stored


async def test_kick_is_in_place_when_the_account_is_not_a_member(
    target: str, emulator: RoomEngineEmulator, client: RoomEngineClient
) -> None:
    async with await open_store(target) as store:
        report, stored = await verdicts(
            store,
            client,
            [
                row("kick", "room-m", {"Member_Account": "left"}, "k"),
                row("kick", "room-m", {"Member_Account": "stayed"}, "k"),
            ],
        )
    gone, stayed = report.verdicts
    assert (gone.outcome, gone.found) == (Outcome.IN_PLACE, {"in_room": False})
    assert (stayed.outcome, stayed.found) == (Outcome.NOT_APPLIED, {"in_room": True})
    assert gone.request_id  # the read's, and one read for the room:
    assert gone.request_id == stayed.request_id
    reads = [r for r in emulator.requests if r.command == "get_room_member_list"]
    assert len(reads) == 1
    assert [r.outcome for r in stored] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
    assert report.retry_rooms == ("room-m",)


async def test_ban_unban_and_the_undo_of_a_ban_read_the_banned_list(
    target: str, client: RoomEngineClient
) -> None:
    ban = {"Duration": 3600}
    async with await open_store(target) as store:
        report, stored = await verdicts(
            store,
            client,
            [
                row("ban", "room-m", {"Member_Account": "banned-now", **ban}, "b"),
                row("ban", "room-m", {"Member_Account": "stayed", **ban}, "b"),
            ],
        )
        unban, _ = await verdicts(
            store,
            client,
            [
                row("unban", "room-m", {"Member_Account": "unbanned-not"}, "u"),
                row("unban", "room-m", {"Member_Account": "never-banned"}, "u"),
            ],
        )
        undo, _ = await verdicts(
            store, client, [row("undo", "room-m", {"Member_Account": "banned-now"}, "x")]
        )
    assert [(v.outcome, v.found) for v in report.verdicts] == [
        (Outcome.IN_PLACE, {"banned": True}),
        (Outcome.NOT_APPLIED, {"banned": False}),
    ]
    assert [r.outcome for r in stored] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]
    assert [(v.outcome, v.found) for v in unban.verdicts] == [
        (Outcome.NOT_APPLIED, {"banned": True}),
        (Outcome.IN_PLACE, {"banned": False}),
    ]
    [undone] = undo.verdicts  # an undo of a ban unbans: still banned, so not applied
    assert (undone.outcome, undone.found) == (Outcome.NOT_APPLIED, {"banned": True})


async def test_destroy_is_in_place_when_the_room_is_gone(
    target: str, client: RoomEngineClient
) -> None:
    async with await open_store(target) as store:
        report, stored = await verdicts(
            store,
            client,
            [row("destroy", "room-destroyed", {}, "d"), row("destroy", "room-kept", {}, "d")],
        )
    destroyed, kept = report.verdicts
    assert (destroyed.outcome, destroyed.found) == (Outcome.IN_PLACE, {"exists": False})
    assert destroyed.request_id  # the RequestId of the 100004 answer
    assert (kept.outcome, kept.found) == (Outcome.NOT_APPLIED, {"exists": True})
    assert [r.outcome for r in stored] == [Outcome.IN_PLACE, Outcome.NOT_APPLIED]


async def test_a_member_list_cut_short_cannot_tell_an_absent_account(
    emulator: RoomEngineEmulator, client: RoomEngineClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.requests.takeover.LIST_READ_CAP", 10)
    for i in range(15):
        emulator.member_enter("room-kept", f"crowd-{i:04d}")
    async with await open_store(":memory:") as store:
        report, _ = await verdicts(
            store,
            client,
            [
                row("kick", "room-kept", {"Member_Account": "not-listed"}, "c"),
                row("kick", "room-kept", {"Member_Account": "crowd-0000"}, "c"),
            ],
        )
    absent, listed = report.verdicts
    assert absent.outcome is Outcome.UNKNOWN
    assert absent.error_info == "the room has more than 10 members"
    assert listed.outcome is Outcome.NOT_APPLIED  # named in what was read: still there
