"""The policy file (`ROOMBOT_POLICY_FILE`, TOML) and the allow-list, validated into a `Policy`.

A role grants its verbs (canonical names or aliases, or `["*"]`) to users and user groups, by
Slack ID, optionally only in some channels::

    [roles.moderators]
    verbs = ["mute-all", "unmute-all", "show"]
    users = ["U012ABCDEF"]
    usergroups = ["S0123ABCD"]
    channels = ["C0INCIDENT"]                    # optional guardrail

Validation is strict and loud: an unknown key, an unknown verb (with a suggestion), a malformed ID
or a name where an ID belongs is a mistake, and `PolicyError` reports every mistake of one run,
one line each naming the file and the key path (as the environment's problems are reported).
"""

from __future__ import annotations

import difflib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

from bot.commands import VERBS
from bot.commands.durations import parse_duration
from bot.commands.values import InvalidValue
from bot.commands.verbs import VerbKind
from bot.config import USER_ID_RE, ConfigError, Settings
from bot.errors import one_line
from bot.policy.approval import DEFAULT_EXPIRE_S, MAX_EXPIRE_S, MIN_EXPIRE_S, ApprovalRule
from bot.policy.rules import HELP_VERB, WILDCARD, Policy, Role

#: Slack user group IDs (`usergroups.users.list?usergroup=S…`).
GROUP_ID_RE: Final = re.compile(r"^S[A-Z0-9]{2,20}$")

#: Slack channel IDs: public `C…`, private `G…` (older), direct messages `D…`.
CHANNEL_ID_RE: Final = re.compile(r"^[CGD][A-Z0-9]{2,20}$")


