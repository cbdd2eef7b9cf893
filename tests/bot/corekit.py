"""The core, built in-process for fast tests: `RoomService` and its collaborators, real all the way
down to a Room Engine emulator on 127.0.0.1 and an in-memory audit store.

`open_core()` starts an emulator (port 0), a `RoomEngineClient` whose HTTP goes through a `Wire`
(a pass-through transport a test can hook to observe or fault individual calls), a fast
`RateBudget` and an `AuditStore(":memory:")` on a `FakeClock`, and a `RoomService` over them with
a policy loaded from a TOML file, as the real composition root does. Nothing sleeps on the real
clock: client backoff and rate pacing sleep on fake clocks.

Fixtures (`core`, `make_core`) live in `tests/bot/conftest.py`; import helpers from here.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.audit import AuditEntry, AuditError, AuditStore, Lease, NewEntry, NewRequest
from bot.audit.factory import open_dialect
from bot.audit.rows import Completion
from bot.budget import RateBudget
from bot.commands import parse_command
from bot.outcomes import Actor, Plan, RunKind, Source
from bot.policy import Policy, known_verbs, load_policy
from bot.requests.leases import HeldLease
from bot.requests.plans import new_request
from bot.requests.recorder import AuditRecorder
from bot.requests.runner import Runner
from bot.service import RoomService
from bot.tencent.client import RetryPolicy, RoomEngineClient
from bot.tencent.emulator import RecordedRequest, RoomEngineEmulator
from testkit.clock import FakeClock

SDKAPPID = 1400000042
SECRET_KEY = "core0test0secret0key" + "0" * 44
ADMIN = "administrator"

ALICE = "U0ALICE01"  # allow-listed by default
BOB = "U0BOB0001"
MALLORY = "U0MALLORY"  # granted nothing
GENERAL = "C0GENERAL1"
INCIDENT = "C0INCIDENT"
TEAM = "T0TEAM001"
ROOMS = ("room-test", "room-2", "room-3")

#: What a hook on the wire sees of one call: the Room Engine command and its JSON body.
Hook = Callable[[str, dict[str, Any]], Awaitable[httpx.Response | None]]

_policy_files = itertools.count(1)
# Built once: a fresh transport would otherwise load the CA bundle for each test (~0.1 s), and
# every request goes to the emulator over plain HTTP anyway.
_TLS = httpx.create_ssl_context()


class Wire(httpx.AsyncBaseTransport):
    """The client's HTTP transport: real HTTP to the emulator, with an optional `hook`.

    The hook runs before each request is sent; it may raise (an httpx error is what the network
    would raise), return a response to answer instead of the emulator, or return None to let the
    request through.
    """

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport(verify=_TLS)
        self.hook: Hook | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.hook is not None:
            body = json.loads(await request.aread())
            answer = await self.hook(request.url.path.rsplit("/", 1)[-1], body)
            if answer is not None:
                return answer
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def room_of(body: dict[str, Any]) -> str:
    """The RoomId a Room Engine request body is about."""
    info = body.get("RoomInfo")
    return str(info["RoomId"] if isinstance(info, dict) else body["RoomId"])


def actor(
    user_id: str = ALICE,
    *,
    channel_id: str | None = GENERAL,
    source: Source = Source.SLASH,
    is_operator: bool = False,
) -> Actor:
    """Someone asking, from the envelope's point of view."""
    return Actor(
        user_id=user_id,
        source=source,
        team_id=TEAM,
        channel_id=channel_id,
        is_operator=is_operator,
    )


def plan_for(text: str, who: Actor | None = None, *, kind: RunKind = RunKind.REQUEST) -> Plan:
    """The plan `RoomService.plan` makes of `text`, without asking the policy."""
    command = parse_command(text)
    return Plan(
        command=command,
        actor=who or actor(),
        calls=tuple(command.calls(who.user_id if who else actor().user_id)),
        raw_text=text,
        kind=kind,
    )


class BrokenStore(AuditStore):
    """A real audit store whose chosen operations fail as a broken disk would make them fail."""

    fail_begin = False
    fail_complete = False
    fail_claim = False

    async def claim_request(
        self, new: NewRequest, *, hold: bool = True, prefetch: Mapping[str, int] | None = None
    ) -> Lease | None:
        if self.fail_claim:
            raise AuditError("the audit store could not record a request: database or disk is full")
        return await super().claim_request(new, hold=hold, prefetch=prefetch)

    async def begin_request(
        self,
        lease: Lease,
        entries: Sequence[NewEntry],
        reply: Any = None,
        *,
        timer: NewRequest | None = None,
    ) -> list[int]:
        if self.fail_begin:
            raise AuditError("the audit store could not start a request: disk I/O error")
        return await super().begin_request(lease, entries, reply, timer=timer)

    async def complete_request(
        self, lease: Lease, completions: Sequence[tuple[int, Completion]], reply: Any = None
    ) -> None:
        if self.fail_complete:
            raise AuditError("the audit store could not complete a request: disk I/O error")
        await super().complete_request(lease, completions, reply)

    async def claim(self, key: str) -> bool:
        if self.fail_claim:
            raise AuditError("the audit store could not claim a key: database or disk is full")
        return await super().claim(key)


