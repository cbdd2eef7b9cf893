"""The `/room` verbs: one table that the parser, the help text and the policy all read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from bot.models import PATCH_FIELDS

from .errors import ParseError, did_you_mean, shown

#: The shape of every command, for errors that cannot name a verb.
GENERAL_USAGE: Final = "/room VERB ROOM... [--dry-run] [--reason TEXT]"
_OPTIONS: Final = "[--dry-run] [--reason TEXT]"
#: The options of a verb whose change can be time-boxed (DESIGN §2.11).
_TIMEBOX_OPTIONS: Final = "[--for DURATION] [--dry-run] [--reason TEXT]"


class VerbKind(StrEnum):
    """What running a verb does: change rooms or their members, read them, or explain the
    language."""

    WRITE = "write"
    READ = "read"
    HELP = "help"


class ArgForm(StrEnum):
    """The shape of a verb's arguments, which decides how the parser reads them."""

    ROOMS = "ROOM..."  # one or more rooms
    ANY_ROOMS = "[ROOM...]"  # none (every room) or some
    ROOM = "ROOM"  # exactly one room
    ROOM_VALUE = "ROOM VALUE"  # one room, then one word
    ROOM_TEXT = "ROOM TEXT..."  # one room, then the rest of the line
    ROOMS_SETTINGS = "ROOM... KEY=VALUE..."  # rooms, then assignments
    ROOM_USERS = "ROOM USER..."  # one room, then one or more Room Engine account IDs
    ROOM_SEATS = "ROOM INDEX..."  # one room, then one or more seat indexes
    TOPIC = "[VERB]"  # nothing, or one verb


@dataclass(frozen=True)
class VerbSpec:
    """One verb: its names, what it does, the API command it calls and the fields it may set.

    `sets` is the fixed patch of a toggle verb (`mute-all`: `IsAudioDisabled` true); value verbs
    and `set` take their values from the text instead. `usage` is the full usage line with
    options; `synopsis` the same without them.

    `api` is the Room Engine command the verb calls (`update_room_info`, `kick_user_out`, ...),
    None when it calls none (`history` reads the audit trail, `help` nothing). `undoable` says
    whether roombot can undo it: room changes by restoring the values read before, a verb with
    an `undo_verb` by running that verb on the same room and accounts (`ban` -> `unban`).
    `needs_duration`: the verb requires `--for DURATION`. `confirm`: always ask before running.
    `video_sets` is what a seat verb sets instead of `sets` when given `--video` (empty: the
    verb takes no `--video`). `windowed`: the verb reads a time window (`--since`, `--from`,
    `--to`: `timeline`).
    """

    name: str
    aliases: tuple[str, ...]
    kind: VerbKind
    summary: str
    usage: str
    example: str
    multi_room: bool
    fields: tuple[str, ...]
    form: ArgForm
    synopsis: str
    sets: tuple[tuple[str, bool], ...] = ()
    api: str | None = None
    undoable: bool = False
    undo_verb: str | None = None
    needs_duration: bool = False
    confirm: bool = False
    video_sets: tuple[tuple[str, bool], ...] = ()
    windowed: bool = False

    @property
    def timeboxable(self) -> bool:
        """True for the verbs whose change `--for DURATION` reverts by itself when the time is
        up (DESIGN §2.11): room settings and seat flags, the changes roombot can set back."""
        return self.kind is VerbKind.WRITE and self.api in (_UPDATE, _LOCK_SEAT)

    @property
    def takes_accounts(self) -> bool:
        """True for verbs that name Room Engine accounts after the room (`kick`, `ban`, ...)."""
        return self.form is ArgForm.ROOM_USERS

    @property
    def takes_seats(self) -> bool:
        """True for verbs that name seat indexes after the room (`lock-seat`, ...)."""
        return self.form is ArgForm.ROOM_SEATS

    @property
    def seat_verb(self) -> bool:
        """True for the verbs that call the seat APIs (`seats`, `lock-seat`, `kick-seat`, ...)."""
        return self.api in _SEAT_APIS


_UPDATE: Final = "update_room_info"
_LOCK_SEAT: Final = "lock_seat"
_SEAT_APIS: Final = frozenset({"get_seat_list", _LOCK_SEAT, "kick_user_off_seat"})


