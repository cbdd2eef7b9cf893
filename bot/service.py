"""The one use case: a `/room` request from an actor → policy → Room Engine calls → outcomes.

Free of Slack types: the Slack handlers and the console are both thin adapters over `RoomService`.
A request goes through two steps so adapters can answer fast:

1. `prepare(text, actor)` parses and checks the policy (no Room Engine call) and returns what to do:
   `Rejected`, `HelpReply`, `DryRun`, or `Approved`.
2. `execute(approved, ...)` (writes) or `show(approved)` (reads) calls Room Engine and returns
   outcomes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bot.commands import VERBS, Command, ParseError, VerbKind, parse_command, render_help
from bot.config import Settings
from bot.policy import Decision, GroupDirectory, Policy
from bot.tencent.client import RoomEngineClient, RoomSnapshot
from bot.tencent.errors import (
    ApiError,
    MalformedResponse,
    RequestTimeout,
    RoomEngineError,
    TransportError,
)

log = logging.getLogger(__name__)

#: Rooms of one request in flight at once; the client's rate budget paces the actual calls.
MAX_CONCURRENT_ROOMS = 64


class Source(StrEnum):
    """Where a request came from (recorded in the audit trail)."""

    SLASH = "slash"
    MENTION = "mention"
    BUTTON = "button"
    CONSOLE = "console"


@dataclass(frozen=True)
class Actor:
    """Who is asking, and where. `user_id` comes from the request envelope, never the text."""

    user_id: str
    source: Source
    team_id: str | None = None
    channel_id: str | None = None
    #: The console's local operator: every verb allowed, no policy lookup.
    is_operator: bool = False


# -- outcomes of `prepare` -------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejected:
    """Nothing will be called: the text did not parse, or the policy said no."""

    message: str
    usage: str | None = None
    denied: bool = False


@dataclass(frozen=True)
class HelpReply:
    """`help` or `help VERB`: text listing only what the caller may run."""

    text: str


@dataclass(frozen=True)
class DryRun:
    """`--dry-run`: the exact request bodies that would be sent; nothing is called."""

    command: Command
    bodies: tuple[dict[str, Any], ...]


@dataclass(frozen=True)
class Approved:
    """Parsed and permitted: ready for `execute` (writes) or `show` (reads)."""

    command: Command
    actor: Actor
    decision: Decision


Prepared = Rejected | HelpReply | DryRun | Approved


# -- outcomes of calls ----------------------------------------------------------------------------


class FailureKind(StrEnum):
    """How a Room Engine call failed, coarsely, for rendering."""

    API = "api"
    TRANSPORT = "transport"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    INTERNAL = "internal"


@dataclass(frozen=True)
class Failure:
    """A failed call, ready to show a user: what, the Tencent code if any, and a hint."""

    kind: FailureKind
    message: str
    hint: str
    code: int | None = None
    request_id: str | None = None
    #: Set for unexpected errors only: the id the user can report, also in the log line.
    correlation_id: str | None = None


@dataclass(frozen=True)
class RoomResult:
    """The outcome of one room's `update_room_info`."""

    room_id: str
    changes: dict[str, Any]
    request_id: str | None = None
    failure: Failure | None = None
    attempts: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        """True when Tencent answered OK."""
        return self.failure is None


@dataclass(frozen=True)
class RoomView:
    """The outcome of one room's `get_room_info`."""

    room_id: str
    snapshot: RoomSnapshot | None = None
    failure: Failure | None = None


@dataclass(frozen=True)
class Progress:
    """How far a many-room request has got."""

    done: int
    failed: int
    total: int


@dataclass
class RunResult:
    """Everything a write request produced, in the order its rooms were named."""

    command: Command
    actor: Actor
    results: list[RoomResult] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def failed(self) -> list[RoomResult]:
        """The rooms that did not change."""
        return [r for r in self.results if not r.ok]

    @property
    def succeeded(self) -> list[RoomResult]:
        """The rooms Tencent confirmed."""
        return [r for r in self.results if r.ok]


ProgressCallback = Callable[[Progress], Awaitable[None]]


def known_verbs() -> dict[str, str]:
    """Every word the policy file may use for a verb (names and aliases) → canonical name."""
    words: dict[str, str] = {}
    for name, spec in VERBS.items():
        words[name] = name
        for alias in spec.aliases:
            words[alias] = name
    return words


def load_policy(settings: Settings) -> Policy:
    """The policy from `ROOMBOT_ALLOWED_USERS` and `ROOMBOT_POLICY_FILE` (raises PolicyError)."""
    return Policy.load(
        allowed_users=settings.roombot_allowed_users,
        policy_file=settings.roombot_policy_file,
        known_verbs=known_verbs(),
    )


def new_correlation_id() -> str:
    """A short id for an unexpected error, shown to the user and written to the log."""
    return secrets.token_hex(4)


