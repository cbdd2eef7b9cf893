"""Who may run which `/room` verb, and where.

Deny by default. Two things grant verbs:

* `ROOMBOT_ALLOWED_USERS`: the listed user IDs may run every verb in every channel.
* `ROOMBOT_POLICY_FILE`: a TOML file of roles. A role grants its verbs (`"*"` for all) to its
  members, listed by Slack user ID and by Slack user group ID, optionally only in some channels::

      [roles.moderators]
      verbs = ["mute-all", "unmute-all", "show"]   # canonical names or aliases, or ["*"]
      users = ["U012ABCDEF"]
      usergroups = ["S0123ABCD"]
      channels = ["C0INCIDENT"]                    # optional guardrail

`help` is always allowed; it is never a policy verb (help output is filtered by `allowed_verbs`).

Decisions are made about the user ID Slack put in the request envelope, passed in as a parameter;
this module never reads command text, so naming someone in a command grants nothing.

User group membership comes from an injected fetcher (the Slack adapter calls
`usergroups.users.list`) wrapped in a `GroupDirectory`: cached with a TTL, one fetch for concurrent
lookups of the same group, and fail-closed: a group whose members cannot be fetched grants nothing.

Errors:

* `PolicyError` (a `ConfigError`): the policy is invalid. One line naming the file and key path.
* `GroupLookupError`: a user group's members could not be fetched; `decide` turns it into a reason.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import re
import time
import tomllib
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, NamedTuple

from bot.config import USER_ID_RE, ConfigError
from bot.errors import RoombotError

#: The verb everyone may always run; it is never granted or refused by the policy.
HELP_VERB: Final = "help"

#: Slack user group IDs (`usergroups.users.list?usergroup=S…`).
GROUP_ID_RE: Final = re.compile(r"^S[A-Z0-9]{2,20}$")

#: Slack channel IDs: public `C…`, private `G…` (older), direct messages `D…`.
CHANNEL_ID_RE: Final = re.compile(r"^[CGD][A-Z0-9]{2,20}$")

#: A role's `verbs = ["*"]`: every verb the command parser knows.
WILDCARD: Final = "*"

_MAX_DETAIL_CHARS: Final = 200


class PolicyError(ConfigError):
    """The permission policy is invalid: one line naming the file and the key path."""


class GroupLookupError(RoombotError):
    """The members of a Slack user group could not be fetched, so the group grants nothing."""

    def __init__(self, group_id: str, detail: str) -> None:
        super().__init__(f"could not check membership of user group {group_id}: {detail}")
        self.group_id = group_id
        self.detail = detail


#: Fetches a user group's members: group ID -> member user IDs. Raises on any failure.
GroupFetcher = Callable[[str], Awaitable[Collection[str]]]


@dataclass(frozen=True)
class Role:
    """A named grant: `verbs` (canonical names, or `{"*"}` for all) to `users` and members of
    `usergroups`, only in `channels` when that is not None."""

    name: str
    verbs: frozenset[str]
    users: frozenset[str] = frozenset()
    usergroups: frozenset[str] = frozenset()
    channels: frozenset[str] | None = None

    def grants(self, verb: str) -> bool:
        """True if this role's verbs include `verb` (a canonical name)."""
        return WILDCARD in self.verbs or verb in self.verbs

    def applies_in(self, channel_id: str | None) -> bool:
        """True unless a channel guardrail excludes `channel_id` (None: no channel, excluded)."""
        return self.channels is None or (channel_id is not None and channel_id in self.channels)


@dataclass(frozen=True)
class Decision:
    """Whether `user_id` may run `verb`, and why.

    `reason` says which grant allowed it (for the audit trail), or is the user-facing denial text,
    which always names the verb and the caller's user ID. `role` is the granting role, if any.
    """

    allowed: bool
    verb: str
    user_id: str
    reason: str
    role: str | None = None


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
            detail = _one_line(exc)
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


