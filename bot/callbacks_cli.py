"""`roombot callbacks install URL [--members] | show | remove`: the app's Room Engine callback
configuration, through `v4/room_config/` (`set_callback`, `update_callback`, `get_callback`,
`delete_callback`; one configuration per SDKAppID).

`install` registers the room-level callbacks (`ROOM_CALLBACKS`) by default and the member and
seat ones (`MEMBER_CALLBACKS`) only when asked: those come by the hundred a second on a busy
app; roombot counts them, and of the seat ones records (and alerts) only the seat changes made
outside roombot, never people taking and leaving seats. The URL gets
`?token=ROOMBOT_CALLBACK_TOKEN` appended when it lacks one; a URL carrying another token is
refused (every callback would be refused with 401).
An existing configuration is replaced, so `install` can be run again to change the URL.

Everything printed has the token masked; it never appears in output, even inside an error text
Tencent echoes back. Failures are `CallbacksResult`s with the usual hint, not exceptions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from bot import wording
from bot.console.text import PLAIN
from bot.errors import RoombotError
from bot.failures import describe_failure
from bot.models import CallbackCommand
from bot.tencent.client import NO_CALLBACK_CONFIG, RoomEngineClient
from bot.tencent.errors import ApiError, RoomEngineError

#: What `install` registers by default: the room-level callbacks.
ROOM_CALLBACKS: Final = (
    CallbackCommand.CREATE_ROOM.value,
    CallbackCommand.DESTROY_ROOM.value,
    CallbackCommand.UPDATE_ROOM_INFO.value,
)
#: What `install --members` adds: member and seat callbacks (counted; seat changes made outside
#: roombot are recorded, and locks and removals alerted).
MEMBER_CALLBACKS: Final = (
    CallbackCommand.MEMBER_ENTER.value,
    CallbackCommand.MEMBER_LEAVE.value,
    CallbackCommand.SEAT_INFO_CHANGED.value,
)
#: Where `roombot serve` receives callbacks.
CALLBACK_PATH: Final = "/tencent/callback"
#: ErrorCode of `set_callback` when a configuration exists already.
CALLBACK_CONFIG_EXISTS: Final = 100300
_MASK: Final = "***"


class CallbacksUsageError(RoombotError):
    """The URL or the settings cannot make a working configuration (exit 2)."""


@dataclass(frozen=True)
class CallbacksResult:
    """What a subcommand prints, line by line, and whether it worked."""

    lines: list[str] = field(default_factory=list)
    ok: bool = True


def install_url(url: str, token: str | None) -> str:
    """`url` with `token=` in its query (added when missing). `CallbacksUsageError` when the
    URL is not http(s) with a host, when no token is configured, or when the URL carries
    another one."""
    if token is None:
        raise CallbacksUsageError(
            "ROOMBOT_CALLBACK_TOKEN is not set: roombot serves no callback endpoint without it "
            "(set it where `roombot serve` runs, and here)"
        )
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbacksUsageError(
            f"the URL must start with https:// (or http://) and name a host, "
            f"e.g. https://roombot.example.com{CALLBACK_PATH}"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    given = [value for key, value in query if key == "token"]
    if given:
        if given != [token]:
            raise CallbacksUsageError(
                "the URL carries a token that is not ROOMBOT_CALLBACK_TOKEN: roombot would "
                "refuse every callback; drop `token=` from the URL and it is added for you"
            )
        return url.strip()
    query.append(("token", token))
    return urlunsplit(parts._replace(query=urlencode(query)))


def masked(url: str) -> str:
    """`url` with the value of every `token`, `Sign` and `usersig` parameter masked."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    hidden = {"token", "sign", "usersig"}
    query = [
        (key, _MASK if key.lower() in hidden else value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    text = urlencode(query, safe="*")
    return urlunsplit(parts._replace(query=text))


def _scrub(text: str, token: str | None) -> str:
    return text.replace(token, _MASK) if token else text


def _failure(exc: RoomEngineError, action: str, token: str | None) -> CallbacksResult:
    failure = describe_failure(exc)
    line = f"could not {action}: {wording.failure_phrase(PLAIN, failure)}"
    line += f" · {wording.request_id_phrase(PLAIN, failure.request_id)}"
    return CallbacksResult([_scrub(line, token)], ok=False)


def _commands_line(commands: Sequence[str]) -> str:
    return f"commands: {', '.join(commands)}"


def _path_note(url: str) -> list[str]:
    if urlsplit(url).path.rstrip("/") != CALLBACK_PATH:
        return [f"note: `roombot serve` receives callbacks at {CALLBACK_PATH}, not at this path"]
    return []


async def install(
    client: RoomEngineClient, url: str, *, token: str | None, members: bool = False
) -> CallbacksResult:
    """Register `url` (with the token) for the room-level callbacks, and the member and seat
    ones too with `members`; replaces any existing configuration."""
    full = install_url(url, token)
    commands = list(ROOM_CALLBACKS) + (list(MEMBER_CALLBACKS) if members else [])
    try:
        existing = await client.get_callback()
        if existing is None:
            try:
                result = await client.set_callback(full, commands)
                done = "installed"
            except ApiError as exc:
                if exc.code != CALLBACK_CONFIG_EXISTS:
                    raise
                result = await client.update_callback(full, commands)  # made meanwhile
                done = "replaced the existing configuration"
        else:
            result = await client.update_callback(full, commands)
            done = f"replaced the configuration for {masked(existing.url)}"
    except RoomEngineError as exc:
        return _failure(exc, "install the callback configuration", token)
    lines = [
        f"{done}: {masked(full)}",
        _commands_line(commands),
        wording.request_id_phrase(PLAIN, result.request_id),
        *_path_note(full),
    ]
    if not members:
        lines.append("member and seat callbacks are not registered (add them with --members)")
    return CallbacksResult([_scrub(line, token) for line in lines])


async def show(client: RoomEngineClient, *, token: str | None) -> CallbacksResult:
    """The configuration, token masked, and whether roombot would accept its callbacks."""
    try:
        config = await client.get_callback()
    except RoomEngineError as exc:
        return _failure(exc, "read the callback configuration", token)
    if config is None:
        return CallbacksResult(
            ["no callback configuration (install one: roombot callbacks install URL)"]
        )
    lines = [
        f"url: {masked(config.url)}",
        _commands_line(config.commands),
        wording.request_id_phrase(PLAIN, config.request_id),
    ]
    carried = [v for k, v in parse_qsl(urlsplit(config.url).query) if k == "token"]
    if token is None:
        lines.append("note: ROOMBOT_CALLBACK_TOKEN is not set here, so the token was not checked")
    elif carried != [token]:
        lines.append(
            "warning: the URL does not carry ROOMBOT_CALLBACK_TOKEN: roombot refuses these "
            "callbacks (run `roombot callbacks install URL` again)"
        )
    return CallbacksResult([_scrub(line, token) for line in lines])


async def remove(client: RoomEngineClient, *, token: str | None) -> CallbacksResult:
    """Delete the configuration; having none is not a failure."""
    try:
        result = await client.delete_callback()
    except ApiError as exc:
        if exc.code == NO_CALLBACK_CONFIG:
            return CallbacksResult(["there was no callback configuration; nothing to remove"])
        return _failure(exc, "remove the callback configuration", token)
    except RoomEngineError as exc:
        return _failure(exc, "remove the callback configuration", token)
    rid = wording.request_id_phrase(PLAIN, result.request_id)
    return CallbacksResult([f"removed the callback configuration · {rid}"])
