"""Room cards: `show`'s answer as a card per room (its state, its seats, the toggles the asker
may use), or one line per room beyond `MAX_CARDS`; and what a card's buttons carry (`CardClick`,
`CardPrompt`).

Pure functions of `bot.outcomes` types, built from `handlers.blocks`' pieces; `handlers.cards`
handles the clicks.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from bot import seat_wording, wording
from bot.models import room_id_problem
from bot.outcomes import NeedsConfirmation, RoomView
from bot.wording.timers import room_timers_line
from handlers.blocks import (
    MAX_BLOCKS,
    MAX_TEXT_CHARS,
    SLACK,
    Message,
    button,
    chunk_lines,
    code,
    confirmation_message,
    context,
    escape,
    room_view_text,
    section,
    truncate,
)

#: A room card's toggle button: this prefix, then the verb (`roombot_card.mute-all`).
ACTION_CARD_PREFIX: Final = "roombot_card."
#: Confirm / Cancel on a prompt that took a card's place (a card's button that asks first).
ACTION_CARD_CONFIRM: Final = "roombot_card_confirm"
ACTION_CARD_CANCEL: Final = "roombot_card_cancel"


def show_message(views: Sequence[RoomView]) -> Message:
    """`show` output for one or more rooms (ephemeral): a room card per room, with buttons for
    the toggles the asker may use, when there are at most `MAX_CARDS` rooms; one line per room
    (no buttons) for more, within Block Kit's limits."""
    if len(views) <= MAX_CARDS:
        return cards_message(views)
    return summary_message(views)


# -- room cards ------------------------------------------------------------------------------------

#: Most rooms a `show` answer draws as cards with buttons. A click re-reads every room of the
#: message to redraw it, and its button's value names them all, so this stays small. (The
#: core reads seats for as many: `bot.reads.SHOW_SEATS_MAX_ROOMS`.)
MAX_CARDS: Final = 10


@dataclass(frozen=True)
class CardToggle:
    """One toggle a card offers: which verb sets the room to the other state, and its label."""

    label: str
    verb: str
    style: str | None = None


@dataclass(frozen=True)
class CardClick:
    """What a card's button carries: the verb to run on `room`, and every room carded in the
    same message (`rooms`), re-read after the change to redraw it. Encoded as compact JSON in
    the button's value (≤ `MAX_VALUE_CHARS` for `MAX_CARDS` rooms of 48 bytes).

    A click can only be one of the toggles a card offers (`CARD_VERBS`) on one valid room ID
    among at most `MAX_CARDS` carded rooms: the value comes back from Slack, and anyone can
    send any value, so it is decoded into that closed set, never run as text."""

    verb: str
    room: str
    rooms: tuple[str, ...]

    def encode(self) -> str:
        """The button value."""
        return json.dumps(
            {"v": self.verb, "r": self.room, "s": list(self.rooms)}, separators=(",", ":")
        )

    @classmethod
    def decode(cls, value: str, action_id: str | None = None) -> CardClick | None:
        """The click a button value describes, or None for anything roombot did not write: a
        verb that is no card's toggle (or, given `action_id`, not that button's own), a room
        that is not one valid room ID among the carded rooms, too many rooms."""
        data = _json_object(value)
        verb, room, rooms = data.get("v"), data.get("r"), _strings(data.get("s"))
        if not (isinstance(verb, str) and isinstance(room, str) and rooms is not None):
            return None
        rooms = rooms or (room,)
        if verb not in CARD_VERBS or (action_id is not None and action_id != card_action_id(verb)):
            return None
        if len(rooms) > MAX_CARDS or room not in rooms:
            return None
        if any(room_id_problem(r) is not None for r in rooms):
            return None
        return cls(verb=verb, room=room, rooms=rooms)


@dataclass(frozen=True)
class CardPrompt:
    """What the Confirm / Cancel of a prompt in a card's place carry: the confirmation's key,
    and the carded rooms to draw again afterwards. Compact JSON, like `CardClick`."""

    key: str
    rooms: tuple[str, ...]

    def encode(self) -> str:
        """The button value."""
        return json.dumps({"k": self.key, "s": list(self.rooms)}, separators=(",", ":"))

    @classmethod
    def decode(cls, value: str) -> CardPrompt | None:
        """The prompt a button value describes, or None for anything roombot did not write."""
        data = _json_object(value)
        key, rooms = data.get("k"), _strings(data.get("s"))
        if not (isinstance(key, str) and key and rooms) or len(rooms) > MAX_CARDS:
            return None
        if any(room_id_problem(r) is not None for r in rooms):
            return None
        return cls(key=key, rooms=rooms)