def _one_line(exc: BaseException) -> str:
    """An exception as one short line for a user-facing reason (Slack errors span lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > _MAX_DETAIL_CHARS:
        text = text[: _MAX_DETAIL_CHARS - 1] + "…"
    return text


class Policy:
    """Who may run which verb, where: the allow-list plus the roles of the policy file."""

    def __init__(
        self,
        *,
        allowed_users: Iterable[str] = (),
        roles: Iterable[Role] = (),
        verbs: Iterable[str] = (),
    ) -> None:
        """`verbs` are the canonical verbs the command parser knows, in display order; a `"*"`
        role or an allow-listed user gets all of them. Prefer `Policy.load`, which validates."""
        self.allowed_users: frozenset[str] = frozenset(allowed_users)
        self.roles: tuple[Role, ...] = tuple(roles)
        self._verbs = tuple(dict.fromkeys(verb for verb in verbs if verb != HELP_VERB))

    @classmethod
    def load(
        cls,
        *,
        allowed_users: Iterable[str],
        policy_file: Path | None,
        known_verbs: Mapping[str, str],
    ) -> Policy:
        """Build the policy from `ROOMBOT_ALLOWED_USERS` and the `ROOMBOT_POLICY_FILE` (if any).

        `known_verbs` maps every word the parser accepts (canonical names and aliases,
        lower-case) to its canonical name. Raises `PolicyError`, one line naming the file and
        the key path, for anything wrong with the file.
        """
        words = {word.lower(): canonical for word, canonical in known_verbs.items()}
        users = _checked_allowed_users(allowed_users)
        roles = (
            ()
            if policy_file is None
            else _parse_policy(str(policy_file), _read(policy_file), words)
        )
        return cls(allowed_users=users, roles=roles, verbs=words.values())

    @property
    def verbs(self) -> tuple[str, ...]:
        """Every canonical verb the policy can grant (help excluded), in display order."""
        return self._verbs

    @property
    def is_empty(self) -> bool:
        """True when nobody can run anything but help (worth a start-up warning)."""
        return not self.allowed_users and not self.roles

    async def decide(
        self, *, user_id: str, verb: str, channel_id: str | None, groups: GroupDirectory | None
    ) -> Decision:
        """May `user_id` (from the request envelope, never from command text) run the canonical
        `verb` in `channel_id`?

        User groups are looked up only when no direct grant decides, and only for roles that
        grant `verb` in this channel. `groups=None` means lookups are unavailable: group-based
        roles grant nothing. A group whose lookup fails grants nothing and the denial says why.
        """
        if verb == HELP_VERB:
            return Decision(True, verb, user_id, "help is always allowed")
        if verb not in self._verbs:
            # Fail closed: a verb the policy was not told about cannot be granted, even by "*".
            text = f"{_you(user_id)} cannot run `{verb}`: it is not a verb this policy knows."
            return Decision(False, verb, user_id, text)
        if user_id in self.allowed_users:
            return Decision(True, verb, user_id, "allowed by ROOMBOT_ALLOWED_USERS")
        granting = [role for role in self.roles if role.grants(verb)]
        here = [role for role in granting if role.applies_in(channel_id)]
        for role in here:
            if user_id in role.users:
                return Decision(
                    True, verb, user_id, f"allowed by role `{role.name}`", role=role.name
                )
        membership = _Membership(groups)
        for role in here:
            group_id = await membership.group_granting(role, user_id)
            if group_id is not None:
                reason = f"allowed by role `{role.name}` (member of user group {group_id})"
                return Decision(True, verb, user_id, reason, role=role.name)
        # Roles that would grant the verb elsewhere: judged without new Slack calls, only to
        # explain the guardrail in the denial.
        elsewhere = [
            role
            for role in granting
            if not role.applies_in(channel_id) and membership.known_member(role, user_id)
        ]
        text = _denial(user_id, verb, channel_id, elsewhere, membership)
        return Decision(False, verb, user_id, text)

    async def allowed_verbs(
        self, *, user_id: str, channel_id: str | None, groups: GroupDirectory | None
    ) -> frozenset[str]:
        """The canonical verbs `user_id` may run in `channel_id`, always including help.

        Used to filter help output. A group is looked up only if its role would add a verb
        the user does not already have.
        """
        if user_id in self.allowed_users:
            return frozenset((*self._verbs, HELP_VERB))
        granted = {HELP_VERB}
        here = [role for role in self.roles if role.applies_in(channel_id)]
        for role in here:
            if user_id in role.users:
                granted |= self._expand(role)
        membership = _Membership(groups)
        for role in here:
            if self._expand(role) <= granted:
                continue
            if await membership.group_granting(role, user_id) is not None:
                granted |= self._expand(role)
        return frozenset(granted)

    def describe(self) -> list[str]:
        """Human lines saying who may run what, and where (for `roombot check`)."""
        lines: list[str] = []
        if self.allowed_users:
            lines.append(
                f"ROOMBOT_ALLOWED_USERS: {_listing('user', self.allowed_users)} "
                "may run every verb in every channel"
            )
        for role in self.roles:
            members = []
            if role.users:
                members.append(_listing("user", role.users))
            if role.usergroups:
                members.append("members of " + _listing("user group", role.usergroups))
            if WILDCARD in role.verbs:
                verbs = "every verb"
            else:
                ordered = [verb for verb in self._verbs if verb in role.verbs]
                verbs = ", ".join(ordered + sorted(role.verbs - set(ordered)))
            where = (
                "in every channel"
                if role.channels is None
                else "only in " + _listing("channel", role.channels)
            )
            lines.append(f"role {role.name}: {' and '.join(members)} may run {verbs} {where}")
        if self.is_empty:
            lines.append(
                "nobody may run any verb (deny by default): "
                "set ROOMBOT_ALLOWED_USERS or ROOMBOT_POLICY_FILE"
            )
        lines.append("everyone may run help")
        return lines

    def _expand(self, role: Role) -> frozenset[str]:
        return frozenset(self._verbs) if WILDCARD in role.verbs else role.verbs


class _Membership:
    """One request's view of user groups: each group looked up at most once, failures kept."""

    def __init__(self, groups: GroupDirectory | None) -> None:
        self._groups = groups
        self._seen: dict[str, frozenset[str] | None] = {}
        self.problems: list[str] = []
        self.unavailable = False

    async def group_granting(self, role: Role, user_id: str) -> str | None:
        """The first of `role`'s user groups that has `user_id` as a member, or None."""
        if not role.usergroups:
            return None
        if self._groups is None:
            self.unavailable = True
            return None
        for group_id in sorted(role.usergroups):
            if group_id not in self._seen:
                try:
                    self._seen[group_id] = await self._groups.members(group_id)
                except GroupLookupError as exc:
                    self._seen[group_id] = None
                    self.problems.append(str(exc))
            members = self._seen[group_id]
            if members is not None and user_id in members:
                return group_id
        return None

    def known_member(self, role: Role, user_id: str) -> bool:
        """True if `user_id` is in `role` directly or by a cached group answer (no fetching)."""
        if user_id in role.users:
            return True
        if self._groups is None:
            return False
        for group_id in role.usergroups:
            members = self._seen.get(group_id) or self._groups.cached(group_id)
            if members is not None and user_id in members:
                return True
        return False


