"""Help text: generated from VERBS, filterable by what the caller may run, examples that parse."""

from __future__ import annotations

import pytest

from bot.commands import VERBS, ParseError, parse_command, render_help, render_verb_help


def test_overview_lists_every_verb_with_its_synopsis_and_summary() -> None:
    text = render_help()
    for spec in VERBS.values():
        assert f"`{spec.synopsis}` — {spec.summary}" in text
    assert "--dry-run" in text
    assert "--reason TEXT" in text
    assert "`/room help VERB`" in text


def test_overview_lists_verbs_in_table_order() -> None:
    text = render_help()
    positions = [text.index(f"`{spec.synopsis}`") for spec in VERBS.values()]
    assert positions == sorted(positions)


def test_overview_shows_only_what_the_caller_may_run() -> None:
    allowed = {"show", "history", "help"}
    text = render_help(lambda verb: verb in allowed)
    for spec in VERBS.values():
        assert (f"`{spec.synopsis}`" in text) == (spec.name in allowed)
    assert "--dry-run" not in text  # nothing the caller may run takes it


def test_overview_with_nothing_allowed_says_so() -> None:
    assert render_help(lambda verb: False) == "You may not run any `/room` commands."


def test_overview_is_plain_lines_without_mrkdwn_that_a_terminal_shows_raw() -> None:
    text = render_help()
    assert "*" not in text
    assert all(line.count("`") % 2 == 0 for line in text.splitlines())


@pytest.mark.parametrize("verb", list(VERBS))
def test_verb_help_has_usage_summary_and_a_parsing_example(verb: str) -> None:
    spec = VERBS[verb]
    text = render_verb_help(verb)
    assert text.splitlines()[0] == f"`{spec.usage}`"
    assert spec.summary in text
    assert f"Example: `{spec.example}`" in text
    for alias in spec.aliases:
        assert f"`{alias}`" in text
    assert parse_command(spec.example).verb == verb


def test_verb_help_accepts_an_alias_and_names_the_patch() -> None:
    text = render_verb_help("mute-audio")
    assert text.startswith("`/room mute-all ROOM...")
    assert "`IsAudioDisabled: true`" in text
    assert "Also: `mute-audio`, `disable-audio`" in text


def test_lockdown_help_names_every_field_it_sends() -> None:
    text = render_verb_help("lockdown")
    for field in (
        "IsAudioDisabled",
        "IsVideoDisabled",
        "IsMessageDisabled",
        "IsScreenSharingDisabled",
    ):
        assert f"`{field}: true`" in text
    assert "IsCloudRecordingDisabled" not in text


def test_set_help_lists_every_key() -> None:
    text = render_verb_help("set")
    for key in (
        "name",
        "max-members",
        "audio",
        "video",
        "chat",
        "screenshare",
        "recording",
        "custom",
        "seat-mode",
    ):
        assert f"`{key}`" in text
    for field in VERBS["set"].fields:
        assert f"`{field}`" in text
    assert "`audio=off` disables audio" in text


def test_verb_help_for_an_unknown_verb_suggests_one() -> None:
    with pytest.raises(ParseError, match="did you mean `rename`"):
        render_verb_help("renam")
