"""Room Engine data: the partial `update_room_info` patch, the room as `get_room_info` reports it,
and the field rules both the parser and the emulator enforce (one copy of each limit).

Field names on the wire are the API's (`RoomId`, `IsAudioDisabled`, ...); Python attributes are
snake_case aliases of them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

ROOM_ID_MAX_BYTES: Final = 48
ROOM_NAME_MAX_BYTES: Final = 100
CUSTOM_INFO_MAX_BYTES: Final = 500


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


def utf8_len(text: str) -> int:
    """Length of `text` in UTF-8 bytes, the unit every Room Engine string limit uses."""
    return len(text.encode("utf-8", errors="surrogatepass"))


def room_id_problem(value: str) -> str | None:
    """Why `value` is not a valid RoomId, or None if it is one."""
    if not value:
        return "a room ID cannot be empty"
    if not all(" " < ch <= "~" for ch in value):
        return (
            f"room ID {value!r} must be printable ASCII without spaces "
            "(letters, digits and punctuation)"
        )
    if len(value) > ROOM_ID_MAX_BYTES:
        return f"room ID {value!r} is {len(value)} bytes; the limit is {ROOM_ID_MAX_BYTES}"
    return None


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
        return f"member limit must be a positive whole number, not {value!r}"
    if value > 2**31 - 1:
        return f"member limit {value} is too large (at most {2**31 - 1})"
    return None


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

    def body(self) -> dict[str, Any]:
        """The exact JSON body of the `update_room_info` request."""
        return {"RoomInfo": self.room_info()}


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
