"""Room Engine data: the calls roombot makes (the partial `update_room_info` patch, the member
calls, `destroy_room`), the room as `get_room_info` reports it, the names of the callback commands,
and the rules the parser, the client and the emulator all enforce (one copy of each limit).

Field names on the wire are the API's (`RoomId`, `IsAudioDisabled`, ...); Python attributes are
snake_case aliases of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Final, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROOM_ID_MAX_BYTES: Final = 48
ROOM_NAME_MAX_BYTES: Final = 100
CUSTOM_INFO_MAX_BYTES: Final = 500
#: The API's limit on a kick or ban `Reason`; roombot holds every `--reason` to it.
REASON_MAX_BYTES: Final = 1000
#: Room Engine account IDs (`Member_Account`): Tencent's UserID limit is 32 bytes.
ACCOUNT_ID_MAX_BYTES: Final = 32
#: Most accounts one `kick_user_out`, `ban_room_member` or `unban_room_member` call may name.
MAX_ACCOUNTS_PER_CALL: Final = 20
#: The largest ban `Duration` in seconds: a signed 32-bit integer (Tencent documents no maximum,
#: so anything larger is assumed to be refused).
BAN_DURATION_MAX_S: Final = 2**31 - 1
#: `get_room_member_list`'s documented default page size (`Count`).
MEMBER_PAGE_DEFAULT: Final = 50
#: Largest `Count` the emulator accepts. Tencent documents no maximum; 100 is an assumption
#: (the banned list's documented maximum), so a client that stays at or below it is safe.
MEMBER_PAGE_MAX: Final = 100
#: Largest `Limit` of `get_banned_member_list` (documented).
BANNED_PAGE_MAX: Final = 100
# How much of a bad value a message quotes: enough to recognise it, never a whole paste.
_EXCERPT_CHARS: Final = 40


class TakeSeatMode(StrEnum):
    """How members take a seat: open mic, or mic on request."""

    FREE_TO_TAKE = "FreeToTake"
    APPLY_TO_TAKE = "ApplyToTake"


#: Every field `update_room_info` can change, in the API's own order, with its Python type.
PATCH_FIELDS: Final[dict[str, type]] = {
    "RoomName": str,
    "MaxMemberCount": int,
    "IsVideoDisabled": bool,
    "IsAudioDisabled": bool,
    "IsMessageDisabled": bool,
    "IsScreenSharingDisabled": bool,
    "IsCloudRecordingDisabled": bool,
    "CustomInfo": str,
    "TakeSeatMode": str,
}

BOOL_FIELDS: Final = tuple(name for name, kind in PATCH_FIELDS.items() if kind is bool)


class MemberRole(StrEnum):
    """A room member's role as `get_room_member_list` reports it."""

    OWNER = "Owner"
    ADMIN = "Admin"
    MEMBER = "Member"


class CallbackCommand(StrEnum):
    """The Room Engine callbacks (reference §5), by their `CallbackCommand` names."""

    CREATE_ROOM = "Room.CallbackAfterCreateRoom"
    DESTROY_ROOM = "Room.CallbackAfterDestroyRoom"
    UPDATE_ROOM_INFO = "Room.CallbackAfterUpdateRoomInfo"
    MEMBER_ENTER = "Room.CallbackAfterMemberEnter"
    MEMBER_LEAVE = "Room.CallbackAfterMemberLeave"
    SEAT_INFO_CHANGED = "Mic.CallbackAfterSeatInfoChanged"


#: Every callback command, in the order of the reference.
CALLBACK_COMMANDS: Final = tuple(command.value for command in CallbackCommand)


class LeaveType(StrEnum):
    """Why members left, as `Room.CallbackAfterMemberLeave` says (`Type`)."""

    LEAVE = "Leave"
    KICKED = "Kicked"
    EXPIRED = "Expired"  # heartbeat lost


