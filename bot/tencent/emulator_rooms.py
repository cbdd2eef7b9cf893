"""The emulator's room APIs (`update_room_info`, `get_room_info`, `create_room`,
`destroy_room`), the demo rooms, seeding and snapshots, and changes "from outside"
(`outside_update`, as a client app or the Tencent console would make them).

Where the reference is silent the emulator is strict and says so:

* fields `update_room_info` cannot change are refused (100002) rather than silently ignored, and
  creating an existing room answers 100003 (no create_room error table was found; assumed);
* destroying a room posts `CallbackAfterDestroyRoom` only, not a leave per member (nor a seat
  change);
* seats (`IsSeatEnabled`, `MaxSeatCount`; reference §4): a room with seats enabled and no
  `MaxSeatCount` gets the package's limit (`seat_limit`), as `MaxMemberCount` defaults to the
  package's; a `MaxSeatCount` of 0 with seats enabled, or above the limit, is refused (100002;
  the REST pages document no code, only the client SDK's "exceeds package limit"). A room
  without seats enabled keeps the `MaxSeatCount` it was given and has no seats. Neither can be
  changed by `update_room_info` (not among its documented fields).
* an UpdateRoomInfo callback carries all eleven fields of the reference's list (as Tencent's
  sample does), not only the changed ones.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

from bot.models import (
    PATCH_FIELDS,
    TakeSeatMode,
    custom_info_problem,
    max_member_count_problem,
    room_id_problem,
    room_name_problem,
)
from bot.tencent.emulator_base import Caller, EmulatorCore, Events, platform_of
from bot.tencent.emulator_callbacks import (
    create_room_body,
    destroy_room_body,
    update_room_info_body,
)
from bot.tencent.emulator_errors import Refusal, invalid
from bot.tencent.emulator_members import RoomMembers, seed_members
from bot.tencent.emulator_seats import RoomSeats

#: Rooms a demo starts with; `room-test` is the one every example in the docs uses. Each has an
#: owner and a few members (`MemberList` is the emulator's seeding key, not a RoomInfo field).
DEMO_ROOMS: Final[tuple[dict[str, Any], ...]] = (
    {
        "RoomId": "room-test",
        "RoomName": "room-name-test",
        "Owner_Account": "alice",
        "MemberList": [
            {"Member_Account": "alice", "NameCard": "Alice Chen"},
            {"Member_Account": "bob", "NameCard": "Bob Okafor", "Role": "Admin"},
            {"Member_Account": "carol", "NameCard": "Carol Díaz"},
            {"Member_Account": "dave", "NameCard": "Dave"},
        ],
    },
    {
        "RoomId": "standup",
        "RoomName": "Daily stand-up",
        "Owner_Account": "erin",
        "MemberList": [
            {"Member_Account": "erin", "NameCard": "Erin"},
            {"Member_Account": "frank", "NameCard": "Frank"},
            {"Member_Account": "grace", "NameCard": "Grace"},
        ],
    },
    {
        "RoomId": "town-hall",
        "RoomName": "All-hands town hall",
        "MaxMemberCount": 1000,
        "IsSeatEnabled": True,
        "MaxSeatCount": 8,
        "TakeSeatMode": "ApplyToTake",
        "Owner_Account": "ceo",
        "MemberList": [
            {"Member_Account": "ceo", "NameCard": "The CEO"},
            {"Member_Account": "host-1", "NameCard": "Host", "Role": "Admin"},
            *({"Member_Account": f"staff-{n}", "NameCard": f"Staff {n}"} for n in range(1, 7)),
        ],
        # Speakers on the stage: the host, the CEO and two staff (one with audio forbidden);
        # the last seat is locked.
        "SeatList": [
            {"Index": 0, "Member_Account": "host-1"},
            {"Index": 1, "Member_Account": "ceo"},
            {"Index": 2, "Member_Account": "staff-1"},
            {"Index": 3, "Member_Account": "staff-2", "IsAudioDisabled": True},
            {"Index": 7, "IsTakenDisabled": True},
        ],
    },
    {
        "RoomId": "support-1",
        "RoomName": "Support queue 1",
        "IsSeatEnabled": True,
        "MaxSeatCount": 16,
        "TakeSeatMode": "ApplyToTake",
        "Owner_Account": "agent-7",
        "MemberList": [
            {"Member_Account": "agent-7", "NameCard": "Support agent 7"},
            {"Member_Account": "customer-1042", "NameCard": "Customer 1042"},
        ],
        "SeatList": [{"Index": 0, "Member_Account": "agent-7"}],
    },
)

#: Defaults of a freshly created Conference room (RoomName defaults to the RoomId).
_ROOM_DEFAULTS: Final[dict[str, Any]] = {
    "RoomType": "Conference",
    "CustomInfo": "",
    "RoomStatus": "Running",
    "TakeSeatMode": "None",
    "MaxMemberCount": 300,
    "MaxSeatCount": 0,
    "ScheduleStartTime": 0,
    "ScheduleEndTime": 0,
    "MemberCount": 0,
    "IsVideoDisabled": False,
    "IsAudioDisabled": False,
    "IsMessageDisabled": False,
    "IsScreenSharingDisabled": False,
    "IsCloudRecordingDisabled": False,
    "IsSeatEnabled": False,
}

# Fields create_room accepts beyond the updatable ones, with their JSON types.
_CREATE_ONLY_FIELDS: Final[dict[str, type]] = {
    "RoomType": str,
    "Owner_Account": str,
    "IsSeatEnabled": bool,
    "MaxSeatCount": int,
    "ScheduleStartTime": int,
    "ScheduleEndTime": int,
}
_READ_ONLY_FIELDS: Final = frozenset({"CreateTime", "RoomStatus", "MemberCount"})
_SEAT_MODES: Final = frozenset(mode.value for mode in TakeSeatMode)


class RoomCommands(EmulatorCore):
    """The room APIs, seeding and outside changes (see the module docstring)."""

    def add_room(self, room_id: str, **fields: Any) -> None:
        """Create (or replace) a room directly, with the defaults a created room gets.

        `MemberList` (account IDs, or objects like `get_room_member_list`'s with
        `Member_Account`, `NameCard`, `Role`, `Marks`, `CustomInfo`) seeds its members, and
        `SeatList` (objects like `get_seat_list`'s) who sits on its seats.
        Raises `ValueError` when a field is one create_room would refuse. Posts no callback.
        """
        seeded = fields.pop("MemberList", ())
        banned = fields.pop("BannedList", ())
        seated = fields.pop("SeatList", ())
        info = {"RoomId": room_id, "RoomType": "Conference", **fields}
        try:
            check_room_info(info, creating=True)
            self._check_seats(info)
        except Refusal as exc:
            raise ValueError(exc.info) from None
        if isinstance(seeded, str) or not isinstance(seeded, Iterable):
            raise ValueError(f"MemberList of {room_id!r} must be a list")
        room = self._new_room(info)
        members = RoomMembers(owner=room["Owner_Account"])
        seed_members(members, seeded)
        for ban in banned:
            members.bans[str(ban["Member_Account"])] = int(ban["BannedUntil"])
        seats = self._new_seats(room)
        if seated and seats is None:
            raise ValueError(f"SeatList of {room_id!r} needs IsSeatEnabled")
        if seats is not None:
            seats.seed(seated, members.accounts())
        room["MemberCount"] = len(members)
        self.rooms[room_id] = room
        self.members[room_id] = members
        self._set_seats(room_id, seats)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every room as `add_room` (and the `rooms` option) takes it back: its settable fields,
        its members, its bans and its seats. For keeping a demo's rooms from one run to the next."""
        rooms = []
        for room_id, room in self.rooms.items():
            fields = {k: v for k, v in room.items() if k not in _READ_ONLY_FIELDS}
            if fields.get("TakeSeatMode") not in _SEAT_MODES:
                fields.pop("TakeSeatMode", None)  # "None": never set, and not settable
            members = self.members.get(room_id)
            if members is not None:
                fields["MemberList"] = [m.as_api() for m in members.members.values()]
                fields["BannedList"] = [
                    {"Member_Account": account, "BannedUntil": until}
                    for account, until in members.bans.items()
                ]
            seats = self.seats.get(room_id)
            if seats is not None:
                fields["SeatList"] = seats.as_api()
            rooms.append(fields)
        return rooms

    def outside_update(
        self,
        room_id: str,
        operator: str,
        *,
        platform: str = "Web",
        client_ip: str = "127.0.0.1",
        **fields: Any,
    ) -> None:
        """Change a room as a client app or the Tencent console would, posting UpdateRoomInfo.

        `fields` are `update_room_info` fields by API name, validated the same way. Raises
        `Refusal` (100002, 100004) like the API.
        """
        if not operator:
            raise ValueError("an outside change needs an operator account")
        caller = Caller(operator, client_ip, platform_of(platform))
        info = {"RoomId": room_id, **fields}
        check_room_info(info, creating=False)
        self._apply_update(info, caller)

    def _update_room_info(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        info = room_info_of(body)
        check_room_info(info, creating=False)
        events.extend(self._apply_update(info, caller, emit=False))
        return None

    def _apply_update(
        self, info: Mapping[str, Any], caller: Caller, *, emit: bool = True
    ) -> Events:
        room = self._room(info["RoomId"])
        room.update({k: v for k, v in info.items() if k != "RoomId"})
        body = update_room_info_body(
            caller.operator,
            room,
            self._event_ms(),
            bools_as_strings=self.callback_bools_as_strings,
        )
        if emit:
            self._emit(body, caller)
            return []
        return [(body, caller)]

    def _get_room_info(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room = self._room(room_id_of(body))
        return {"RoomInfo": dict(room)}

    def _create_room(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        info = room_info_of(body)
        check_room_info(info, creating=True)
        self._check_seats(info)
        invitees = body.get("ScheduleInviteeList_Account", [])
        if not isinstance(invitees, list) or not all(isinstance(i, str) for i in invitees):
            raise invalid("ScheduleInviteeList_Account", "must be a list of account IDs")
        room_id = info["RoomId"]
        if room_id in self.rooms:
            raise Refusal(100003, f"room {room_id!r} already exists")
        room = self._new_room(info)
        self.rooms[room_id] = room
        self.members[room_id] = RoomMembers(owner=room["Owner_Account"])
        self._set_seats(room_id, self._new_seats(room))
        events.append((create_room_body(caller.operator, room, self._event_ms()), caller))
        return None

    def _destroy_room(
        self, body: dict[str, Any], caller: Caller, events: Events
    ) -> dict[str, Any] | None:
        room_id = room_id_of(body)
        self._room(room_id)
        del self.rooms[room_id]
        self.members.pop(room_id, None)  # its members, bans and seats go with it
        self.seats.pop(room_id, None)
        events.append((destroy_room_body(caller.operator, room_id, self._event_ms()), caller))
        return None

    def _check_seats(self, info: Mapping[str, Any]) -> None:
        """`MaxSeatCount` within the package's seat limit, and at least 1 with seats enabled."""
        count = info.get("MaxSeatCount")
        if count is None:
            return
        if count > self.seat_limit:
            raise invalid(
                "MaxSeatCount", f"{count} exceeds the package's seat limit ({self.seat_limit})"
            )
        if info.get("IsSeatEnabled") and count < 1:
            raise invalid("MaxSeatCount", "must be at least 1 when IsSeatEnabled is true")

    def _new_seats(self, room: dict[str, Any]) -> RoomSeats | None:
        """Empty seats for a new room with seats enabled (filling in its MaxSeatCount)."""
        if not room["IsSeatEnabled"]:
            return None
        if not room["MaxSeatCount"]:
            room["MaxSeatCount"] = self.seat_limit
        return RoomSeats(room["MaxSeatCount"])

    def _set_seats(self, room_id: str, seats: RoomSeats | None) -> None:
        if seats is None:
            self.seats.pop(room_id, None)
        else:
            self.seats[room_id] = seats

    def _new_room(self, info: Mapping[str, Any]) -> dict[str, Any]:
        room: dict[str, Any] = {
            "RoomId": info["RoomId"],
            "RoomName": info["RoomId"],
            "Owner_Account": self.admin_id,
            **_ROOM_DEFAULTS,
            "CreateTime": int(self._clock()),
        }
        room.update(info)
        if room["IsSeatEnabled"] and room["TakeSeatMode"] == "None":
            room["TakeSeatMode"] = TakeSeatMode.FREE_TO_TAKE.value
        if room["ScheduleStartTime"] > room["CreateTime"]:
            room["RoomStatus"] = "NotStarted"
        return room


# -- validation (module functions: pure, shared by requests and seeding) ---------------------


def room_info_of(body: Mapping[str, Any]) -> dict[str, Any]:
    info = body.get("RoomInfo")
    if not isinstance(info, dict):
        raise invalid("RoomInfo", "is required and must be a JSON object")
    return info


def room_id_of(body: Mapping[str, Any]) -> str:
    room_id = body.get("RoomId")
    _check_room_id(room_id)
    assert isinstance(room_id, str)
    return room_id


def _check_room_id(value: Any) -> None:
    if value is None:
        raise invalid("RoomId", "is required")
    if not isinstance(value, str):
        raise invalid("RoomId", "must be a string")
    problem = room_id_problem(value)
    if problem:
        raise invalid("RoomId", problem)


def check_room_info(info: Mapping[str, Any], *, creating: bool) -> None:
    _check_room_id(info.get("RoomId"))
    if creating:
        room_type = info.get("RoomType")
        if room_type is None:
            raise invalid("RoomType", "is required")
        if room_type != "Conference":
            raise invalid("RoomType", f'must be "Conference", not {json.dumps(room_type)}')
    for name, value in info.items():
        if name == "RoomId" or (creating and name == "RoomType"):
            continue
        kind = PATCH_FIELDS.get(name) or (_CREATE_ONLY_FIELDS.get(name) if creating else None)
        if kind is None:
            if name in _CREATE_ONLY_FIELDS or name in _READ_ONLY_FIELDS:
                verb = "update_room_info" if not creating else "create_room"
                raise invalid(name, f"cannot be set by {verb}")
            raise invalid(name, "unknown field")
        _check_field(name, kind, value)


def _check_field(name: str, kind: type, value: Any) -> None:
    shown = json.dumps(value, ensure_ascii=False)
    if kind is bool:
        if not isinstance(value, bool):
            raise invalid(name, f"must be a JSON boolean (true or false), not {shown}")
        return
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise invalid(name, f"must be an integer, not {shown}")
        problem = max_member_count_problem(value) if name == "MaxMemberCount" else None
        if problem is None and value < 0:
            problem = f"must not be negative, not {value}"
        if problem:
            raise invalid(name, problem)
        return
    if not isinstance(value, str):
        raise invalid(name, f"must be a string, not {shown}")
    problem = None
    if name == "RoomName":
        problem = room_name_problem(value)
    elif name == "CustomInfo":
        problem = custom_info_problem(value)
    elif name == "TakeSeatMode" and value not in _SEAT_MODES:
        problem = f"must be FreeToTake or ApplyToTake, not {shown}"
    elif name == "Owner_Account" and not value:
        problem = "must not be empty"
    if problem:
        raise invalid(name, problem)