class PolicyError(ConfigError):
    """The permission policy is invalid. `problems` holds every mistake found, one line each
    naming the file and the key path (or the variable); `str()` is those lines, one a line."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems) or ("the policy is invalid",)
        super().__init__("\n".join(self.problems))


def known_verbs() -> dict[str, str]:
    """Every word the policy file may use for a verb (names and aliases) → canonical name."""
    words: dict[str, str] = {}
    for name, spec in VERBS.items():
        words[name] = name
        for alias in spec.aliases:
            words[alias] = name
    return words


def load_policy(
    *,
    allowed_users: Iterable[str],
    policy_file: Path | None,
    known_verbs: Mapping[str, str],
) -> Policy:
    """Build the policy from `ROOMBOT_ALLOWED_USERS` and the `ROOMBOT_POLICY_FILE` (if any).

    `known_verbs` maps every word the parser accepts (canonical names and aliases, lower-case)
    to its canonical name. Raises `PolicyError` listing every mistake (in the allow-list and
    the file), one line each naming the file and the key path.
    """
    words = {word.lower(): canonical for word, canonical in known_verbs.items()}
    found: list[str] = []
    users = _checked_allowed_users(allowed_users, found)
    roles: tuple[Role, ...] = ()
    approval: ApprovalRule | None = None
    if policy_file is not None:
        file = _Found(str(policy_file), found)
        document = _read(policy_file, file)
        if document is not None:
            roles = _parse_policy(file, document, words)
            if "approval" in document:
                approval = _parse_approval(file, document["approval"], words)
    if found:
        raise PolicyError(found)
    return Policy(allowed_users=users, roles=roles, verbs=words.values(), approval=approval)


def policy_from_settings(settings: Settings) -> Policy:
    """The policy `settings` describe, for the verbs the command language knows."""
    return load_policy(
        allowed_users=settings.roombot_allowed_users,
        policy_file=settings.roombot_policy_file,
        known_verbs=known_verbs(),
    )


_TOP_LEVEL_KEYS: Final = ("roles", "approval")
_APPROVAL_KEYS: Final = ("verbs", "above_rooms", "approvers", "channel", "expire")
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


class _Found:
    """Where the mistakes of one policy file go: `add` words each as one line."""

    def __init__(self, file: str, lines: list[str]) -> None:
        self.file = file
        self.lines = lines

    def add(self, key_path: str, message: str) -> None:
        self.lines.append(
            f"{self.file}: {key_path}: {message}" if key_path else f"{self.file}: {message}"
        )


def _checked_allowed_users(users: Iterable[str], found: list[str]) -> tuple[str, ...]:
    checked = tuple(users)
    for user in checked:
        if not USER_ID_RE.match(user):
            found.append(
                f"ROOMBOT_ALLOWED_USERS: malformed Slack user ID {user!r} "
                "(use IDs like U012ABCDEF, not names)"
            )
    return tuple(user for user in checked if USER_ID_RE.match(user))


def _read(path: Path, found: _Found) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        found.add("", "policy file not found (check ROOMBOT_POLICY_FILE)")
    except OSError as exc:
        found.add("", f"cannot read the policy file: {exc.strerror or type(exc).__name__}")
    except UnicodeDecodeError:
        found.add("", "not UTF-8 text, so not a TOML policy file")
    except tomllib.TOMLDecodeError as exc:
        found.add("", f"invalid TOML: {one_line(exc)}")
    return None


def _parse_policy(
    found: _Found, document: dict[str, Any], words: Mapping[str, str]
) -> tuple[Role, ...]:
    before = len(found.lines)
    for key in document:
        if key not in _TOP_LEVEL_KEYS:
            hint = _did_you_mean(key, _TOP_LEVEL_KEYS) or "roles are defined as [roles.NAME] tables"
            found.add(_key(key), f"unknown top-level key; {hint}")
    roles = document.get("roles")
    if not isinstance(roles, dict):
        if roles is not None:
            found.add("roles", f"must be tables like [roles.moderators], not {_kind(roles)}")
        roles = {}
    if not roles and len(found.lines) == before and "approval" not in document:
        # (A misspelt [roles] table already explains why there are none.)
        found.add(
            "", "no roles defined; add a [roles.NAME] table with verbs and users or usergroups"
        )
    parsed = (_parse_role(found, name, body, words) for name, body in roles.items())
    return tuple(role for role in parsed if role is not None)


def _parse_role(found: _Found, name: str, body: Any, words: Mapping[str, str]) -> Role | None:
    """The role, or None when it has a mistake (each one added to `found`)."""
    before = len(found.lines)
    where = f"roles.{_key(name)}"
    if not _ROLE_NAME_RE.match(name):
        found.add(where, "a role name may use only letters, digits, '-' and '_'")
    if not isinstance(body, dict):
        found.add(where, f"must be a table of role settings, not {_kind(body)}")
        return None
    unknown = [key for key in body if key not in _ROLE_KEYS]
    for key in unknown:
        hint = _did_you_mean(key, _ROLE_KEYS) or f"a role has only {', '.join(_ROLE_KEYS)}"
        found.add(f"{where}.{_key(key)}", f"unknown key; {hint}")
    verbs: frozenset[str] = frozenset()
    if "verbs" not in body:
        found.add(where, "missing 'verbs' (the verbs this role may run, or [\"*\"])")
    else:
        verbs = _parse_verbs(found, f"{where}.verbs", body["verbs"], words)
    users = _parse_ids(found, where, body, _USERS)
    usergroups = _parse_ids(found, where, body, _GROUPS)
    channels = None
    if "channels" in body:
        channels = _parse_ids(found, where, body, _CHANNELS)
        if body["channels"] == []:
            found.add(
                f"{where}.channels",
                "empty, so the role would apply nowhere; remove 'channels' to apply everywhere",
            )
    # Listed but malformed members are mistakes of their own, said above, and a misspelt key
    # ("user") explains the missing members better than saying they are missing.
    if not unknown and not body.get("users") and not body.get("usergroups"):
        found.add(
            where,
            "role has no members; list user IDs in 'users' or user group IDs in 'usergroups'",
        )
    if len(found.lines) > before:
        return None
    return Role(name, verbs, users, usergroups, channels)


def _parse_approval(found: _Found, body: Any, words: Mapping[str, str]) -> ApprovalRule | None:
    """The `[approval]` table, or None when it has a mistake (each one added to `found`)."""
    before = len(found.lines)
    where = "approval"
    if not isinstance(body, dict):
        found.add(where, f"must be a table like [approval], not {_kind(body)}")
        return None
    unknown = [key for key in body if key not in _APPROVAL_KEYS]
    for key in unknown:
        keys = ", ".join(_APPROVAL_KEYS)
        hint = _did_you_mean(key, _APPROVAL_KEYS) or f"[approval] has only {keys}"
        found.add(f"{where}.{_key(key)}", f"unknown key; {hint}")
    verbs: frozenset[str] = frozenset()
    if "verbs" in body:
        verbs = _parse_verbs(found, f"{where}.verbs", body["verbs"], words)
        if WILDCARD in verbs:
            verbs = frozenset(c for c in words.values() if _is_write(c))
        for verb in sorted(verbs):
            if not _is_write(verb):
                found.add(f"{where}.verbs", f"{verb!r} changes nothing, so it needs no approval")
    above: int | None = None
    if "above_rooms" in body:
        value = body["above_rooms"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            found.add(f"{where}.above_rooms", f"must be a whole number of rooms, not {value!r}")
        else:
            above = value
    if not verbs and above is None and len(found.lines) == before:
        found.add(where, "no rule; set 'verbs' and/or 'above_rooms' (or remove [approval])")
    users: set[str] = set()
    usergroups: set[str] = set()
    approvers = _strings(found, f"{where}.approvers", body.get("approvers", []))
    for index, value in approvers.items():
        if USER_ID_RE.match(value):
            users.add(value)
        elif GROUP_ID_RE.match(value):
            usergroups.add(value)
        else:
            problem = _id_problem(value, _USERS)
            if problem is not None and "is a Slack channel ID" not in problem:
                problem = problem.replace("(use IDs like U012ABCDEF, not names)", "")
                problem = problem.rstrip() + " (use user IDs like U012ABCDEF or user group IDs "
                problem += "like S0123ABCD, not names or handles)"
            found.add(f"{where}.approvers[{index}]", problem or f"malformed ID {value!r}")
    if not approvers and (verbs or above is not None):
        found.add(
            f"{where}.approvers",
            "empty or missing, so nobody could approve; list user IDs or user group IDs",
        )
    channel: str | None = None
    if "channel" in body:
        value = body["channel"]
        if not isinstance(value, str):
            found.add(f"{where}.channel", f"must be a channel ID string, not {_kind(value)}")
        else:
            problem = _id_problem(value, _CHANNELS)
            if problem is not None:
                found.add(f"{where}.channel", problem)
            channel = value
    expire_s = _parse_expire(found, f"{where}.expire", body)
    if len(found.lines) > before:
        return None
    return ApprovalRule(
        verbs=verbs,
        above_rooms=above,
        users=frozenset(users),
        usergroups=frozenset(usergroups),
        channel=channel,
        expire_s=expire_s,
    )


def _is_write(verb: str) -> bool:
    spec = VERBS.get(verb)
    return spec is not None and spec.kind is VerbKind.WRITE


def _parse_expire(found: _Found, where: str, body: dict[str, Any]) -> int:
    if "expire" not in body:
        return DEFAULT_EXPIRE_S
    value = body["expire"]
    if not isinstance(value, str):
        found.add(where, f'must be a duration string like "15m", not {_kind(value)}')
        return DEFAULT_EXPIRE_S
    try:
        seconds = parse_duration(value)
    except InvalidValue as exc:
        found.add(where, str(exc).replace("`", "'"))
        return DEFAULT_EXPIRE_S
    if not MIN_EXPIRE_S <= seconds <= MAX_EXPIRE_S:
        found.add(where, f"{value!r} is out of range: from 1m to 7d")
    return seconds


def _parse_verbs(found: _Found, where: str, value: Any, words: Mapping[str, str]) -> frozenset[str]:
    listed = _strings(found, where, value)
    if value == []:
        found.add(where, 'empty; list the verbs this role may run, or "*" for all')
    if WILDCARD in listed.values():
        if len(listed) > 1:
            found.add(where, '"*" already means every verb; list it alone')
        return frozenset({WILDCARD})
    verbs = set()
    for index, word in listed.items():
        canonical = words.get(word.lower())
        if HELP_VERB in (word.lower(), canonical):
            found.add(f"{where}[{index}]", "help is always allowed to everyone; remove it")
        elif canonical is None:
            choices = [w for w, c in words.items() if c != HELP_VERB]
            hint = _did_you_mean(word, choices) or "known verbs: " + ", ".join(
                dict.fromkeys(c for c in words.values() if c != HELP_VERB)
            )
            found.add(f"{where}[{index}]", f"unknown verb {word!r} ({hint})")
        else:
            verbs.add(canonical)
    return frozenset(verbs)


def _parse_ids(
    found: _Found, role_where: str, body: dict[str, Any], kind: _IdKind
) -> frozenset[str]:
    where = f"{role_where}.{kind.key}"
    values = _strings(found, where, body.get(kind.key, []))
    valid = set()
    for index, value in values.items():
        problem = _id_problem(value, kind)
        if problem is not None:
            found.add(f"{where}[{index}]", problem)
        else:
            valid.add(value)
    return frozenset(valid)


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


def _strings(found: _Found, where: str, value: Any) -> dict[int, str]:
    """The strings of the array `value`, by index; anything else is a mistake, added."""
    if not isinstance(value, list):
        found.add(where, f'must be an array of strings like ["…"], not {_kind(value)}')
        return {}
    strings = {}
    for index, item in enumerate(value):
        if isinstance(item, str):
            strings[index] = item
        else:
            found.add(f"{where}[{index}]", f"must be a string, not {_kind(item)}")
    return strings


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
