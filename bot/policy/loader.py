"""The policy file (`ROOMBOT_POLICY_FILE`, TOML) and the allow-list, validated into a `Policy`.

A role grants its verbs (canonical names or aliases, or `["*"]`) to users and user groups, by
Slack ID, optionally only in some channels::

    [roles.moderators]
    verbs = ["mute-all", "unmute-all", "show"]
    users = ["U012ABCDEF"]
    usergroups = ["S0123ABCD"]
    channels = ["C0INCIDENT"]                    # optional guardrail

Validation is strict and loud: an unknown key, an unknown verb (with a suggestion), a malformed ID
or a name where an ID belongs raises `PolicyError`, one line naming the file and the key path.
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
from bot.config import USER_ID_RE, ConfigError, Settings
from bot.errors import one_line
from bot.policy.rules import HELP_VERB, WILDCARD, Policy, Role

#: Slack user group IDs (`usergroups.users.list?usergroup=S…`).
GROUP_ID_RE: Final = re.compile(r"^S[A-Z0-9]{2,20}$")

#: Slack channel IDs: public `C…`, private `G…` (older), direct messages `D…`.
CHANNEL_ID_RE: Final = re.compile(r"^[CGD][A-Z0-9]{2,20}$")


class PolicyError(ConfigError):
    """The permission policy is invalid: one line naming the file and the key path."""


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
    to its canonical name. Raises `PolicyError`, one line naming the file and the key path, for
    anything wrong with the file.
    """
    words = {word.lower(): canonical for word, canonical in known_verbs.items()}
    users = _checked_allowed_users(allowed_users)
    roles = (
        () if policy_file is None else _parse_policy(str(policy_file), _read(policy_file), words)
    )
    return Policy(allowed_users=users, roles=roles, verbs=words.values())


def policy_from_settings(settings: Settings) -> Policy:
    """The policy `settings` describe, for the verbs the command language knows."""
    return load_policy(
        allowed_users=settings.roombot_allowed_users,
        policy_file=settings.roombot_policy_file,
        known_verbs=known_verbs(),
    )


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
        raise _problem(file, "", f"invalid TOML: {one_line(exc)}") from None


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