def _spec(
    name: str,
    form: ArgForm,
    summary: str,
    example: str,
    *,
    kind: VerbKind = VerbKind.WRITE,
    aliases: tuple[str, ...] = (),
    fields: tuple[str, ...] = (),
    sets: tuple[tuple[str, bool], ...] = (),
    args: str | None = None,
    api: str | None = _UPDATE,
    undo_verb: str | None = None,
    needs_duration: bool = False,
    confirm: bool = False,
    video_sets: tuple[tuple[str, bool], ...] = (),
    windowed: bool = False,
) -> VerbSpec:
    synopsis = f"/room {name} {args or form.value}"
    # Room changes and seat flags are undone by restoring the values read before.
    room_change = kind is VerbKind.WRITE and api in (_UPDATE, _LOCK_SEAT)
    return VerbSpec(
        name=name,
        aliases=aliases,
        kind=kind,
        summary=summary,
        usage=(
            f"{synopsis} {_TIMEBOX_OPTIONS if room_change else _OPTIONS}"
            if kind is VerbKind.WRITE
            else synopsis
        ),
        example=f"/room {name} {example}",
        multi_room=form in (ArgForm.ROOMS, ArgForm.ANY_ROOMS, ArgForm.ROOMS_SETTINGS),
        fields=fields or tuple(dict.fromkeys(field for field, _ in (*sets, *video_sets))),
        form=form,
        synopsis=synopsis,
        sets=sets,
        api=api,
        undoable=room_change or undo_verb is not None,
        undo_verb=undo_verb,
        needs_duration=needs_duration,
        confirm=confirm,
        video_sets=video_sets,
        windowed=windowed,
    )


def _toggle_pair(
    on: str,
    off: str,
    fields: tuple[str, ...],
    what: str,
    *,
    on_aliases: tuple[str, ...] = (),
    off_aliases: tuple[str, ...] = (),
    confirm: bool = False,
) -> tuple[VerbSpec, VerbSpec]:
    # `on` disables the feature (sets the fields true); `off` lifts it again.
    return (
        _spec(
            on,
            ArgForm.ROOMS,
            f"Disable {what} in the rooms",
            'room-test --reason "abuse report"',
            aliases=on_aliases,
            sets=tuple((field, True) for field in fields),
            confirm=confirm,
        ),
        _spec(
            off,
            ArgForm.ROOMS,
            f"Enable {what} in the rooms again",
            "room-test room-2",
            aliases=off_aliases,
            sets=tuple((field, False) for field in fields),
            confirm=confirm,
        ),
    )


_LOCKDOWN_FIELDS: Final = (
    "IsAudioDisabled",
    "IsVideoDisabled",
    "IsMessageDisabled",
    "IsScreenSharingDisabled",
)

