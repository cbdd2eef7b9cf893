"""`CallbackProcessor` over a real audit store and real requests: roombot's requests run through
the service against the emulator, and the callbacks are the bodies the emulator would post for
the rooms as they then stand (so they are what Room Engine reports, all fields included).

Covers de-duplication, the echo rule (and its races), the diff against what roombot knew, the
rows written, creations and destructions, member callbacks, and a failing store."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from bot.audit import AuditError, AuditStore, Outcome, Source, open_store
from bot.callbacks import (
    ECHO_WINDOW_S,
    OUTSIDE_CREATE,
    OUTSIDE_DESTROY,
    OUTSIDE_UPDATE,
    CallbackProcessor,
    Delivery,
    Handling,
    parse_callback,
)
from bot.models import CallbackCommand
from bot.outcomes import Approved, ChangeKind
from bot.tencent.emulator_callbacks import (
    create_room_body,
    destroy_room_body,
    member_enter_body,
    update_room_info_body,
)
from tests.bot.corekit import ADMIN, Core, actor, plan_for

_event_ms = itertools.count(1_700_000_000_000)
OPERATOR = "ops-console"


def _delivery(body: dict[str, Any], platform: str = "RESTAPI") -> Delivery:
    query = {"CallbackCommand": body["CallbackCommand"], "OptPlatform": platform}
    return parse_callback(query, json.dumps(body).encode())


def update(core: Core, room: str, operator: str = ADMIN, platform: str = "RESTAPI") -> Delivery:
    """The UpdateRoomInfo callback for `room` as it stands now in the emulator."""
    body = update_room_info_body(
        operator, core.emulator.rooms[room], next(_event_ms), bools_as_strings=True
    )
    return _delivery(body, platform)


def outside(core: Core, room: str, operator: str = OPERATOR, **fields: Any) -> Delivery:
    """Change `room` as someone else would, and the callback that reports it."""
    core.emulator.rooms[room].update(fields)
    return update(core, room, operator, "Web")


async def run(core: Core, text: str) -> str:
    prepared = await core.service.prepare(text, actor())
    assert isinstance(prepared, Approved)
    return (await core.service.execute(prepared)).request_key


def processor(core: Core, store: AuditStore | None = None) -> CallbackProcessor:
    return CallbackProcessor(store or core.store, admin_id=ADMIN, clock=core.clock)


async def test_roombots_own_change_is_an_echo_once(core: Core) -> None:
    callbacks = processor(core)
    await run(core, "mute-all room-test")
    echo = update(core, "room-test")
    first = await callbacks.handle(echo)
    assert first.handling is Handling.ECHO
    mute = (await core.store.query(room="room-test"))[0]
    assert first.echo_of == mute.id
    assert (await callbacks.handle(echo)).handling is Handling.DUPLICATE  # the same delivery
    # Another callback with the same values: the request is already explained.
    again = await callbacks.handle(update(core, "room-test"))
    assert again.handling is Handling.UNCHANGED
    assert again.change is None
    rows = await core.store.query(room="room-test")
    assert [(r.source, r.verb, r.outcome) for r in rows] == [
        (Source.TENCENT, OUTSIDE_UPDATE, Outcome.NOOP),
        ("slash", "mute-all", Outcome.OK),
    ]


async def test_someone_unmuting_right_after_roombot_muted_is_an_outside_change(
    core: Core,
) -> None:
    callbacks = processor(core)
    await run(core, "mute-all room-test")
    assert (await callbacks.handle(update(core, "room-test"))).handling is Handling.ECHO
    handled = await callbacks.handle(outside(core, "room-test", IsAudioDisabled=False))
    assert handled.handling is Handling.OUTSIDE
    change = handled.change
    assert change is not None
    assert (change.kind, change.room_id, change.operator, change.platform) == (
        ChangeKind.UPDATED,
        "room-test",
        OPERATOR,
        "Web",
    )
    assert change.changed == {"IsAudioDisabled": False}
    assert change.before == {"IsAudioDisabled": True}
    assert change.reported == {}  # the echo told this process the rest of the room
    row = await core.store.get(handled.row_id or 0)
    assert row is not None
    assert (row.source, row.user_id, row.verb, row.outcome) == (
        Source.TENCENT,
        OPERATOR,
        OUTSIDE_UPDATE,
        Outcome.OK,
    )
    assert (row.patch, row.previous) == ({"IsAudioDisabled": False}, {"IsAudioDisabled": True})
    assert row.raw_text == "Room.CallbackAfterUpdateRoomInfo (OptPlatform Web)"
    assert row.detail is not None
    assert row.detail.startswith("reported by a Room Engine callback; EventTime ")


async def test_without_the_echo_another_replica_still_diffs_against_the_trail(
    core: Core,
) -> None:
    await run(core, "mute-all room-test")
    assert (await processor(core).handle(update(core, "room-test"))).handling is Handling.ECHO
    other = processor(core)  # a second replica: did not see the echo, shares the store
    handled = await other.handle(outside(core, "room-test", IsAudioDisabled=False))
    assert handled.change is not None
    assert handled.change.changed == {"IsAudioDisabled": False}
    assert "RoomName" in handled.change.reported  # what it could not know; stored, not alerted


async def test_a_change_when_roombot_knew_nothing_records_the_reported_state(core: Core) -> None:
    handled = await processor(core).handle(outside(core, "room-2", RoomName="Town hall"))
    assert handled.handling is Handling.OUTSIDE
    assert handled.change is not None
    assert handled.change.changed == {}
    assert handled.change.reported["RoomName"] == "Town hall"
    assert len(handled.change.reported) == 9
    row = await core.store.get(handled.row_id or 0)
    assert row is not None
    assert row.patch == handled.change.reported
    assert row.previous is None
    assert row.detail is not None
    assert "roombot did not know before: RoomName" in row.detail
    # Now roombot knows the room: the next change is precise.
    later = await processor(core).handle(outside(core, "room-2", MaxMemberCount=10))
    assert later.change is not None
    assert (later.change.changed, later.change.reported) == ({"MaxMemberCount": 10}, {})


async def test_the_platform_backend_as_roombots_admin_is_not_an_echo(core: Core) -> None:
    await run(core, "mute-all room-test")
    callbacks = processor(core)
    assert (await callbacks.handle(update(core, "room-test"))).handling is Handling.ECHO
    core.emulator.rooms["room-test"]["IsVideoDisabled"] = True  # the backend, as `administrator`
    handled = await callbacks.handle(update(core, "room-test"))
    assert handled.handling is Handling.OUTSIDE
    assert handled.change is not None
    assert handled.change.changed == {"IsVideoDisabled": True}
    assert handled.change.operator == ADMIN


async def test_a_change_made_while_roombots_call_was_in_flight_is_not_blamed_on_it(
    core: Core,
) -> None:
    callbacks = processor(core)
    await run(core, "set room-test audio=on video=on")
    await callbacks.handle(update(core, "room-test"))  # echo: roombot knows the whole room
    # roombot's mute is written (pending) but Room Engine applies someone's video change first.
    [pending] = await core.store.begin(
        [_pending_mute(core)],
    )
    core.emulator.rooms["room-test"]["IsVideoDisabled"] = True
    first = await callbacks.handle(update(core, "room-test", OPERATOR, "Web"))
    assert first.handling is Handling.OUTSIDE
    assert first.change is not None
    assert first.change.changed == {"IsVideoDisabled": True}  # not "audio unmuted"
    core.emulator.rooms["room-test"]["IsAudioDisabled"] = True  # now roombot's mute applies
    second = await callbacks.handle(update(core, "room-test"))
    assert (second.handling, second.echo_of) == (Handling.ECHO, pending)


def _pending_mute(core: Core) -> Any:
    from bot.audit import NewEntry

    return NewEntry(
        request_key="pending-mute",
        source="slash",
        user_id="U0ALICE01",
        verb="mute-all",
        raw_text="mute-all room-test",
        room_id="room-test",
        patch={"IsAudioDisabled": True},
        previous={"IsAudioDisabled": False},
    )


async def test_two_quick_requests_are_both_echoes(core: Core) -> None:
    await run(core, "mute-all room-test")
    after_mute = update(core, "room-test")
    await run(core, "disable-video room-test")
    after_video = update(core, "room-test")
    callbacks = processor(core)
    assert (await callbacks.handle(after_mute)).handling is Handling.ECHO
    assert (await callbacks.handle(after_video)).handling is Handling.ECHO


async def test_a_request_older_than_the_window_is_not_an_echo(core: Core) -> None:
    callbacks = processor(core)
    await run(core, "mute-all room-test")
    assert (await callbacks.handle(update(core, "room-test"))).handling is Handling.ECHO
    await run(core, "unmute-all room-test")
    core.clock.advance(ECHO_WINDOW_S + 1)  # its callback comes too late to be matched
    handled = await callbacks.handle(update(core, "room-test"))
    assert (handled.handling, handled.echo_of) == (Handling.UNCHANGED, None)
    # …and while roombot knew only the field it set, a late echo cannot be told from someone
    # else's change of a field it did not know: that is alerted, to be safe.
    await run(core, "mute-all room-2")
    core.clock.advance(ECHO_WINDOW_S + 1)
    unknown = await processor(core).handle(update(core, "room-2"))
    assert unknown.handling is Handling.OUTSIDE
    assert unknown.change is not None
    assert unknown.change.changed == {}
    assert unknown.change.reported["IsVideoDisabled"] is False


async def test_a_request_tencent_refused_is_not_echoed(core: Core) -> None:
    await run(core, "mute-all ghost-room")  # 100004: certainly did nothing
    core.emulator.add_room("ghost-room")
    core.emulator.rooms["ghost-room"]["IsAudioDisabled"] = True
    handled = await processor(core).handle(update(core, "ghost-room"))
    assert handled.handling is Handling.OUTSIDE


async def test_destroys_roombots_is_an_echo_anyone_elses_is_alerted(core: Core) -> None:
    callbacks = processor(core)
    await run(core, "mute-all room-2")
    await callbacks.handle(update(core, "room-2"))
    await core.service.run(plan_for("destroy room-3"))  # as if confirmed
    ours = await callbacks.handle(_delivery(destroy_room_body(ADMIN, "room-3", 1)))
    assert ours.handling is Handling.ECHO
    theirs = await callbacks.handle(_delivery(destroy_room_body(OPERATOR, "room-2", 2), "Web"))
    assert theirs.handling is Handling.OUTSIDE
    assert theirs.change is not None
    assert (theirs.change.kind, theirs.change.operator) == (ChangeKind.DESTROYED, OPERATOR)
    row = await core.store.get(theirs.row_id or 0)
    assert row is not None
    assert (row.verb, row.patch) == (OUTSIDE_DESTROY, {})
    assert row.previous is not None
    assert row.previous["IsAudioDisabled"] is True


async def test_a_creation_is_recorded_not_alerted(core: Core) -> None:
    callbacks = processor(core)
    core.emulator.add_room("new-room", RoomName="Fresh")
    body = create_room_body(OPERATOR, core.emulator.rooms["new-room"], 5)
    handled = await callbacks.handle(_delivery(body, "Web"))
    assert (handled.handling, handled.change) == (Handling.RECORDED, None)
    row = await core.store.get(handled.row_id or 0)
    assert row is not None
    assert (row.source, row.verb, row.user_id) == (Source.TENCENT, OUTSIDE_CREATE, OPERATOR)
    assert row.patch is not None
    assert row.patch["RoomName"] == "Fresh"
    later = await callbacks.handle(outside(core, "new-room", IsAudioDisabled=True))
    assert later.change is not None
    assert later.change.changed == {"IsAudioDisabled": True}


async def test_member_callbacks_are_counted_and_nothing_is_stored(core: Core) -> None:
    callbacks = processor(core)
    before = await core.store.query(limit=100)
    enter = _delivery(member_enter_body("u1", "room-test", ["u1"], 5, 1_700_000_000_000))
    handled = await callbacks.handle(enter)
    assert handled.handling is Handling.COUNTED
    assert callbacks.members.get("room-test") == (5, 1_700_000_000.0)
    older = _delivery(member_enter_body("u0", "room-test", ["u0"], 4, 1_600_000_000_000))
    callbacks.count(older)
    assert callbacks.members.get("room-test") == (5, 1_700_000_000.0)  # an older report loses
    assert await core.store.query(limit=100) == before
    with pytest.raises(ValueError, match="handle"):
        callbacks.count(update(core, "room-test"))


async def test_a_failing_store_alerts_unchecked_and_says_so(
    core: Core, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = await open_store(tmp_path / "broken.sqlite3")
    await store.close()  # every call now raises AuditError
    with pytest.raises(AuditError):
        await store.claim("x")
    handled = await processor(core, store).handle(outside(core, "room-test", RoomName="x"))
    assert handled.handling is Handling.UNRECORDED
    assert handled.change is not None
    assert handled.change.note is not None
    assert "neither recorded nor checked" in handled.change.note
    assert "not recorded, the audit store failed" in caplog.text
    created = _delivery(create_room_body(OPERATOR, core.emulator.rooms["room-2"], 1))
    assert (await processor(core, store).handle(created)).change is None


async def test_every_backend_keeps_the_same_promises(target: str | Path, core: Core) -> None:
    async with await open_store(target, clock=core.clock) as store:
        callbacks = processor(core, store)
        first = outside(core, "room-test", IsAudioDisabled=True)
        assert (await callbacks.handle(first)).handling is Handling.OUTSIDE
        assert (await callbacks.handle(first)).handling is Handling.DUPLICATE
        second = await callbacks.handle(outside(core, "room-test", IsAudioDisabled=False))
        assert second.change is not None
        assert second.change.changed == {"IsAudioDisabled": False}
        assert second.change.before == {"IsAudioDisabled": True}
        assert CallbackCommand.UPDATE_ROOM_INFO.value in (await store.query(limit=1))[0].raw_text


async def test_a_forged_operator_never_reaches_the_audit_or_the_alert(core: Core) -> None:
    from bot.callbacks import UNKNOWN_OPERATOR

    forged = "ops\n2026-01-01 INFO bot: \x1b[31mforged" + "x" * 100
    handled = await processor(core).handle(outside(core, "room-2", forged, RoomName="Pwned"))
    assert handled.change is not None
    assert handled.change.operator == UNKNOWN_OPERATOR
    row = await core.store.get(handled.row_id or 0)
    assert row is not None
    assert row.user_id == UNKNOWN_OPERATOR
