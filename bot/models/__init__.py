"""Plain data every layer shares: Room Engine requests and answers, and the rules on their values.

One module per family, all re-exported here (import from `bot.models`):

* `limits` — byte limits and the `*_problem` checks the parser, the client and the emulator share;
* `rooms` — the partial `update_room_info` patch, `destroy_room`, `RoomInfo` and `RoomSnapshot`;
* `members` — kick / ban / unban calls, members and bans as the list APIs report them;
* `seats` — seats as `get_seat_list` reports them, and the `lock_seat` / `kick_user_off_seat`
  calls;
* `seat_events` — what happened to seats between two seat lists (seat callbacks);
* `callbacks` — callback command names, leave types, the app's callback configuration;
* `calls` — `Call`, every write call a command can make.

Field names on the wire are the API's (`RoomId`, `IsAudioDisabled`, ...); Python attributes are
snake_case aliases of them.
"""

from __future__ import annotations

from bot.models.callbacks import (
    CALLBACK_COMMANDS,
    CallbackCommand,
    CallbackConfig,
    LeaveType,
)
from bot.models.calls import Call
from bot.models.limits import (
    ACCOUNT_ID_MAX_BYTES,
    BAN_DURATION_MAX_S,
    BANNED_PAGE_MAX,
    CUSTOM_INFO_MAX_BYTES,
    MAX_ACCOUNTS_PER_CALL,
    MEMBER_PAGE_DEFAULT,
    MEMBER_PAGE_MAX,
    REASON_MAX_BYTES,
    ROOM_ID_MAX_BYTES,
    ROOM_NAME_MAX_BYTES,
    account_id_problem,
    accounts_problem,
    chunked,
    clip_utf8,
    custom_info_problem,
    default_reason,
    duration_problem,
    excerpt,
    lenient_bool,
    max_member_count_problem,
    reason_problem,
    room_id_problem,
    room_name_problem,
    utf8_len,
)
from bot.models.members import (
    BannedList,
    BannedMember,
    BannedPage,
    MemberApi,
    MemberCall,
    MemberList,
    MemberPage,
    MemberRole,
    RoomMember,
)
from bot.models.rooms import (
    BOOL_FIELDS,
    PATCH_FIELDS,
    DestroyCall,
    RoomInfo,
    RoomPatch,
    RoomSnapshot,
    TakeSeatMode,
    restorable,
)
from bot.models.seat_events import ALERTED, TRAFFIC, SeatEvent, SeatEventKind
from bot.models.seats import (
    SEAT_FLAGS,
    SEAT_INDEX,
    SEAT_INDEX_MAX,
    LockSeatCall,
    Seat,
    SeatChange,
    SeatKickCall,
    SeatList,
    is_seat_target,
    seat_flags_problem,
    seat_undo_flags,
)

__all__ = [
    "ACCOUNT_ID_MAX_BYTES",
    "ALERTED",
    "BANNED_PAGE_MAX",
    "BAN_DURATION_MAX_S",
    "BOOL_FIELDS",
    "CALLBACK_COMMANDS",
    "CUSTOM_INFO_MAX_BYTES",
    "MAX_ACCOUNTS_PER_CALL",
    "MEMBER_PAGE_DEFAULT",
    "MEMBER_PAGE_MAX",
    "PATCH_FIELDS",
    "REASON_MAX_BYTES",
    "ROOM_ID_MAX_BYTES",
    "ROOM_NAME_MAX_BYTES",
    "SEAT_FLAGS",
    "SEAT_INDEX",
    "SEAT_INDEX_MAX",
    "TRAFFIC",
    "BannedList",
    "BannedMember",
    "BannedPage",
    "Call",
    "CallbackCommand",
    "CallbackConfig",
    "DestroyCall",
    "LeaveType",
    "LockSeatCall",
    "MemberApi",
    "MemberCall",
    "MemberList",
    "MemberPage",
    "MemberRole",
    "RoomInfo",
    "RoomMember",
    "RoomPatch",
    "RoomSnapshot",
    "Seat",
    "SeatChange",
    "SeatEvent",
    "SeatEventKind",
    "SeatKickCall",
    "SeatList",
    "TakeSeatMode",
    "account_id_problem",
    "accounts_problem",
    "chunked",
    "clip_utf8",
    "custom_info_problem",
    "default_reason",
    "duration_problem",
    "excerpt",
    "is_seat_target",
    "lenient_bool",
    "max_member_count_problem",
    "reason_problem",
    "restorable",
    "room_id_problem",
    "room_name_problem",
    "seat_flags_problem",
    "seat_undo_flags",
    "utf8_len",
]
