"""The `/room` form (a modal): its view, reading what was typed into it, and turning that into
the command text the typed pipeline runs. Pure functions; nothing here talks to Slack.

The form does not decide anything itself: `command_text` writes the fields as one `/room`
command (values quoted so that they reach the parser exactly as typed), and the same
presenter, parser, policy, confirmation and audit as a typed command take it from there. When
they refuse it, `field_error` puts the refusal on the field it is about: it re-parses the text
with each field in turn replaced by a value known to be good, and the field whose replacement
changes the parser's message is the one at fault (a refusal no field explains goes on the
command picker). Only what the typed language cannot express is checked here first
(`form_problem`): several rooms for a one-room verb, a value for a verb that takes none.

The channel `/room` was typed in, and its `response_url`, ride in the view's `private_metadata`
(`FormContext`): Slack hands them back, signed, with the submission.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from bot import wording
from bot.commands import VERBS, ArgForm, ParseError, VerbKind, VerbSpec, parse_command
from bot.commands.tokens import quote, word
from bot.models import REASON_MAX_BYTES
from bot.outcomes import Rejected
from bot.wording import Style
from handlers import blocks
from handlers.blocks import (
    MAX_INPUT_CHARS,
    MAX_LABEL_CHARS,
    MAX_OPTION_TEXT_CHARS,
    MAX_OPTIONS,
    MAX_PLACEHOLDER_CHARS,
    MAX_PRIVATE_METADATA_CHARS,
    MAX_TITLE_CHARS,
)

#: The modal's callback id (its submissions are routed on it).
CALLBACK_FORM: Final = "roombot_form"
#: The command picker's action id: picking a verb redraws the form for it.
ACTION_PICK_VERB: Final = "roombot_form_verb"

#: Block ids of the form's fields; a field error names one of them.
BLOCK_VERB: Final = "verb"
BLOCK_ROOMS: Final = "rooms"
BLOCK_VALUE: Final = "value"
BLOCK_DURATION: Final = "duration"
BLOCK_REASON: Final = "reason"
BLOCK_OPTIONS: Final = "options"

_DRY_RUN: Final = "dry_run"


def _action_id(block_id: str) -> str:
    return ACTION_PICK_VERB if block_id == BLOCK_VERB else f"roombot_form_{block_id}"


# -- what rides along in private_metadata ---------------------------------------------------------


@dataclass(frozen=True)
class FormContext:
    """Where the form was opened: the channel `/room` was typed in (results go there) and the
    slash command's `response_url` (for answers only the requester sees, as a typed command)."""

    channel_id: str
    response_url: str | None = None

    def encode(self) -> str:
        """The view's `private_metadata` (≤ 3000 characters: a URL that would not fit is left
        out, and answers then go by `chat.postEphemeral`)."""
        data = {"c": self.channel_id, "u": self.response_url}
        text = json.dumps(data, separators=(",", ":"))
        if len(text) > MAX_PRIVATE_METADATA_CHARS:
            text = json.dumps({"c": self.channel_id}, separators=(",", ":"))
        return text

    @classmethod
    def decode(cls, metadata: str | None) -> FormContext | None:
        """The context `encode` wrote, or None for metadata roombot did not write."""
        try:
            data = json.loads(metadata or "")
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str) or not data["c"]:
            return None
        url = data.get("u")
        return cls(channel_id=data["c"], response_url=url if isinstance(url, str) else None)


def form_channel(view: Mapping[str, Any] | None) -> str | None:
    """The channel a form view was opened from, if it is roombot's form."""
    if not view:
        return None
    context = FormContext.decode(view.get("private_metadata"))
    return context.channel_id if context is not None else None


# -- what the user typed -------------------------------------------------------------------------


@dataclass(frozen=True)
class FormInput:
    """The form's fields as submitted. A field missing from the form is None; one left empty
    is "" (for `set-custom`, an empty text clears the room's custom info)."""

    verb: str | None
    rooms: str = ""
    value: str | None = None
    duration: str | None = None
    reason: str | None = None
    dry_run: bool = False

    @property
    def room_ids(self) -> list[str]:
        """The rooms, as separated by spaces and line breaks."""
        return self.rooms.split()

    @classmethod
    def from_state(cls, values: Mapping[str, Any]) -> FormInput:
        """Read a submitted view's `state.values` (block id → action id → element state)."""

        def element(block_id: str) -> Mapping[str, Any] | None:
            block = values.get(block_id)
            if not isinstance(block, Mapping):
                return None
            found = block.get(_action_id(block_id))
            return found if isinstance(found, Mapping) else None

        def text(block_id: str) -> str | None:
            state = element(block_id)
            if state is None:
                return None
            value = state.get("value")
            return value if isinstance(value, str) else ""

        picked = element(BLOCK_VERB)
        option = (picked or {}).get("selected_option") or {}
        verb = option.get("value") if isinstance(option, Mapping) else None
        options = (element(BLOCK_OPTIONS) or {}).get("selected_options") or []
        return cls(
            verb=verb if isinstance(verb, str) and verb else None,
            rooms=text(BLOCK_ROOMS) or "",
            value=text(BLOCK_VALUE),
            duration=text(BLOCK_DURATION),
            reason=text(BLOCK_REASON),
            dry_run=any(isinstance(o, Mapping) and o.get("value") == _DRY_RUN for o in options),
        )