@dataclass
class Core:
    """A running core: the service, what it talks to, and ways to look at both."""

    service: RoomService
    emulator: RoomEngineEmulator
    store: AuditStore
    client: RoomEngineClient
    wire: Wire
    clock: FakeClock
    tmp_path: Path
    policy: Policy

    def runner(self, *, allow_unaudited: bool = False) -> Runner:
        """A runner over this core's client and audit store (what the service uses); its audit
        retries sleep on the core's fake clock."""
        return Runner(
            self.client,
            AuditRecorder(self.store),
            allow_unaudited=allow_unaudited,
            sleep=self.clock.sleep,
        )

    async def leased(self, plan: Plan) -> HeldLease:
        """Put `plan`'s request on record and hold its lease in the service's book, as the
        request life's claim does: what `Runner.run` is given as `held`, so its rows are
        written."""
        lease = await self.store.claim_request(new_request(plan, {"adapter": "test"}, None))
        assert lease is not None
        assert self.service.book is not None
        return self.service.book.hold(lease)

    def calls(self, command: str = "update_room_info") -> list[RecordedRequest]:
        """The emulator's recorded requests for `command`, in arrival order."""
        return [r for r in self.emulator.requests if r.command == command]

    def calls_for(self, room_id: str, command: str = "update_room_info") -> list[RecordedRequest]:
        """The recorded `command` requests about one room."""
        return [r for r in self.calls(command) if r.body is not None and room_of(r.body) == room_id]

    async def rows(self) -> list[AuditEntry]:
        """Every audit row, oldest first."""
        return sorted(await self.store.query(limit=10_000), key=lambda r: r.id)

    def load_policy(self, toml: str | None, *, allowed_users: Iterable[str] = ()) -> Policy:
        """A policy as `ROOMBOT_POLICY_FILE` (written to a fresh file) and the allow-list give."""
        return load_policy_file(self.tmp_path, toml, allowed_users=allowed_users)


def load_policy_file(
    tmp_path: Path, toml: str | None, *, allowed_users: Iterable[str] = ()
) -> Policy:
    """Load a policy from `toml` written to a fresh file under `tmp_path` (None: no file)."""
    path = None
    if toml is not None:
        path = tmp_path / f"policy-{next(_policy_files)}.toml"
        path.write_text(toml, encoding="utf-8")
    return load_policy(allowed_users=allowed_users, policy_file=path, known_verbs=known_verbs())


@asynccontextmanager
async def open_core(
    tmp_path: Path,
    *,
    rooms: Iterable[str | Mapping[str, Any]] = ROOMS,
    allowed_users: Iterable[str] = (ALICE,),
    policy_toml: str | None = None,
    confirm_above: int = 5,
    max_rooms: int = 500,
    with_audit: bool = True,
    store_class: type[AuditStore] = AuditStore,
    retry: RetryPolicy | None = None,
) -> AsyncIterator[Core]:
    """Start the emulator, the client and the store, and build a `RoomService` over them."""
    clock = FakeClock(now=1_700_000_000.0)
    pacing = FakeClock()
    emulator = RoomEngineEmulator(
        sdkappid=SDKAPPID, secret_key=SECRET_KEY, admin_id=ADMIN, rooms=list(rooms)
    )
    base_url = await emulator.start()
    wire = Wire()
    client = RoomEngineClient(
        base_url=base_url,
        sdkappid=SDKAPPID,
        secret_key=SECRET_KEY,
        admin_id=ADMIN,
        rate_budget=RateBudget(200, burst=200, clock=pacing, sleep=pacing.sleep),
        retry=retry or RetryPolicy(),
        transport=wire,
        sleep=pacing.sleep,
    )
    store = store_class(
        await open_dialect(":memory:", clock=clock), clock=clock, owner="test-replica"
    )
    policy = load_policy_file(tmp_path, policy_toml, allowed_users=allowed_users)
    service = RoomService(
        client=client,
        policy=policy,
        audit=store if with_audit else None,
        max_rooms=max_rooms,
        confirm_above=confirm_above,
        sleep=clock.sleep,
        wall=clock,
    )
    try:
        yield Core(
            service=service,
            emulator=emulator,
            store=store,
            client=client,
            wire=wire,
            clock=clock,
            tmp_path=tmp_path,
            policy=policy,
        )
    finally:
        await store.close()
        await client.aclose()
        await emulator.stop()
