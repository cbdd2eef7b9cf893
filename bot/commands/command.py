"""`Command`: what a `/room` line asks for, as plain data, and the calls that carry it out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from bot.models import (
    PATCH_FIELDS,
    SEAT_FLAGS,
    Call,
    DestroyCall,
    MemberApi,
    MemberCall,
    RoomPatch,
    SeatChange,
    SeatKickCall,
    chunked,
    default_reason,
)

from .durations import format_duration, looks_like_duration
from .tokens import quote, word
from .values import SHORT_KEY_OF, render
from .verbs import VERBS, ArgForm, VerbKind, VerbSpec
from .window import WindowSpec


@dataclass(frozen=True)
class Command:
    """A parsed `/room` command.

    `verb` is canonical; `rooms` are de-duplicated in the order given (empty for help);
    `changes` maps API field names to JSON-ready values (empty unless the verb changes rooms;
    a seat verb's `lock_seat` flags, e.g. `ForbidAudio: true`);
    `accounts` are the Room Engine account IDs a member verb names, de-duplicated in order;
    `seats` the seat indexes a seat verb names, de-duplicated in order;
    `duration_s` is what `--for` gave, in seconds: a ban's length, or for a verb that changes
    room settings or seat flags how long the change lasts before roombot reverts it
    (`timebox_s`); `topic` is the verb `help VERB` asked about.
    Immutable: `changes` is a read-only mapping.
    """

    verb: str
    rooms: tuple[str, ...]
    changes: Mapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False
    reason: str | None = None
    topic: str | None = None
    accounts: tuple[str, ...] = ()
    duration_s: int | None = None
    seats: tuple[int, ...] = ()
    #: `timeline`'s window as typed (`--since`, `--from`, `--to`); None for other verbs.
    window: WindowSpec | None = None

    def __post_init__(self) -> None:
        # Frozen all the way down, in the API's field order whatever order they were given in.
        names = (*PATCH_FIELDS, *SEAT_FLAGS)
        ordered = {name: self.changes[name] for name in names if name in self.changes}
        object.__setattr__(self, "rooms", tuple(self.rooms))
        object.__setattr__(self, "accounts", tuple(self.accounts))
        object.__setattr__(self, "seats", tuple(self.seats))
        object.__setattr__(self, "changes", MappingProxyType(ordered))

    @property
    def spec(self) -> VerbSpec:
        """The verb's entry in `VERBS`."""
        return VERBS[self.verb]

    @property
    def timebox_s(self) -> int | None:
        """How long the change lasts before roombot reverts it (`--for` on a time-boxable verb,
        DESIGN §2.11), in seconds; None for a change that stays (and for a ban's `--for`, which
        Room Engine itself ends)."""
        return self.duration_s if self.spec.timeboxable else None

    def patches(self) -> list[RoomPatch]:
        """One `update_room_info` patch per room: `RoomId` plus exactly `changes`.

        Empty for commands that change no room settings (reads, help, member verbs, `destroy`).
        """
        if self.spec.kind is not VerbKind.WRITE or self.spec.api != "update_room_info":
            return []
        return [RoomPatch.of(room, dict(self.changes)) for room in self.rooms]

    def calls(self, requester: str) -> list[Call]:
        """Every write call this command makes, in order; empty for read and help verbs.

        Room changes give `patches()`; `destroy` one `DestroyCall` per room; kick, ban and unban
        one `MemberCall` per room and per 20 accounts, in the order named; the `lock_seat` verbs
        one `SeatChange` per seat (its other flags are read at run time) and `kick-seat` one
        `SeatKickCall` per account (the API takes one). Kick, ban and kick-seat carry `reason`,
        or, without one, `default_reason(requester)` ("by U012ABCDEF via roombot"), where
        `requester` is the Slack user ID the request came from.
        """
        spec = self.spec
        if spec.kind is not VerbKind.WRITE:
            return []
        if spec.api == "update_room_info":
            return list(self.patches())
        if spec.api == "destroy_room":
            return [DestroyCall(room_id=room) for room in self.rooms]
        if spec.api == "lock_seat":
            return [
                SeatChange(room_id=room, index=index, changes=dict(self.changes))
                for room in self.rooms
                for index in self.seats
            ]
        if spec.api == "kick_user_off_seat":
            data = self.reason or default_reason(requester)
            return [
                SeatKickCall(room_id=room, account=account, data=data)
                for room in self.rooms
                for account in self.accounts
            ]
        api = MemberApi(str(spec.api))
        reason = None if api is MemberApi.UNBAN else self.reason or default_reason(requester)
        duration = self.duration_s if api is MemberApi.BAN else None
        return [
            MemberCall(api=api, room_id=room, accounts=chunk, reason=reason, duration_s=duration)
            for room in self.rooms
            for chunk in chunked(self.accounts)
        ]

    def as_dict(self) -> dict[str, Any]:
        """The command as JSON-ready data (what `roombot parse` prints for read and help verbs)."""
        return {
            "verb": self.verb,
            "rooms": list(self.rooms),
            "accounts": list(self.accounts),
            "seats": list(self.seats),
            "changes": dict(self.changes),
            "duration_s": self.duration_s,
            "dry_run": self.dry_run,
            "reason": self.reason,
            "topic": self.topic,
            **(
                {"since": self.window.since, "from": self.window.start, "to": self.window.end}
                if self.window is not None
                else {}
            ),
        }

    def canonical_text(self) -> str:
        """Text that `parse_command` turns back into this command (values quoted as needed)."""
        spec = self.spec
        parts = [self.verb]
        if spec.form is ArgForm.TOPIC:
            parts.extend([self.topic] if self.topic else [])
        else:
            parts.extend(word(room) for room in self.rooms)
        if spec.form in (ArgForm.ROOM_VALUE, ArgForm.ROOM_TEXT):
            name = spec.fields[0]
            value = self.changes[name]
            text = render(name, value)
            parts.append(quote(text) if spec.form is ArgForm.ROOM_TEXT else word(text))
        elif spec.form is ArgForm.ROOMS_SETTINGS:
            for name, value in self.changes.items():
                parts.append(f"{SHORT_KEY_OF[name].key}={word(render(name, value))}")
        elif spec.form is ArgForm.ROOM_USERS:
            # A quoted account is taken as typed, even one shaped like a duration (`30m`).
            parts.extend(
                quote(account) if looks_like_duration(account) else word(account)
                for account in self.accounts
            )
        elif spec.form is ArgForm.ROOM_SEATS:
            parts.extend(str(index) for index in self.seats)
            if "ForbidVideo" in self.changes:
                parts.append("--video")
        if self.duration_s is not None:
            parts.append(f"--for {format_duration(self.duration_s)}")
        if self.window is not None:
            for option, value in (
                ("--since", self.window.since),
                ("--from", self.window.start),
                ("--to", self.window.end),
            ):
                if value is not None:
                    parts.append(f"{option} {word(value)}")
        if self.dry_run:
            parts.append("--dry-run")
        if self.reason is not None:
            parts.append(f"--reason {quote(self.reason)}")
        return " ".join(parts)