# The parser turns smart quotes into plain ones even inside a quoted word, which would end the
# word early: turn them first, so `quote` escapes them (a typed command loses them the same way).
_PLAIN_QUOTES: Final = str.maketrans(
    {
        **dict.fromkeys("\u201c\u201d\u201e\u201f", '"'),
        **dict.fromkeys("\u2018\u2019\u201a\u201b", "'"),
    }
)


def _literal(value: str) -> str:
    """`value` as one word the parser reads back as exactly this text."""
    return quote(value.translate(_PLAIN_QUOTES))


def _slack_escaped(text: str) -> str:
    """Typed syntax (`set`'s KEY=VALUE list) escaped as Slack escapes slash command text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def command_text(form: FormInput) -> str:
    """The `/room` command the form stands for (without `/room`), for `Presenter.answer`.

    Rooms, accounts, texts, the duration and the reason are quoted so that nothing typed in a
    field can become an option or another field; `set`'s settings are its own syntax and go
    in as typed.
    """
    spec = VERBS.get(form.verb or "")
    if spec is None:
        return form.verb or ""
    parts = [spec.name, *(word(room) for room in form.room_ids)]
    if form.value is not None:
        parts += _value_words(spec, form.value)
    if form.duration is not None and form.duration.strip():
        parts.append(f"--for {_literal(form.duration.strip())}")
    if form.reason is not None and form.reason.strip():
        parts.append(f"--reason {_literal(form.reason)}")
    if form.dry_run:
        parts.append("--dry-run")
    return " ".join(parts)


def _value_words(spec: VerbSpec, value: str) -> list[str]:
    if spec.form is ArgForm.ROOM_VALUE:
        return [_literal(value.strip())] if value.strip() else []
    if spec.form is ArgForm.ROOM_TEXT:
        return [_literal(value)]
    if spec.form is ArgForm.ROOMS_SETTINGS:
        return [_slack_escaped(value)] if value.strip() else []
    if spec.form is ArgForm.ROOM_USERS:
        return [_literal(account) for account in value.split()]
    if spec.form is ArgForm.ROOM_SEATS:
        return [_literal(index) for index in value.split()]
    return []


# -- putting a refusal on its field --------------------------------------------------------------


@dataclass(frozen=True)
class FieldError:
    """A refusal as the form shows it: under block `block_id`, this plain text."""

    block_id: str
    text: str


def _plain_you(user_id: str) -> str:
    return f"You ({user_id})"


#: How refusals read in a form: field errors are plain text, so no mrkdwn, mentions or links.
PLAIN: Final = Style(
    literal=lambda text: f"`{text}`",
    text=lambda text: text,
    user=lambda user_id: user_id,
    channel=lambda channel_id: f"channel {channel_id}",
    you=_plain_you,
    strong=lambda text: text,
)


def _takes_value(spec: VerbSpec) -> bool:
    return spec.form in (
        ArgForm.ROOM_VALUE,
        ArgForm.ROOM_TEXT,
        ArgForm.ROOMS_SETTINGS,
        ArgForm.ROOM_USERS,
        ArgForm.ROOM_SEATS,
    )


def form_problem(form: FormInput) -> FieldError | None:
    """What the typed language could not even express, found before anything runs: no verb, no
    room, several rooms for a one-room verb, a value for a verb that takes none."""
    spec = VERBS.get(form.verb or "")
    if spec is None or spec.kind is VerbKind.HELP:
        return FieldError(BLOCK_VERB, "Pick a command.")
    rooms = form.room_ids
    if not rooms and spec.form is not ArgForm.ANY_ROOMS:  # `timeline`: no room is every room
        return FieldError(BLOCK_ROOMS, f"`{spec.name}` needs a room ID.")
    if not spec.multi_room and len(rooms) > 1:
        return FieldError(BLOCK_ROOMS, f"`{spec.name}` takes one room, got {len(rooms)}.")
    if form.value and form.value.strip() and not _takes_value(spec):
        return FieldError(BLOCK_VALUE, f"`{spec.name}` takes no value: leave this empty.")
    return None


# Values known to be good, put in a field's place to see whether the parser's complaint goes.
_GOOD_VALUE: Final = {
    "MaxMemberCount": "1",
    "TakeSeatMode": "free",
    "RoomName": "x",
    "CustomInfo": "x",
}


def _good(form: FormInput, block_id: str) -> FormInput:
    spec = VERBS[form.verb or ""]
    if block_id == BLOCK_ROOMS:
        return replace(form, rooms="room-x")
    if block_id == BLOCK_VALUE:
        if spec.form is ArgForm.ROOMS_SETTINGS:
            return replace(form, value="audio=off")
        if spec.form is ArgForm.ROOM_USERS:
            return replace(form, value="user_1")
        if spec.form is ArgForm.ROOM_SEATS:
            return replace(form, value="0")
        return replace(form, value=_GOOD_VALUE.get(spec.fields[0] if spec.fields else "", "x"))
    if block_id == BLOCK_DURATION:
        return replace(form, duration="1h" if spec.needs_duration else "")
    if block_id == BLOCK_REASON:
        return replace(form, reason="")
    return replace(form, dry_run=False)


def _filled(form: FormInput) -> list[str]:
    filled = [BLOCK_ROOMS] if form.room_ids else []
    if form.value is not None:
        filled.append(BLOCK_VALUE)
    if form.duration is not None:
        filled.append(BLOCK_DURATION)
    if form.reason:
        filled.append(BLOCK_REASON)
    if form.dry_run:
        filled.append(BLOCK_OPTIONS)
    return filled


def field_of(form: FormInput, message: str, *, max_rooms: int) -> str:
    """The block id of the field the parser's `message` (about `command_text(form)`) is about:
    the first whose replacement by a good value makes the message go away or change; the
    command picker when none does."""
    if form.verb not in VERBS or _parse_error(command_text(form), max_rooms) != message:
        return BLOCK_VERB  # not the parser's complaint about this form
    for block_id in _filled(form):
        if _parse_error(command_text(_good(form, block_id)), max_rooms) != message:
            return block_id
    return BLOCK_VERB


def _parse_error(text: str, max_rooms: int) -> str | None:
    try:
        parse_command(text, max_rooms=max_rooms)
    except ParseError as exc:
        return exc.message
    return None


def field_error(
    form: FormInput, rejected: Rejected | None, fallback: str, *, max_rooms: int
) -> FieldError:
    """Where and how the form shows a refusal of its command: a parse error on its field (the
    parser's own message), a policy refusal or anything else on the command picker.
    `fallback` is the text when there is no `Rejected` (roombot itself failed)."""
    if rejected is None:
        return FieldError(BLOCK_VERB, fallback)
    if rejected.denial is not None:
        return FieldError(BLOCK_VERB, wording.denial_sentence(PLAIN, rejected.denial))
    if rejected.denied:
        return FieldError(BLOCK_VERB, rejected.message)
    return FieldError(field_of(form, rejected.message, max_rooms=max_rooms), rejected.message)


# -- the view ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ValueField:
    """How the form asks for the value a verb needs."""

    label: str
    hint: str
    placeholder: str = ""
    multiline: bool = False
    optional: bool = False


_VALUE_FIELDS: Final = {
    "MaxMemberCount": ValueField("Capacity", "The most members the room admits: a whole number."),
    "TakeSeatMode": ValueField(
        "Seat mode", "`free`: members take a seat freely; `apply`: only on request.", "free"
    ),
    "RoomName": ValueField("New name", "1-100 UTF-8 bytes, taken exactly as typed."),
    "CustomInfo": ValueField(
        "Custom info",
        "Up to 500 UTF-8 bytes, taken exactly as typed. Leave empty to clear it.",
        multiline=True,
        optional=True,
    ),
}
_SETTINGS_FIELD: Final = ValueField(
    "Settings",
    "KEY=VALUE pairs, as after `/room set ROOM`: e.g. audio=off chat=off name=Incident bridge "
    "(`/room help set` lists the keys).",
    "audio=off chat=off",
    multiline=True,
)
_SEATS_FIELD: Final = ValueField(
    "Seats",
    "Seat indexes, separated by spaces (seats are numbered from 0; `/room seats ROOM` lists "
    "them). The form changes audio; type `/room mute-seat ROOM INDEX --video` for video.",
    "2 3",
)
_ACCOUNTS_FIELD: Final = ValueField(
    "Accounts",
    "Room Engine account IDs (not Slack users), separated by spaces or line breaks; "
    "`/room members ROOM` lists them.",
    "user_42",
    multiline=True,
)


def value_field(spec: VerbSpec | None) -> ValueField | None:
    """The value field `spec`'s form shows, or None for a verb that takes no value."""
    if spec is None or not _takes_value(spec):
        return None
    if spec.form is ArgForm.ROOMS_SETTINGS:
        return _SETTINGS_FIELD
    if spec.form is ArgForm.ROOM_USERS:
        return _ACCOUNTS_FIELD
    if spec.form is ArgForm.ROOM_SEATS:
        return _SEATS_FIELD
    return _VALUE_FIELDS.get(spec.fields[0], ValueField("Value", spec.synopsis))


def _plain(text: str, limit: int) -> dict[str, Any]:
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(spec: VerbSpec) -> dict[str, Any]:
    return {
        "text": _plain(f"{spec.name} — {spec.summary}", MAX_OPTION_TEXT_CHARS),
        "value": spec.name,
    }


def _text_input(
    block_id: str,
    label: str,
    hint: str,
    *,
    placeholder: str = "",
    multiline: bool = False,
    optional: bool = False,
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": _action_id(block_id),
        "multiline": multiline,
        "max_length": MAX_INPUT_CHARS,
    }
    if placeholder:
        element["placeholder"] = _plain(placeholder, MAX_PLACEHOLDER_CHARS)
    return {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": _plain(label, MAX_LABEL_CHARS),
        "hint": _plain(hint, MAX_LABEL_CHARS),
        "element": element,
    }


def offered_verbs(allowed: frozenset[str]) -> list[str]:
    """The verbs the picker offers someone allowed `allowed`: those, in help order, without
    `help`, at most `MAX_OPTIONS` (Slack's limit for a select menu)."""
    verbs = [v for v, spec in VERBS.items() if v in allowed and spec.kind is not VerbKind.HELP]
    return verbs[:MAX_OPTIONS]


def form_view(
    verbs: Sequence[str], context: FormContext, verb: str | None = None
) -> dict[str, Any]:
    """The modal: a command picker (only `verbs`), the rooms, the value `verb` needs, its ban
    duration, a reason and a dry-run box (write verbs only). Picking a verb redraws it."""
    specs = [VERBS[v] for v in verbs if v in VERBS][:MAX_OPTIONS]
    spec = VERBS.get(verb or "")
    picker: dict[str, Any] = {
        "type": "static_select",
        "action_id": ACTION_PICK_VERB,
        "placeholder": _plain("Pick a command", MAX_PLACEHOLDER_CHARS),
        "options": [_option(s) for s in specs],
    }
    if spec is not None and spec in specs:
        picker["initial_option"] = _option(spec)
    view_blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": BLOCK_VERB,
            "dispatch_action": True,
            "label": _plain("Command", MAX_LABEL_CHARS),
            "hint": _plain(
                spec.summary if spec else "Only the commands you may run.", MAX_LABEL_CHARS
            ),
            "element": picker,
        }
    ]
    one_room = spec is not None and not spec.multi_room
    view_blocks.append(
        _text_input(
            BLOCK_ROOMS,
            "Room" if one_room else "Rooms",
            "One room ID."
            if one_room
            else "Room IDs, separated by spaces or line breaks (type the command for more "
            f"than fit in {MAX_INPUT_CHARS:,} characters).",
            placeholder="room-test",
            multiline=not one_room,
        )
    )
    field = value_field(spec)
    if field is not None:
        view_blocks.append(
            _text_input(
                BLOCK_VALUE,
                field.label,
                field.hint,
                placeholder=field.placeholder,
                multiline=field.multiline,
                optional=field.optional,
            )
        )
    if spec is not None and spec.needs_duration:
        view_blocks.append(
            _text_input(
                BLOCK_DURATION,
                "For how long",
                "How long the ban lasts: e.g. 30m, 2h, 7d (at most 30d).",
                placeholder="2h",
            )
        )
    if spec is None or spec.kind is VerbKind.WRITE:
        view_blocks.append(
            _text_input(
                BLOCK_REASON,
                "Reason",
                f"Recorded with the change (at most {REASON_MAX_BYTES} UTF-8 bytes).",
                multiline=True,
                optional=True,
            )
        )
        view_blocks.append(
            {
                "type": "input",
                "block_id": BLOCK_OPTIONS,
                "optional": True,
                "label": _plain("Options", MAX_LABEL_CHARS),
                "element": {
                    "type": "checkboxes",
                    "action_id": _action_id(BLOCK_OPTIONS),
                    "options": [
                        {
                            "text": _plain(
                                "Dry run: show what would be sent", MAX_OPTION_TEXT_CHARS
                            ),
                            "value": _DRY_RUN,
                        }
                    ],
                },
            }
        )
    view_blocks.append(
        blocks.context(
            f"Runs exactly like typing the command in <#{context.channel_id}>: the same "
            "permission check, confirmation and audit trail. The result is posted there."
        )
    )
    return {
        "type": "modal",
        "callback_id": CALLBACK_FORM,
        "title": _plain("roombot", MAX_TITLE_CHARS),
        "submit": _plain("Run", MAX_TITLE_CHARS),
        "close": _plain("Cancel", MAX_TITLE_CHARS),
        "private_metadata": context.encode(),
        "blocks": view_blocks,
    }