def _json_object(value: str) -> dict[str, Any]:
    """The JSON object `value` holds; empty for anything else (a button value roombot did not
    write)."""
    try:
        data = json.loads(value)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _strings(value: Any) -> tuple[str, ...] | None:
    """`value` if it is a list of strings (as a tuple), else None."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        return None
    return tuple(value)


# The toggles a card offers, in order: (fields that say "disabled", what turns it off, what on).
_CARD_TOGGLES: Final = (
    (
        ("is_audio_disabled",),
        CardToggle("Mute all", "mute-all", "danger"),
        CardToggle("Unmute all", "unmute-all", "primary"),
    ),
    (
        ("is_message_disabled",),
        CardToggle("Disable chat", "disable-chat"),
        CardToggle("Enable chat", "enable-chat"),
    ),
    (
        ("is_video_disabled",),
        CardToggle("Disable video", "disable-video"),
        CardToggle("Enable video", "enable-video"),
    ),
    (
        ("is_screen_sharing_disabled",),
        CardToggle("Disable screen sharing", "disable-screenshare"),
        CardToggle("Enable screen sharing", "enable-screenshare"),
    ),
    (
        (
            "is_audio_disabled",
            "is_video_disabled",
            "is_message_disabled",
            "is_screen_sharing_disabled",
        ),
        CardToggle("Lockdown", "lockdown", "danger"),
        CardToggle("Lift lockdown", "lift-lockdown", "primary"),
    ),
)


#: Every verb a card's button may run: the toggles above, nothing else.
CARD_VERBS: Final = frozenset(t.verb for _fields, off, on in _CARD_TOGGLES for t in (off, on))


def card_toggles(view: RoomView) -> list[CardToggle]:
    """The toggles `view`'s card offers: for each of audio, chat, video, screen sharing and
    lockdown, the one that flips the room's current state, if the asker may run its verb."""
    if view.snapshot is None:
        return []
    room = view.snapshot.room
    toggles = []
    for attrs, off, on in _CARD_TOGGLES:
        toggle = on if all(getattr(room, attr) for attr in attrs) else off
        if toggle.verb in view.allowed_verbs:
            toggles.append(toggle)
    return toggles


def card_action_id(verb: str) -> str:
    """The action id of a card button that runs `verb`."""
    return ACTION_CARD_PREFIX + verb


def room_card(view: RoomView, index: int, rooms: Sequence[str]) -> list[dict[str, Any]]:
    """One room's card: its state at a glance, its seats (when `show` read them), then its
    toggle buttons (if any). `rooms` are all the rooms carded in the message; `index` keeps
    block ids unique within it."""
    card = [section(room_view_text(view))]
    seats = card_seats_text(view)
    if seats is not None:
        card.append(context(seats))
    timers = room_timers_line(SLACK, view.timers, time.time())
    if timers is not None:
        card.append(context(timers))
    toggles = card_toggles(view)
    if toggles:
        card.append(
            {
                "type": "actions",
                "block_id": f"roombot_card_{index}",
                "elements": [
                    button(
                        t.label,
                        card_action_id(t.verb),
                        CardClick(t.verb, view.room_id, tuple(rooms)).encode(),
                        t.style,
                    )
                    for t in toggles
                ],
            }
        )
    return card


def card_seats_text(view: RoomView) -> str | None:
    """A card's line about the room's seats (None: not read, or the room has none)."""
    return seat_wording.room_seats_line(SLACK, view)


def cards_message(views: Sequence[RoomView]) -> Message:
    """A card per room (at most `MAX_CARDS`), separated by dividers."""
    rooms = [v.room_id for v in views]
    blocks: list[dict[str, Any]] = []
    for index, view in enumerate(views[:MAX_CARDS]):
        if blocks:
            blocks.append({"type": "divider"})
        blocks += room_card(view, index, rooms)
    now = time.time()
    text = "\n\n".join(
        "\n".join(
            [
                room_view_text(v),
                *filter(None, [card_seats_text(v), room_timers_line(SLACK, v.timers, now)]),
            ]
        )
        for v in views
    )
    return Message(text=truncate(text, MAX_TEXT_CHARS), blocks=blocks[:MAX_BLOCKS])


_SUMMARY_FLAGS: Final = (
    ("audio", "is_audio_disabled"),
    ("video", "is_video_disabled"),
    ("chat", "is_message_disabled"),
    ("screen sharing", "is_screen_sharing_disabled"),
    ("recording", "is_cloud_recording_disabled"),
)


def room_summary_line(view: RoomView) -> str:
    """A room in one line: ID, name, what is off, members (or why it could not be read)."""
    if view.snapshot is None:
        return wording.room_view_lines(SLACK, view)[0]
    room = view.snapshot.room
    off = [label for label, attr in _SUMMARY_FLAGS if getattr(room, attr)]
    state = f"⛔ {', '.join(off)} off" if off else "all on"
    # One line per room: a name with a line break in it must not make two.
    name = " ".join(room.room_name.split())
    name = f" {escape(name)}" if name and name != room.room_id else ""
    return (
        f"{code(room.room_id)}{name} — {state} · members {room.member_count}/"
        f"{room.max_member_count}"
    )


def summary_message(views: Sequence[RoomView]) -> Message:
    """Many rooms, one line each (no buttons), within Block Kit's limits; what does not fit is
    counted in a last line."""
    head = (
        f"{len(views)} rooms, one line each. Cards with buttons appear when you show at most "
        f"{MAX_CARDS} rooms at a time."
    )
    lines = [room_summary_line(v) for v in views]
    chunks = chunk_lines(lines)
    room_blocks = MAX_BLOCKS - 2  # the head and the "not shown" note
    kept = chunks[:room_blocks]
    blocks = [section(head), *(section(c) for c in kept)]
    shown = sum(c.count("\n") + 1 for c in kept)
    if shown < len(lines):
        blocks.append(context(f"…and {len(lines) - shown} more rooms not shown"))
    text = truncate("\n".join([head, *lines]), MAX_TEXT_CHARS)
    return Message(text=text, blocks=blocks)


def card_confirmation(needs: NeedsConfirmation, rooms: Sequence[str]) -> Message:
    """The Confirm / Cancel prompt that takes the place of the cards of `rooms` (a card's
    button asked first): its buttons carry the rooms too, so the cards are drawn again once
    the request ran or was cancelled."""
    return confirmation_message(
        needs,
        confirm_id=ACTION_CARD_CONFIRM,
        cancel_id=ACTION_CARD_CANCEL,
        value=CardPrompt(needs.key, tuple(rooms)).encode(),
    )
