"""Rooms: the partial `update_room_info` patch, `destroy_room`, and the room as `get_room_info`
reports it (`RoomInfo`, and `RoomSnapshot` with the answer's RequestId).

Field names on the wire are the API's (`RoomId`, `IsAudioDisabled`, ...); Python attributes are
snake_case aliases of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.models.limits import (
    custom_info_problem,
    lenient_bool,
    max_member_count_problem,
    room_id_problem,
    room_name_problem,
)


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
    )(lenient_bool)

    def api_values(self, fields: list[str] | tuple[str, ...]) -> dict[str, Any]:
        """The current values of the named API fields (e.g. for undo), as JSON-ready values."""
        data = self.model_dump(by_alias=True, mode="json")
        return {name: data[name] for name in fields}


@dataclass(frozen=True)
class RoomSnapshot:
    """A room as `get_room_info` reported it, with the RequestId of that answer."""

    room: RoomInfo
    request_id: str
    attempts: int = 1
    elapsed_s: float = 0.0