def _you(user_id: str) -> str:
    # Both the mention (readable) and the raw ID (what an admin pastes into the policy file).
    # Only a well-formed ID is wrapped in mention markup.
    if USER_ID_RE.match(user_id):
        return f"You (<@{user_id}>, `{user_id}`)"
    return f"You (`{user_id}`)"


def _denial(
    user_id: str, verb: str, channel_id: str | None, elsewhere: list[Role], membership: _Membership
) -> str:
    place = "in this channel" if channel_id else "here"
    text = f"{_you(user_id)} are not allowed to run `{verb}` {place}."
    if elsewhere:
        names = ", ".join(f"`{role.name}`" for role in elsewhere)
        channels = sorted({c for role in elsewhere for c in role.channels or ()})
        links = ", ".join(f"<#{channel}>" for channel in channels)
        noun = "role" if len(elsewhere) == 1 else "roles"
        text += (
            f" Your {noun} {names} allow{'s' if len(elsewhere) == 1 else ''} it only in {links}"
            " (a channel guardrail): run it there, or ask an admin for a role that allows it here."
        )
    else:
        text += " Ask an admin to add you to a role that allows it."
    for problem in membership.problems:
        text += f" Note: {problem.rstrip('.')}; try again in a minute."
    if membership.unavailable:
        text += " Note: roles granted through user groups cannot be checked here."
    return text


