"""Test doubles shared by the policy tests (no tests here): a fake Slack user group API and the
verb table the command parser will pass in (plus the shared fake clock, re-exported)."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from testkit.clock import FakeClock

# Every word the command parser accepts, mapped to its canonical verb (DESIGN §1 table).
KNOWN_VERBS: dict[str, str] = {
    "mute-all": "mute-all",
    "mute-audio": "mute-all",
    "disable-audio": "mute-all",
    "unmute-all": "unmute-all",
    "unmute-audio": "unmute-all",
    "enable-audio": "unmute-all",
    "disable-video": "disable-video",
    "enable-video": "enable-video",
    "disable-chat": "disable-chat",
    "mute-chat": "disable-chat",
    "enable-chat": "enable-chat",
    "unmute-chat": "enable-chat",
    "disable-screenshare": "disable-screenshare",
    "enable-screenshare": "enable-screenshare",
    "disable-recording": "disable-recording",
    "enable-recording": "enable-recording",
    "lockdown": "lockdown",
    "lift-lockdown": "lift-lockdown",
    "rename": "rename",
    "set-capacity": "set-capacity",
    "max-members": "set-capacity",
    "seat-mode": "seat-mode",
    "set-custom": "set-custom",
    "custom-info": "set-custom",
    "set": "set",
    "show": "show",
    "history": "history",
    "help": "help",
}

#: The canonical verbs a "*" role grants (help is not a policy verb).
POLICY_VERBS = frozenset(KNOWN_VERBS.values()) - {"help"}

__all__ = ["KNOWN_VERBS", "POLICY_VERBS", "FakeClock", "FakeGroups"]


class FakeGroups:
    """A stand-in for `usergroups.users.list`: real async lookups over a dict, counted.

    `fail[group] = exc` makes lookups of that group raise `exc` until removed. `hold()` makes
    fetches wait until `release()`, so tests can pile up concurrent lookups deterministically.
    """

    def __init__(self, groups: dict[str, Collection[str]] | None = None) -> None:
        self.groups: dict[str, Collection[str]] = dict(groups or {})
        self.fail: dict[str, Exception] = {}
        self.calls: list[str] = []
        self.started = asyncio.Event()
        self._gate: asyncio.Event | None = None

    def hold(self) -> None:
        self._gate = asyncio.Event()

    def release(self) -> None:
        assert self._gate is not None
        self._gate.set()

    async def __call__(self, group_id: str) -> Collection[str]:
        self.calls.append(group_id)
        self.started.set()
        if self._gate is not None:
            await self._gate.wait()
        if group_id in self.fail:
            raise self.fail[group_id]
        if group_id not in self.groups:
            raise LookupError("no_such_subteam")
        return self.groups[group_id]
