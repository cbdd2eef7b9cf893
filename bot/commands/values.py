"""Turning typed values into RoomInfo field values, and back into canonical text.

One converter per API field, shared by the value verbs (`rename`, `set-capacity`, ...) and `set`,
so a value means the same thing whichever way it is typed. The limits themselves live in
`bot.models`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

from bot.models import (
    BOOL_FIELDS,
    PATCH_FIELDS,
    TakeSeatMode,
    custom_info_problem,
    max_member_count_problem,
    room_name_problem,
)

from .errors import shown


class InvalidValue(Exception):
    """A value cannot be used for its field; the message says why (the parser adds the usage)."""


@dataclass(frozen=True)
class SettingKey:
    """A key `set` accepts. `feature` keys (`audio`) name what is enabled: `audio=off` sets
    `IsAudioDisabled` true; API field names (`IsAudioDisabled`) take the field's own value."""

    key: str
    field: str
    feature: bool = False


_SHORT_KEYS: Final = (
    SettingKey("name", "RoomName"),
    SettingKey("max-members", "MaxMemberCount"),
    SettingKey("audio", "IsAudioDisabled", feature=True),
    SettingKey("video", "IsVideoDisabled", feature=True),
    SettingKey("chat", "IsMessageDisabled", feature=True),
    SettingKey("screenshare", "IsScreenSharingDisabled", feature=True),
    SettingKey("recording", "IsCloudRecordingDisabled", feature=True),
    SettingKey("custom", "CustomInfo"),
    SettingKey("seat-mode", "TakeSeatMode"),
)

#: Every `set` key by its lower-case spelling: the short keys, then the API field names.
SET_KEYS: Final[dict[str, SettingKey]] = {
    **{k.key: k for k in _SHORT_KEYS},
    **{name.lower(): SettingKey(name, name) for name in PATCH_FIELDS},
}

#: Fields whose values are free text: in `set`, their value runs on over spaces to the next
#: `KEY=` word (`name=Incident bridge`); every other value is one word.
TEXT_FIELDS: Final = ("RoomName", "CustomInfo")

#: The short key canonical text uses for each field.
SHORT_KEY_OF: Final[dict[str, SettingKey]] = {k.field: k for k in _SHORT_KEYS}

_TRUE_WORDS: Final = ("on", "true", "yes", "enabled", "1")
_FALSE_WORDS: Final = ("off", "false", "no", "disabled", "0")
# "IsAudioDisabled=enabled" reads both ways, so API field names take only plain truth values.
_AMBIGUOUS_FOR_FLAGS: Final = ("enabled", "disabled")
_SEAT_MODES: Final = {
    "free": TakeSeatMode.FREE_TO_TAKE,
    "freetotake": TakeSeatMode.FREE_TO_TAKE,
    "apply": TakeSeatMode.APPLY_TO_TAKE,
    "applytotake": TakeSeatMode.APPLY_TO_TAKE,
}
_SEAT_MODE_WORDS: Final = {TakeSeatMode.FREE_TO_TAKE: "free", TakeSeatMode.APPLY_TO_TAKE: "apply"}
_INTEGER = re.compile(r"[+-]?[0-9]+")
# Far beyond any member limit, and short enough that int() is cheap and exact.
_MAX_DIGITS = 15


def lookup_key(key: str) -> SettingKey | None:
    """The `set` key spelled `key` (any case; `_` for `-`), or None."""
    return SET_KEYS.get(key.lower().replace("_", "-"))


def convert(setting: SettingKey, raw: str) -> Any:
    """The JSON-ready value `raw` gives `setting.field`; raises `InvalidValue` saying why not."""
    field = setting.field
    if field in BOOL_FIELDS:
        return _flag(setting, raw)
    if field == "RoomName":
        return _checked(raw, room_name_problem(raw))
    if field == "CustomInfo":
        return _checked(raw, custom_info_problem(raw))
    if field == "MaxMemberCount":
        return _member_count(raw)
    if field == "TakeSeatMode":
        return _seat_mode(raw)
    raise AssertionError(f"no converter for {field}")  # a new PATCH_FIELDS entry needs one


def render(field: str, value: Any) -> str:
    """`value` as `set` takes it for the short key of `field` (e.g. `audio`: True -> "off")."""
    if field in BOOL_FIELDS:
        return "off" if value else "on"
    if field == "TakeSeatMode":
        return _SEAT_MODE_WORDS[TakeSeatMode(value)]
    return str(value)


def _checked(value: str, problem: str | None) -> str:
    if problem is not None:
        raise InvalidValue(problem)
    return value


def _flag(setting: SettingKey, raw: str) -> bool:
    word = raw.lower()
    if not setting.feature and word in _AMBIGUOUS_FOR_FLAGS:
        short = SHORT_KEY_OF[setting.field].key
        raise InvalidValue(
            f"{shown(setting.key + '=' + raw)} is ambiguous: use {setting.key}=true/false, "
            f"or {short}=on/off"
        )
    if word in _TRUE_WORDS:
        truth = True
    elif word in _FALSE_WORDS:
        truth = False
    else:
        raise InvalidValue(
            f"{setting.key} must be on/off (also true/false, yes/no, enabled/disabled), "
            f"not {shown(raw)}"
        )
    # A feature key says whether the feature is on; the field says whether it is disabled.
    return not truth if setting.feature else truth


def _member_count(raw: str) -> int:
    if not _INTEGER.fullmatch(raw):
        raise InvalidValue(f"member limit must be a positive whole number, not {shown(raw)}")
    if len(raw.lstrip("+-0")) > _MAX_DIGITS:
        raise InvalidValue(f"member limit {shown(raw)} is far too large")
    count = int(raw)
    problem = max_member_count_problem(count)
    if problem is not None:
        raise InvalidValue(problem)
    return count


def _seat_mode(raw: str) -> str:
    mode = _SEAT_MODES.get(raw.lower().replace("-", "").replace("_", ""))
    if mode is None:
        raise InvalidValue(
            f"seat mode must be `free` or `apply` (FreeToTake / ApplyToTake), not {shown(raw)}"
        )
    return mode.value