def utf8_len(text: str) -> int:
    """Length of `text` in UTF-8 bytes, the unit every Room Engine string limit uses."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def clip_utf8(text: str, max_bytes: int) -> str:
    """`text` unchanged if it is at most `max_bytes` UTF-8 bytes, else its longest head that
    fits with `…` after it, `max_bytes` in all (never a character cut in half)."""
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= max_bytes:
        return text
    ellipsis = "…"
    room = max(max_bytes - utf8_len(ellipsis), 0)
    return data[:room].decode("utf-8", errors="ignore") + ellipsis


def excerpt(value: str, limit: int = _EXCERPT_CHARS) -> str:
    """`value` quoted for a message (`repr` style), its first `limit` characters and `…` if longer.

    Messages about bad input quote it through this so that they stay short whatever was pasted.
    """
    if len(value) <= limit:
        return repr(value)
    return repr(value[: limit - 1]) + "…"


def _number(value: int) -> str:
    # A JSON body can hold a number of thousands of digits; a message shows its start (and
    # never asks str() for more digits than Python converts).
    if value.bit_length() > 256:
        return f"a number of {value.bit_length()} bits"
    text = str(value)
    return text if len(text) <= _EXCERPT_CHARS else text[: _EXCERPT_CHARS - 1] + "…"


def room_id_problem(value: str) -> str | None:
    """Why `value` is not a valid RoomId, or None if it is one. Quotes at most an excerpt."""
    if not value:
        return "a room ID cannot be empty"
    # Printable ASCII without spaces (0x21-0x7E), checked at C speed: callbacks check one each.
    if not (value.isascii() and value.isprintable() and " " not in value):
        return (
            f"room ID {excerpt(value)} must be printable ASCII without spaces "
            "(letters, digits and punctuation)"
        )
    if len(value) > ROOM_ID_MAX_BYTES:
        return f"room ID {excerpt(value)} is {len(value)} bytes; the limit is {ROOM_ID_MAX_BYTES}"
    return None


def account_id_problem(value: str) -> str | None:
    """Why `value` is not a valid Room Engine account ID, or None. Quotes at most an excerpt.

    roombot's rule: 1-32 UTF-8 bytes of printable characters, no spaces (Tencent's UserID limit
    is 32 bytes; it recommends letters, digits, `_` and `-` but allows more, so this allows more).
    """
    if not value:
        return "an account ID cannot be empty"
    if not value.isprintable() or " " in value:
        return f"account ID {excerpt(value)} must be printable characters without spaces"
    size = utf8_len(value)
    if size > ACCOUNT_ID_MAX_BYTES:
        return (
            f"account ID {excerpt(value)} is {size} bytes in UTF-8; "
            f"the limit is {ACCOUNT_ID_MAX_BYTES}"
        )
    return None


def reason_problem(value: Any) -> str | None:
    """Why `value` is not a valid `Reason` (a string of 1-1000 UTF-8 bytes, not blank), or None.

    Checks a parsed `--reason` and a JSON body's `Reason` alike (the client and the emulator).
    """
    if not isinstance(value, str):
        return "a reason must be a string"
    if not value.strip():
        return "a reason cannot be empty"
    size = utf8_len(value)
    if size > REASON_MAX_BYTES:
        return (
            f"the reason is {size} bytes in UTF-8; the limit is {REASON_MAX_BYTES} bytes "
            "(emoji and CJK characters take 3-4 bytes each)"
        )
    return None


def accounts_problem(accounts: Sequence[Any]) -> str | None:
    """Why `accounts` is not a valid `MemberList_Account` (1-20 distinct non-empty strings)."""
    if isinstance(accounts, str):
        return "must be a list of account IDs, not one string"
    if not accounts:
        return "must name at least one account"
    if len(accounts) > MAX_ACCOUNTS_PER_CALL:
        return f"names {len(accounts)} accounts; at most {MAX_ACCOUNTS_PER_CALL} fit in one call"
    if not all(isinstance(account, str) and account for account in accounts):
        return "every account ID must be a non-empty string"
    if len(set(accounts)) != len(accounts):
        return "names an account more than once"
    return None


def duration_problem(value: Any) -> str | None:
    """Why `value` is not a valid ban `Duration` (a positive whole number of seconds), or None."""
    if isinstance(value, bool) or not isinstance(value, int):
        return "must be a whole number of seconds"
    if value < 1:
        return f"must be positive, not {value}"
    if value > BAN_DURATION_MAX_S:
        return f"{value} s is too long (at most {BAN_DURATION_MAX_S} s)"
    return None


def chunked(accounts: Sequence[str], size: int = MAX_ACCOUNTS_PER_CALL) -> list[tuple[str, ...]]:
    """`accounts` in order, split into the calls that carry them (at most `size` a call)."""
    items = tuple(accounts)
    return [items[start : start + size] for start in range(0, len(items), size)]


def default_reason(requester: str) -> str:
    """The `Reason` sent when the command gave none: who asked, and through what."""
    return f"by {requester} via roombot"


def room_name_problem(value: str) -> str | None:
    """Why `value` is not a valid RoomName (1-100 UTF-8 bytes), or None."""
    if not value:
        return "a room name cannot be empty"
    size = utf8_len(value)
    if size > ROOM_NAME_MAX_BYTES:
        return (
            f"room name is {size} bytes in UTF-8; the limit is {ROOM_NAME_MAX_BYTES} bytes "
            "(emoji and CJK characters take 3-4 bytes each)"
        )
    return None


def custom_info_problem(value: str) -> str | None:
    """Why `value` is not a valid CustomInfo (at most 500 UTF-8 bytes), or None."""
    size = utf8_len(value)
    if size > CUSTOM_INFO_MAX_BYTES:
        return (
            f"custom info is {size} bytes in UTF-8; the limit is {CUSTOM_INFO_MAX_BYTES} bytes "
            "(emoji and CJK characters take 3-4 bytes each)"
        )
    return None


def max_member_count_problem(value: int) -> str | None:
    """Why `value` is not a valid MaxMemberCount (a positive integer), or None."""
    if isinstance(value, bool) or value < 1:
        return f"member limit must be a positive whole number, not {_number(value)}"
    if value > 2**31 - 1:
        return f"member limit {_number(value)} is too large (at most {2**31 - 1})"
    return None


def restorable(values: dict[str, Any]) -> dict[str, Any]:
    """Those of `values` (read with `get_room_info`) that `update_room_info` can set back.

    A room's reported state is not always settable: a new room's `TakeSeatMode` reads "None",
    and an unnamed room's `RoomName` reads "". Undo restores only what it can.
    """
    kept: dict[str, Any] = {}
    for name, value in values.items():
        kind = PATCH_FIELDS.get(name)
        if kind is None or type(value) is not kind:
            continue
        if isinstance(value, str) and (
            (name == "TakeSeatMode" and value not in {m.value for m in TakeSeatMode})
            or (name == "RoomName" and room_name_problem(value) is not None)
            or (name == "CustomInfo" and custom_info_problem(value) is not None)
        ):
            continue
        if isinstance(value, int) and name == "MaxMemberCount" and max_member_count_problem(value):
            continue
        kept[name] = value
    return kept


class RoomPatch(BaseModel):
    """A partial `update_room_info` request: `RoomId` plus exactly the fields to change.

    Unset fields are None and never serialised: `body()` carries only what was named.
    """

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="forbid")

    room_id: str = Field(alias="RoomId")
    room_name: str | None = Field(default=None, alias="RoomName")
    max_member_count: int | None = Field(default=None, alias="MaxMemberCount")
    is_video_disabled: bool | None = Field(default=None, alias="IsVideoDisabled")
    is_audio_disabled: bool | None = Field(default=None, alias="IsAudioDisabled")
    is_message_disabled: bool | None = Field(default=None, alias="IsMessageDisabled")
    is_screen_sharing_disabled: bool | None = Field(default=None, alias="IsScreenSharingDisabled")
    is_cloud_recording_disabled: bool | None = Field(default=None, alias="IsCloudRecordingDisabled")
    custom_info: str | None = Field(default=None, alias="CustomInfo")
    take_seat_mode: TakeSeatMode | None = Field(default=None, alias="TakeSeatMode")

    @classmethod
    def of(cls, room_id: str, changes: dict[str, Any]) -> RoomPatch:
        """Build a patch from API field names, e.g. `of("r1", {"IsAudioDisabled": True})`."""
        return cls.model_validate({"RoomId": room_id, **changes})

    def changes(self) -> dict[str, Any]:
        """The fields this patch sets, by API name (RoomId excluded), as JSON-ready values."""
        data = self.model_dump(by_alias=True, exclude_none=True, mode="json")
        data.pop("RoomId")
        return data

    def room_info(self) -> dict[str, Any]:
        """The `RoomInfo` object of the request body: RoomId first, then the changed fields."""
        return {"RoomId": self.room_id, **self.changes()}

    @property
    def api(self) -> Literal["update_room_info"]:
        """The Room Engine command this call is made with."""
        return "update_room_info"

    def body(self) -> dict[str, Any]:
        """The exact JSON body of the `update_room_info` request."""
        return {"RoomInfo": self.room_info()}


class MemberApi(StrEnum):
    """The Room Engine commands that act on some members of a room."""

    KICK = "kick_user_out"
    BAN = "ban_room_member"
    UNBAN = "unban_room_member"


class MemberCall(BaseModel):
    """One kick, ban or unban request: a room, 1-20 distinct accounts, and what the API requires.

    Kick and ban carry a `reason` (required by the API, 1-1000 bytes); a ban also carries
    `duration_s` (seconds, 1 or more); unban carries neither. Construction checks all of it
    (raises `pydantic.ValidationError`, a `ValueError`), so a built call is one the API accepts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api: MemberApi
    room_id: str
    accounts: tuple[str, ...]
    reason: str | None = None
    duration_s: int | None = None

    @model_validator(mode="after")
    def _check(self) -> MemberCall:
        problems = [room_id_problem(self.room_id)]
        if not 1 <= len(self.accounts) <= MAX_ACCOUNTS_PER_CALL:
            problems.append(
                f"a call carries 1-{MAX_ACCOUNTS_PER_CALL} accounts, not {len(self.accounts)}"
            )
        if len(set(self.accounts)) != len(self.accounts):
            problems.append("the accounts of a call must be distinct")
        problems += [account_id_problem(account) for account in self.accounts]
        if self.api is MemberApi.UNBAN:
            if self.reason is not None or self.duration_s is not None:
                problems.append("unban_room_member takes no Reason and no Duration")
        else:
            problems.append(
                f"{self.api.value} requires a Reason"
                if self.reason is None
                else reason_problem(self.reason)
            )
        if self.api is MemberApi.BAN:
            if self.duration_s is None or not 1 <= self.duration_s <= BAN_DURATION_MAX_S:
                problems.append(
                    f"ban_room_member requires a Duration of 1-{BAN_DURATION_MAX_S} seconds"
                )
        elif self.api is MemberApi.KICK and self.duration_s is not None:
            problems.append("kick_user_out takes no Duration")
        found = [problem for problem in problems if problem is not None]
        if found:
            raise ValueError("; ".join(found))
        return self

    def body(self) -> dict[str, Any]:
        """The exact JSON body: `RoomId`, `MemberList_Account`, then `Reason`/`Duration` if any."""
        body: dict[str, Any] = {"RoomId": self.room_id, "MemberList_Account": list(self.accounts)}
        if self.reason is not None:
            body["Reason"] = self.reason
        if self.duration_s is not None:
            body["Duration"] = self.duration_s
        return body


