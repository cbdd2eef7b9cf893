"""Confirmation prompts: stored server-side, resolved exactly once, only by the requester, and
only while fresh; on both backends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.audit import (
    DEFAULT_CONFIRMATION_TTL_S,
    AuditStore,
    Confirmation,
    ConfirmationState,
    ConfirmationStatus,
    open_store,
)
from testkit.clock import FakeClock

OWNER = "U0OWNER"
OTHER = "U0OTHER"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def store(target: str | Path, clock: FakeClock) -> AsyncIterator[AuditStore]:
    opened = await open_store(target, clock=clock)
    yield opened
    await opened.close()


async def _prompt(store: AuditStore, text: str = "lockdown room-1 room-2") -> str:
    return await store.create_confirmation(user_id=OWNER, team_id="T1", channel_id="C1", text=text)


async def test_keys_are_url_safe_short_and_distinct(store: AuditStore) -> None:
    keys = {await _prompt(store) for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert re.fullmatch(r"[A-Za-z0-9_-]{16,40}", key)


async def test_the_owner_confirms_once(store: AuditStore, clock: FakeClock) -> None:
    created = clock.now
    key = await _prompt(store)
    clock.now += 30
    status, prompt = await store.resolve_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.OK
    assert prompt == Confirmation(
        key=key,
        user_id=OWNER,
        team_id="T1",
        channel_id="C1",
        text="lockdown room-1 room-2",
        created_at=created,
        state=ConfirmationState.CONFIRMED,
    )
    status, prompt = await store.resolve_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.ALREADY_RESOLVED
    assert prompt is not None
    assert prompt.state == ConfirmationState.CONFIRMED


async def test_an_unknown_key_is_not_found(store: AuditStore) -> None:
    assert await store.resolve_confirmation("nope", user_id=OWNER) == (
        ConfirmationStatus.NOT_FOUND,
        None,
    )
    assert await store.cancel_confirmation("nope", user_id=OWNER) == (
        ConfirmationStatus.NOT_FOUND,
        None,
    )


async def test_someone_else_cannot_confirm_or_cancel_and_changes_nothing(
    store: AuditStore,
) -> None:
    key = await _prompt(store)
    status, prompt = await store.resolve_confirmation(key, user_id=OTHER)
    assert status is ConfirmationStatus.WRONG_USER
    assert prompt is not None
    assert prompt.user_id == OWNER
    assert prompt.state == ConfirmationState.PENDING
    status, _ = await store.cancel_confirmation(key, user_id=OTHER)
    assert status is ConfirmationStatus.WRONG_USER
    # The owner can still act on it.
    status, _ = await store.resolve_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.OK


async def test_a_stale_prompt_expires_and_stays_expired(
    store: AuditStore, clock: FakeClock
) -> None:
    key = await _prompt(store)
    clock.now += DEFAULT_CONFIRMATION_TTL_S + 1
    status, prompt = await store.resolve_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.EXPIRED
    assert prompt is not None
    assert prompt.state == ConfirmationState.EXPIRED
    # Expired is final: a later click (even with a longer TTL) or a cancel does nothing.
    status, _ = await store.resolve_confirmation(key, user_id=OWNER, ttl_s=10_000)
    assert status is ConfirmationStatus.EXPIRED
    status, _ = await store.cancel_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.EXPIRED


async def test_the_ttl_is_the_callers(store: AuditStore, clock: FakeClock) -> None:
    key = await _prompt(store)
    clock.now += 60
    status, _ = await store.resolve_confirmation(key, user_id=OWNER, ttl_s=60)
    assert status is ConfirmationStatus.OK  # exactly at the TTL is still in time

    late = await _prompt(store)
    clock.now += 61
    status, _ = await store.resolve_confirmation(late, user_id=OWNER, ttl_s=60)
    assert status is ConfirmationStatus.EXPIRED


async def test_cancel_resolves_it(store: AuditStore) -> None:
    key = await _prompt(store)
    status, prompt = await store.cancel_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.OK
    assert prompt is not None
    assert prompt.state == ConfirmationState.CANCELLED
    status, prompt = await store.resolve_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.ALREADY_RESOLVED
    assert prompt is not None
    assert prompt.state == ConfirmationState.CANCELLED


async def test_concurrent_double_click_confirms_once(store: AuditStore) -> None:
    key = await _prompt(store)
    results = await asyncio.gather(
        *(store.resolve_confirmation(key, user_id=OWNER) for _ in range(5))
    )
    statuses = sorted(status for status, _ in results)
    assert statuses == sorted([ConfirmationStatus.OK] + [ConfirmationStatus.ALREADY_RESOLVED] * 4)


async def test_two_instances_on_one_database_confirm_once(target: str | Path) -> None:
    # Many prompts, each clicked through both instances at once: enough interleavings that a
    # check-then-update without the lock would be caught (as a double OK or an error).
    async with await open_store(target) as a, await open_store(target) as b:
        keys = [
            await a.create_confirmation(user_id=OWNER, team_id=None, channel_id=None, text="x")
            for _ in range(40)
        ]
        results = await asyncio.gather(
            *(s.resolve_confirmation(key, user_id=OWNER) for key in keys for s in (a, b))
        )
    for key, via_a, via_b in zip(keys, results[0::2], results[1::2], strict=True):
        statuses = sorted([via_a[0], via_b[0]])
        assert statuses == [ConfirmationStatus.ALREADY_RESOLVED, ConfirmationStatus.OK], key


async def test_a_prompt_survives_a_restart(target: str | Path) -> None:
    path = target
    async with await open_store(path) as before:
        key = await before.create_confirmation(
            user_id=OWNER, team_id="T1", channel_id=None, text="lockdown r1"
        )
    async with await open_store(path) as after:
        status, prompt = await after.resolve_confirmation(key, user_id=OWNER)
    assert status is ConfirmationStatus.OK
    assert prompt is not None
    assert (prompt.text, prompt.team_id, prompt.channel_id) == ("lockdown r1", "T1", None)


async def test_prompts_older_than_a_day_are_forgotten(store: AuditStore, clock: FakeClock) -> None:
    old = await _prompt(store)
    clock.now += 86_401
    await _prompt(store)  # creating a prompt prunes the old ones
    status, _ = await store.resolve_confirmation(old, user_id=OWNER, ttl_s=10**9)
    assert status is ConfirmationStatus.NOT_FOUND
