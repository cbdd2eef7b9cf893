"""The console's embedded demo: its rooms kept between runs, and `show` agreeing with `members`
whatever was done to them (issue 27, item 14)."""

from __future__ import annotations

from pathlib import Path

from bot.config import load_settings
from bot.console.backend import Backend, open_backend
from bot.tencent.emulator import DEMO_ROOMS


async def _counts(backend: Backend) -> dict[str, tuple[int, int]]:
    """Each demo room's member count as `show` reads it, and as `members` lists it."""
    counts = {}
    assert backend.emulator is not None
    for room_id in backend.emulator.rooms:
        shown = (await backend.client.get_room_info(room_id)).room.member_count
        listed = len((await backend.client.get_room_members(room_id)).members)
        counts[room_id] = (shown, listed)
    return counts


async def test_show_and_members_agree_through_moderation_and_a_restart(tmp_path: Path) -> None:
    settings = load_settings(None, roombot_audit_db=str(tmp_path / "audit.sqlite3"))
    async with open_backend(settings) as backend:
        assert backend.emulator is not None
        first = await _counts(backend)
        assert set(first) == {room["RoomId"] for room in DEMO_ROOMS}
        assert all(shown == listed > 0 for shown, listed in first.values()), first
        client = backend.client
        await client.kick_user_out("town-hall", ["staff-1", "staff-2"], "spam")
        await client.ban_room_member("town-hall", ["staff-3"], "raid", 3600)
        await client.unban_room_member("town-hall", ["staff-3"])
        backend.emulator.member_enter("standup", "late-comer")
        backend.emulator.member_leave("room-test", "dave")
        await client.ban_room_member("support-1", ["customer-1042"], "abuse", 60)
        changed = await _counts(backend)
        assert changed["town-hall"] == (5, 5)
        assert changed["standup"] == (4, 4)
        assert changed["room-test"] == (3, 3)
        assert changed["support-1"] == (1, 1)
        await backend.save()
    async with open_backend(settings) as again:
        assert "kept from the last run" in again.description
        assert await _counts(again) == changed
    async with open_backend(settings, reset_demo=True) as fresh:
        assert await _counts(fresh) == first