_TABLE: Final = (
    *_toggle_pair(
        "mute-all",
        "unmute-all",
        ("IsAudioDisabled",),
        "everyone's audio",
        on_aliases=("mute-audio", "disable-audio"),
        off_aliases=("unmute-audio", "enable-audio"),
    ),
    *_toggle_pair("disable-video", "enable-video", ("IsVideoDisabled",), "everyone's video"),
    *_toggle_pair(
        "disable-chat",
        "enable-chat",
        ("IsMessageDisabled",),
        "text chat",
        on_aliases=("mute-chat",),
        off_aliases=("unmute-chat",),
    ),
    *_toggle_pair(
        "disable-screenshare",
        "enable-screenshare",
        ("IsScreenSharingDisabled",),
        "screen sharing",
    ),
    *_toggle_pair(
        "disable-recording", "enable-recording", ("IsCloudRecordingDisabled",), "cloud recording"
    ),
    *_toggle_pair(
        "lockdown",
        "lift-lockdown",
        _LOCKDOWN_FIELDS,
        "audio, video, chat and screen sharing",
        confirm=True,  # several settings at once: always asks first
    ),
    _spec(
        "rename",
        ArgForm.ROOM_TEXT,
        "Rename a room (1-100 UTF-8 bytes; quotes optional)",
        'room-test "Weekly sync"',
        fields=("RoomName",),
        args="ROOM NAME...",
    ),
    _spec(
        "set-capacity",
        ArgForm.ROOM_VALUE,
        "Set the most members a room admits (a positive whole number)",
        "room-test 200",
        aliases=("max-members",),
        fields=("MaxMemberCount",),
        args="ROOM N",
    ),
    _spec(
        "seat-mode",
        ArgForm.ROOM_VALUE,
        "Let members take a seat freely, or only on request (`apply`)",
        "room-test apply",
        fields=("TakeSeatMode",),
        args="ROOM free|apply",
    ),
    _spec(
        "set-custom",
        ArgForm.ROOM_TEXT,
        'Set a room\'s custom info (up to 500 UTF-8 bytes; `""` clears it)',
        'room-test {"tier": "gold"}',
        aliases=("custom-info",),
        fields=("CustomInfo",),
        args="ROOM TEXT...",
    ),
    _spec(
        "set",
        ArgForm.ROOMS_SETTINGS,
        "Change several settings of one or more rooms at once",
        'room-1 room-2 audio=off chat=off name="Incident bridge" --dry-run',
        fields=tuple(PATCH_FIELDS),
    ),
    _spec(
        "show",
        ArgForm.ROOMS,
        "Show the rooms' current settings",
        "room-test",
        kind=VerbKind.READ,
        api="get_room_info",
    ),
    _spec(
        "history",
        ArgForm.ROOM,
        "Show the recent changes roombot made to a room",
        "room-test",
        kind=VerbKind.READ,
        api=None,
    ),
    _spec(
        "timers",
        ArgForm.ANY_ROOMS,
        "List the time-boxed changes still to revert (`--for`): what, where, who and when",
        "room-test",
        kind=VerbKind.READ,
        api=None,
    ),
    _spec(
        "timeline",
        ArgForm.ANY_ROOMS,
        "What happened, in order (UTC): who did what to which rooms, why, and the outcome, "
        "with changes made outside roombot; as a file",
        "room-test room-2 --since 2h",
        kind=VerbKind.READ,
        args="[ROOM...] [--since 2h | --from T --to T]",
        api=None,
        windowed=True,
    ),
    _spec(
        "members",
        ArgForm.ROOM,
        "List a room's members: account IDs, roles and name cards",
        "room-test",
        kind=VerbKind.READ,
        api="get_room_member_list",
    ),
    _spec(
        "kick",
        ArgForm.ROOM_USERS,
        "Remove members from a room (they may join again; not undoable)",
        'room-test user_42 user_43 --reason "spam"',
        api="kick_user_out",
    ),
    _spec(
        "ban",
        ArgForm.ROOM_USERS,
        "Remove members from a room and keep them out for a time",
        'room-test user_42 --for 2h --reason "abuse report"',
        args="ROOM USER... --for DURATION",
        api="ban_room_member",
        undo_verb="unban",
        needs_duration=True,
    ),
    _spec(
        "unban",
        ArgForm.ROOM_USERS,
        "Let banned members into a room again",
        "room-test user_42",
        api="unban_room_member",
    ),
    _spec(
        "banned",
        ArgForm.ROOM,
        "List a room's banned members and when each ban ends",
        "room-test",
        kind=VerbKind.READ,
        api="get_banned_member_list",
    ),
    _spec(
        "destroy",
        ArgForm.ROOM,
        "Destroy a room for everyone in it (always asks first; not undoable)",
        'room-test --reason "incident closed"',
        api="destroy_room",
        confirm=True,
    ),
    _spec(
        "seats",
        ArgForm.ROOM,
        "List a room's seats: who sits on each, and which are locked or have audio or video "
        "forbidden",
        "town-hall",
        kind=VerbKind.READ,
        api="get_seat_list",
    ),
    _spec(
        "lock-seat",
        ArgForm.ROOM_SEATS,
        "Lock seats so nobody can take them (whoever sits there is taken off the seat)",
        'town-hall 3 --reason "stage closed"',
        sets=(("ForbidTaken", True),),
        api=_LOCK_SEAT,
    ),
    _spec(
        "unlock-seat",
        ArgForm.ROOM_SEATS,
        "Unlock seats so members can take them again",
        "town-hall 3",
        sets=(("ForbidTaken", False),),
        api=_LOCK_SEAT,
    ),
    _spec(
        "mute-seat",
        ArgForm.ROOM_SEATS,
        "Forbid the audio (with `--video`, the video) of whoever sits on the seats",
        'town-hall 2 --reason "feedback loop"',
        args="ROOM INDEX... [--video]",
        sets=(("ForbidAudio", True),),
        video_sets=(("ForbidVideo", True),),
        api=_LOCK_SEAT,
    ),
    _spec(
        "unmute-seat",
        ArgForm.ROOM_SEATS,
        "Allow the audio (with `--video`, the video) on the seats again",
        "town-hall 2 --video",
        args="ROOM INDEX... [--video]",
        sets=(("ForbidAudio", False),),
        video_sets=(("ForbidVideo", False),),
        api=_LOCK_SEAT,
    ),
    _spec(
        "kick-seat",
        ArgForm.ROOM_USERS,
        "Take members off their seats; they stay in the room (not undoable)",
        'town-hall staff-2 --reason "off topic"',
        api="kick_user_off_seat",
    ),
    _spec(
        "help",
        ArgForm.TOPIC,
        "List the commands you may run, or explain one",
        "mute-all",
        kind=VerbKind.HELP,
        aliases=("?", "--help"),
        api=None,
    ),
)

#: Canonical verb name -> spec, in help order. The one source of truth for the language.
VERBS: Final[Mapping[str, VerbSpec]] = MappingProxyType({spec.name: spec for spec in _TABLE})

#: Every spelling a verb may be typed as (names and aliases, lower case) -> canonical name.
VERB_WORDS: Final[Mapping[str, str]] = MappingProxyType(
    {word: spec.name for spec in _TABLE for word in (spec.name, *spec.aliases)}
)


def canonical_verb(word: str) -> str | None:
    """The canonical name of the verb or alias `word` (any case, `_` for `-`), or None."""
    return VERB_WORDS.get(word.strip().lower().replace("_", "-"))


def unknown_verb(word: str, usage: str) -> ParseError:
    """The error for a verb nobody defined: "unknown command `x` — did you mean `y`?"."""
    hint = did_you_mean(word, VERB_WORDS) or " — see `/room help` for the list"
    return ParseError(f"unknown command {shown(word)}{hint}", usage)
