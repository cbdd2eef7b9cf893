"""Slack user-group membership for the policy: fetched through an injected function, cached.

The core never calls Slack itself: the Slack adapter passes a fetcher (it calls
`usergroups.users.list`); `GroupDirectory` adds the TTL cache, one shared fetch for concurrent
lookups of a group, and fail-closed behaviour. A group whose members cannot be fetched grants
nothing, and `GroupLookupError` says why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection

from bot.errors import RoombotError, one_line


class GroupLookupError(RoombotError):
    """The members of a Slack user group could not be fetched, so the group grants nothing."""

    def __init__(self, group_id: str, detail: str) -> None:
        super().__init__(f"could not check membership of user group {group_id}: {detail}")
        self.group_id = group_id
        self.detail = detail


#: Fetches a user group's members: group ID -> member user IDs. Raises on any failure.
GroupFetcher = Callable[[str], Awaitable[Collection[str]]]


class GroupDirectory:
    """User group membership, fetched through `fetch` and cached.

    * Answers are cached for `ttl_s` seconds (measured with `clock`), because
      `usergroups.users.list` is a Tier 2 Slack method (about 20 calls a minute).
    * Concurrent lookups of the same group share one fetch.
    * Fail-closed: when a fetch raises, `members` raises `GroupLookupError`; an expired member
      list is never served in its place. The failure is remembered only for the short
      `failure_ttl_s` (0 = not at all), so a Slack outage is not hammered but is soon retried.
    """

    def __init__(
        self,
        fetch: GroupFetcher,
        *,
        ttl_s: float = 300.0,
        failure_ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        if not 0 <= failure_ttl_s <= ttl_s:
            raise ValueError("failure_ttl_s must be between 0 and ttl_s")
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._clock = clock
        self._members: dict[str, tuple[float, frozenset[str]]] = {}
        self._failures: dict[str, tuple[float, str]] = {}
        self._inflight: dict[str, asyncio.Task[frozenset[str]]] = {}

    def cached(self, group_id: str) -> frozenset[str] | None:
        """The group's members if a fresh answer is cached, else None. Never fetches."""
        entry = self._members.get(group_id)
        if entry is not None and self._clock() < entry[0]:
            return entry[1]
        return None

    async def members(self, group_id: str) -> frozenset[str]:
        """The user IDs in `group_id`, from the cache or one (shared) fetch.

        Raises `GroupLookupError` if the fetch failed (now, or within `failure_ttl_s`).
        """
        members = self.cached(group_id)
        if members is not None:
            return members
        failure = self._failures.get(group_id)
        if failure is not None and self._clock() < failure[0]:
            raise GroupLookupError(group_id, failure[1])
        task = self._inflight.get(group_id)
        if task is None:
            task = asyncio.create_task(self._refresh(group_id), name=f"usergroup {group_id}")
            self._inflight[group_id] = task
            task.add_done_callback(self._forget_task)
        # Shielded so one waiter being cancelled does not cancel the fetch the others await.
        return await asyncio.shield(task)

    async def _refresh(self, group_id: str) -> frozenset[str]:
        try:
            raw = await self._fetch(group_id)
            if isinstance(raw, str | bytes):
                # A bare string is a Collection[str] too; its characters are not user IDs.
                raise TypeError("the fetcher returned a string, not a list of user IDs")
            members = frozenset(str(user) for user in raw)
        except Exception as exc:
            detail = one_line(exc)
            if self._failure_ttl_s > 0:
                self._failures[group_id] = (self._clock() + self._failure_ttl_s, detail)
            raise GroupLookupError(group_id, detail) from exc
        self._members[group_id] = (self._clock() + self._ttl_s, members)
        self._failures.pop(group_id, None)
        return members

    def _forget_task(self, task: asyncio.Task[frozenset[str]]) -> None:
        for group_id, running in list(self._inflight.items()):
            if running is task:
                del self._inflight[group_id]
        if not task.cancelled():
            # Mark the exception retrieved: if every waiter was cancelled, asyncio would
            # otherwise log "exception was never retrieved" for an ordinary lookup failure.
            task.exception()