class DestroyCall(BaseModel):
    """A `destroy_room` request for one room."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    room_id: str

    @field_validator("room_id")
    @classmethod
    def _valid_room(cls, value: str) -> str:
        problem = room_id_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @property
    def api(self) -> Literal["destroy_room"]:
        """The Room Engine command this call is made with."""
        return "destroy_room"

    def body(self) -> dict[str, Any]:
        """The exact JSON body of the `destroy_room` request."""
        return {"RoomId": self.room_id}


#: Every write call a command can make; each has `.api`, `.room_id` and `.body()`.
Call: TypeAlias = RoomPatch | MemberCall | DestroyCall


def _lenient_bool(value: Any) -> Any:
    # Tencent's own samples sometimes send booleans as the strings "true"/"false".
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        return value.lower() == "true"
    return value


class RoomInfo(BaseModel):
    """A room as `get_room_info` reports it (`Response.RoomInfo`). Read leniently."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    room_id: str = Field(alias="RoomId")
    room_name: str = Field(default="", alias="RoomName")
    room_type: str = Field(default="", alias="RoomType")
    owner_account: str = Field(default="", alias="Owner_Account")
    custom_info: str = Field(default="", alias="CustomInfo")
    room_status: str = Field(default="", alias="RoomStatus")
    take_seat_mode: str = Field(default="", alias="TakeSeatMode")
    max_member_count: int = Field(default=0, alias="MaxMemberCount")
    max_seat_count: int = Field(default=0, alias="MaxSeatCount")
    schedule_start_time: int = Field(default=0, alias="ScheduleStartTime")
    schedule_end_time: int = Field(default=0, alias="ScheduleEndTime")
    create_time: int = Field(default=0, alias="CreateTime")
    member_count: int = Field(default=0, alias="MemberCount")
    is_video_disabled: bool = Field(default=False, alias="IsVideoDisabled")
    is_audio_disabled: bool = Field(default=False, alias="IsAudioDisabled")
    is_message_disabled: bool = Field(default=False, alias="IsMessageDisabled")
    is_screen_sharing_disabled: bool = Field(default=False, alias="IsScreenSharingDisabled")
    is_cloud_recording_disabled: bool = Field(default=False, alias="IsCloudRecordingDisabled")
    is_seat_enabled: bool = Field(default=False, alias="IsSeatEnabled")

    _bools = field_validator(
        "is_video_disabled",
        "is_audio_disabled",
        "is_message_disabled",
        "is_screen_sharing_disabled",
        "is_cloud_recording_disabled",
        "is_seat_enabled",
        mode="before",
    )(_lenient_bool)

    def api_values(self, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """The current values of the named API fields (e.g. for undo), as JSON-ready values."""
        data = self.model_dump(by_alias=True, mode="json")
        return {name: data[name] for name in fields}
