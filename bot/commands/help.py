"""Help text, generated from `VERBS` so it always says what the parser accepts."""

from __future__ import annotations

from collections.abc import Callable

from .values import SHORT_KEY_OF
from .verbs import GENERAL_USAGE, VERBS, VerbKind, VerbSpec, canonical_verb, unknown_verb

_OPTIONS_HELP = (
    "`--dry-run` shows what would be sent without sending it. `--reason TEXT` is recorded "
    "with the change: one quoted string, or the rest of the line up to the next option."
)


def render_help(allowed: Callable[[str], bool] | None = None) -> str:
    """The overview of every verb `allowed` accepts (all when None): usage and summary per verb.

    Plain lines with backticks, so it reads as Slack mrkdwn and in a terminal alike.
    """
    specs = [spec for spec in VERBS.values() if allowed is None or allowed(spec.name)]
    if not specs:
        return "You may not run any `/room` commands."
    writes = any(spec.kind is VerbKind.WRITE for spec in specs)
    # Options only matter to someone who may change rooms.
    usage = GENERAL_USAGE if writes else GENERAL_USAGE.partition(" [")[0]
    lines = [f"Usage: `{usage}`", ""]
    lines += [f"`{spec.synopsis}` — {spec.summary}" for spec in specs]
    lines.append("")
    if writes:
        lines.append(_OPTIONS_HELP)
    lines.append("`/room help VERB` explains one command, with an example.")
    return "\n".join(lines)


def render_verb_help(verb: str) -> str:
    """Usage, summary, what it changes, aliases and an example of one verb (name or alias).

    Raises `ParseError` with a suggestion for an unknown verb.
    """
    name = canonical_verb(verb)
    if name is None:
        raise unknown_verb(verb, VERBS["help"].usage)
    spec = VERBS[name]
    lines = [f"`{spec.usage}`", f"{spec.summary}."]
    lines += _changes_lines(spec)
    if spec.aliases:
        lines.append("Also: " + ", ".join(f"`{alias}`" for alias in spec.aliases))
    lines.append(f"Example: `{spec.example}`")
    return "\n".join(lines)


def _changes_lines(spec: VerbSpec) -> list[str]:
    if spec.sets:
        sent = ", ".join(f"`{field}: {str(value).lower()}`" for field, value in spec.sets)
        return [f"Sends {sent} for each room."]
    if spec.kind is not VerbKind.WRITE:
        return []
    if len(spec.fields) == 1:
        return [f"Sends `{spec.fields[0]}` for the room."]
    short = ", ".join(f"`{key.key}`" for key in SHORT_KEY_OF.values())
    api = ", ".join(f"`{field}`" for field in spec.fields)
    return [
        f"Keys: {short}; or the API field names {api} (any case).",
        "`audio`, `video`, `chat`, `screenshare` and `recording` take on/off (also true/false, "
        "yes/no, enabled/disabled): `audio=off` disables audio. The API's `Is…Disabled` fields "
        "take true/false as the API means them.",
        "Only the fields you name are sent; rooms and keys may come in any order.",
    ]