def _listing(noun: str, ids: Collection[str]) -> str:
    return f"{noun}{'s' if len(ids) > 1 else ''} {', '.join(sorted(ids))}"


# -- the policy file ------------------------------------------------------------------------------

_TOP_LEVEL_KEYS: Final = ("roles",)
_ROLE_KEYS: Final = ("verbs", "users", "usergroups", "channels")
_ROLE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BARE_KEY_RE: Final = re.compile(r"^[A-Za-z0-9_-]+$")
# Slack mention markup pasted instead of a bare ID: <@U…|name>, <#C…|name>, <!subteam^S…|@handle>.
_MENTION_RE: Final = re.compile(r"^<(?:@|#|!subteam\^)([A-Za-z0-9]+)(?:\|[^>]*)?>$")


class _IdKind(NamedTuple):
    key: str  # the role key holding IDs of this kind
    noun: str
    pattern: re.Pattern[str]
    example: str
    mistaken_for: str  # what people write instead of the ID


_USERS: Final = _IdKind("users", "user", USER_ID_RE, "U012ABCDEF", "names")
_GROUPS: Final = _IdKind("usergroups", "user group", GROUP_ID_RE, "S0123ABCD", "handles or names")
_CHANNELS: Final = _IdKind("channels", "channel", CHANNEL_ID_RE, "C0123ABCD", "names")
_ID_KINDS: Final = (_USERS, _GROUPS, _CHANNELS)


def _problem(file: str, key_path: str, message: str) -> PolicyError:
    return PolicyError(f"{file}: {key_path}: {message}" if key_path else f"{file}: {message}")


def _checked_allowed_users(users: Iterable[str]) -> tuple[str, ...]:
    checked = tuple(users)
    for user in checked:
        if not USER_ID_RE.match(user):
            raise PolicyError(
                f"ROOMBOT_ALLOWED_USERS: malformed Slack user ID {user!r} "
                "(use IDs like U012ABCDEF, not names)"
            )
    return checked


def _read(path: Path) -> dict[str, Any]:
    file = str(path)
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise _problem(file, "", "policy file not found (check ROOMBOT_POLICY_FILE)") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise _problem(file, "", f"cannot read the policy file: {reason}") from None
    except UnicodeDecodeError:
        raise _problem(file, "", "not UTF-8 text, so not a TOML policy file") from None
    except tomllib.TOMLDecodeError as exc:
        raise _problem(file, "", f"invalid TOML: {_one_line(exc)}") from None


def _parse_policy(
    file: str, document: dict[str, Any], words: Mapping[str, str]
) -> tuple[Role, ...]:
    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            hint = _did_you_mean(key, _TOP_LEVEL_KEYS) or "roles are defined as [roles.NAME] tables"
            raise _problem(file, _key(key), f"unknown top-level key; {hint}")
    roles = document.get("roles")
    if not isinstance(roles, dict):
        if roles is not None:
            raise _problem(
                file, "roles", f"must be tables like [roles.moderators], not {_kind(roles)}"
            )
        roles = {}
    if not roles:
        raise _problem(
            file,
            "",
            "no roles defined; add a [roles.NAME] table with verbs and users or usergroups",
        )
    return tuple(_parse_role(file, name, body, words) for name, body in roles.items())