def describe_failure(exc: BaseException, *, room_id: str | None = None) -> Failure:
    """Turn any exception from a Room Engine call into a `Failure` (the one place this happens).

    Unexpected exceptions are logged with a fresh correlation id, which the `Failure` carries.
    """
    if isinstance(exc, ApiError):
        return Failure(
            kind=FailureKind.API,
            message=exc.info or f"error {exc.code}",
            hint=exc.hint,
            code=exc.code,
            request_id=exc.request_id,
        )
    if isinstance(exc, RequestTimeout):
        return Failure(
            kind=FailureKind.TIMEOUT,
            message="Room Engine did not answer in time",
            hint=exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, TransportError):
        return Failure(
            kind=FailureKind.TRANSPORT,
            message=str(exc),
            hint=exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, MalformedResponse):
        return Failure(
            kind=FailureKind.MALFORMED,
            message="Room Engine sent a reply roombot could not read",
            hint=exc.hint,
            request_id=exc.request_id,
        )
    if isinstance(exc, RoomEngineError):
        return Failure(
            kind=FailureKind.TRANSPORT, message=str(exc), hint=exc.hint, request_id=exc.request_id
        )
    correlation_id = new_correlation_id()
    log.error(
        "unexpected error [%s] room=%s: %s",
        correlation_id,
        room_id,
        type(exc).__name__,
        exc_info=exc,
    )
    return Failure(
        kind=FailureKind.INTERNAL,
        message="unexpected error inside roombot",
        hint=f"report error id {correlation_id} to the roombot maintainers",
        correlation_id=correlation_id,
    )


class RoomService:
    """Parses, authorizes and carries out `/room` requests against Room Engine."""

    def __init__(
        self,
        *,
        client: RoomEngineClient,
        policy: Policy,
        groups: GroupDirectory | None = None,
        max_rooms: int = 500,
    ) -> None:
        self._client = client
        self._policy = policy
        self._groups = groups
        self._max_rooms = max_rooms

    @property
    def client(self) -> RoomEngineClient:
        """The Room Engine client this service calls."""
        return self._client

    async def prepare(self, text: str, actor: Actor) -> Prepared:
        """Parse `text` and check the policy for `actor`. Calls nothing on Room Engine."""
        try:
            command = parse_command(text, max_rooms=self._max_rooms)
        except ParseError as exc:
            return Rejected(message=exc.message, usage=exc.usage)
        if command.spec.kind is VerbKind.HELP:
            return HelpReply(text=await self.help_text(actor, topic=command.topic))
        decision = await self.authorize(command.verb, actor)
        if not decision.allowed:
            return Rejected(message=decision.reason, denied=True)
        if command.dry_run and command.spec.kind is VerbKind.WRITE:
            return DryRun(command=command, bodies=tuple(p.body() for p in command.patches()))
        return Approved(command=command, actor=actor, decision=decision)

    async def authorize(self, verb: str, actor: Actor) -> Decision:
        """The policy's decision for `actor` running `verb` (canonical) in the actor's channel."""
        if actor.is_operator:
            return Decision(
                allowed=True, verb=verb, user_id=actor.user_id, reason="local operator", role=None
            )
        return await self._policy.decide(
            user_id=actor.user_id, verb=verb, channel_id=actor.channel_id, groups=self._groups
        )

    async def help_text(self, actor: Actor, *, topic: str | None = None) -> str:
        """Help listing only the verbs `actor` may run (or one verb's usage)."""
        from bot.commands import render_verb_help

        if topic is not None:
            return render_verb_help(topic)
        if actor.is_operator:
            return render_help(None)
        allowed = await self._policy.allowed_verbs(
            user_id=actor.user_id, channel_id=actor.channel_id, groups=self._groups
        )
        return render_help(lambda verb: verb in allowed or verb == "help")

    async def execute(
        self, approved: Approved, *, progress: ProgressCallback | None = None
    ) -> RunResult:
        """Send each room's patch (concurrently, paced by the client's rate budget)."""
        command = approved.command
        started = time.monotonic()
        patches = command.patches()
        total = len(patches)
        done = failed = 0
        gate = asyncio.Semaphore(MAX_CONCURRENT_ROOMS)

        async def one(index: int) -> RoomResult:
            nonlocal done, failed
            patch = patches[index]
            async with gate:
                result = await self._update(patch.room_id, patch)
            done += 1
            failed += 0 if result.ok else 1
            if progress is not None:
                try:
                    await progress(Progress(done=done, failed=failed, total=total))
                except Exception:  # a progress display must never break the request itself
                    log.exception("progress callback failed")
            return result

        results = await asyncio.gather(*(one(i) for i in range(total)))
        return RunResult(
            command=command,
            actor=approved.actor,
            results=list(results),
            elapsed_s=time.monotonic() - started,
        )

    async def _update(self, room_id: str, patch: Any) -> RoomResult:
        started = time.monotonic()
        try:
            outcome = await self._client.update_room_info(patch)
        except Exception as exc:
            return RoomResult(
                room_id=room_id,
                changes=patch.changes(),
                failure=describe_failure(exc, room_id=room_id),
                request_id=getattr(exc, "request_id", None),
                elapsed_s=time.monotonic() - started,
            )
        return RoomResult(
            room_id=room_id,
            changes=patch.changes(),
            request_id=outcome.request_id,
            attempts=outcome.attempts,
            elapsed_s=time.monotonic() - started,
        )

    async def show(self, approved: Approved) -> list[RoomView]:
        """Read each named room with `get_room_info`."""
        rooms: Sequence[str] = approved.command.rooms

        async def one(room_id: str) -> RoomView:
            try:
                return RoomView(room_id=room_id, snapshot=await self._client.get_room_info(room_id))
            except Exception as exc:
                return RoomView(room_id=room_id, failure=describe_failure(exc, room_id=room_id))

        return list(await asyncio.gather(*(one(r) for r in rooms)))