def _parse_role(file: str, name: str, body: Any, words: Mapping[str, str]) -> Role:
    where = f"roles.{_key(name)}"
    if not _ROLE_NAME_RE.match(name):
        raise _problem(file, where, "a role name may use only letters, digits, '-' and '_'")
    if not isinstance(body, dict):
        raise _problem(file, where, f"must be a table of role settings, not {_kind(body)}")
    for key in body:
        if key not in _ROLE_KEYS:
            hint = _did_you_mean(key, _ROLE_KEYS) or f"a role has only {', '.join(_ROLE_KEYS)}"
            raise _problem(file, f"{where}.{_key(key)}", f"unknown key; {hint}")
    if "verbs" not in body:
        raise _problem(file, where, "missing 'verbs' (the verbs this role may run, or [\"*\"])")
    verbs = _parse_verbs(file, f"{where}.verbs", body["verbs"], words)
    users = _parse_ids(file, where, body, _USERS)
    usergroups = _parse_ids(file, where, body, _GROUPS)
    channels = None
    if "channels" in body:
        channels = _parse_ids(file, where, body, _CHANNELS)
        if not channels:
            raise _problem(
                file,
                f"{where}.channels",
                "empty, so the role would apply nowhere; remove 'channels' to apply everywhere",
            )
    if not users and not usergroups:
        raise _problem(
            file,
            where,
            "role has no members; list user IDs in 'users' or user group IDs in 'usergroups'",
        )
    return Role(name, verbs, users, usergroups, channels)


def _parse_verbs(file: str, where: str, value: Any, words: Mapping[str, str]) -> frozenset[str]:
    listed = _strings(file, where, value)
    if not listed:
        raise _problem(file, where, 'empty; list the verbs this role may run, or "*" for all')
    if WILDCARD in listed:
        if len(listed) > 1:
            raise _problem(file, where, '"*" already means every verb; list it alone')
        return frozenset({WILDCARD})
    verbs = set()
    for index, word in enumerate(listed):
        canonical = words.get(word.lower())
        if HELP_VERB in (word.lower(), canonical):
            raise _problem(
                file, f"{where}[{index}]", "help is always allowed to everyone; remove it"
            )
        if canonical is None:
            choices = [w for w, c in words.items() if c != HELP_VERB]
            hint = _did_you_mean(word, choices) or "known verbs: " + ", ".join(
                dict.fromkeys(c for c in words.values() if c != HELP_VERB)
            )
            raise _problem(file, f"{where}[{index}]", f"unknown verb {word!r} ({hint})")
        verbs.add(canonical)
    return frozenset(verbs)


def _parse_ids(file: str, role_where: str, body: dict[str, Any], kind: _IdKind) -> frozenset[str]:
    where = f"{role_where}.{kind.key}"
    values = _strings(file, where, body.get(kind.key, []))
    for index, value in enumerate(values):
        problem = _id_problem(value, kind)
        if problem is not None:
            raise _problem(file, f"{where}[{index}]", problem)
    return frozenset(values)


def _id_problem(value: str, kind: _IdKind) -> str | None:
    """Why `value` is not a Slack ID of `kind`, with the likeliest fix, or None."""
    if kind.pattern.match(value):
        return None
    for other in _ID_KINDS:
        if other is not kind and other.pattern.match(value):
            return (
                f"{value!r} is a Slack {other.noun} ID, not a {kind.noun} ID "
                f"(put it in '{other.key}')"
            )
    malformed = f"malformed Slack {kind.noun} ID {value!r}"
    mention = _MENTION_RE.match(value.strip())
    if mention is not None and kind.pattern.match(mention.group(1)):
        return f"{malformed} (write the bare ID {mention.group(1)!r}, not mention markup)"
    if kind.pattern.match(value.strip()):
        return f"{malformed} (remove the spaces: {value.strip()!r})"
    # Only suggest upper-casing something that looks like an ID (has a digit), not a name.
    if kind.pattern.match(value.upper()) and any(ch.isdigit() for ch in value):
        return f"{malformed} (Slack IDs are upper-case: {value.upper()!r})"
    return f"{malformed} (use IDs like {kind.example}, not {kind.mistaken_for})"


def _strings(file: str, where: str, value: Any) -> list[str]:
    if not isinstance(value, list):
        raise _problem(file, where, f'must be an array of strings like ["…"], not {_kind(value)}')
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _problem(file, f"{where}[{index}]", f"must be a string, not {_kind(item)}")
    return value


def _did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _key(name: str) -> str:
    # A key as TOML would spell it, so odd names stay one unambiguous line.
    return name if _BARE_KEY_RE.match(name) else json.dumps(name, ensure_ascii=False)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date or time"
