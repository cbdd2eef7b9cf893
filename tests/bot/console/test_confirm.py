"""The console's confirmation question: what answer runs a request that asks first (issue 27,
item 8: `destroy`, which cannot be undone, ran on a bare `y`)."""

from __future__ import annotations

import pytest

from bot.commands import parse_command
from bot.console.session import confirmation_prompt, confirmed


@pytest.mark.parametrize(
    ("answer", "runs"),
    [
        ("yes", True),
        ("  yes\n", True),
        ("room-x", True),  # the room ID, as GitHub asks for a repository's name
        ("y", False),
        ("Y", False),
        ("YES", False),
        ("yes please", False),
        ("no", False),
        ("", False),
        ("room-y", False),
        (None, False),  # Ctrl-C or end of input
    ],
)
def test_an_irreversible_request_runs_only_on_exactly_yes_or_the_room_id(
    answer: str | None, runs: bool
) -> None:
    command = parse_command("destroy room-x")
    assert confirmed(answer, command) is runs


def test_its_prompt_says_what_to_type_and_that_it_cannot_be_undone() -> None:
    prompt = confirmation_prompt(parse_command("destroy room-x"))
    assert "yes" in prompt
    assert "room-x" in prompt
    assert "cannot be undone" in prompt


@pytest.mark.parametrize(
    ("answer", "runs"), [("y", True), ("yes", True), ("Yes", True), ("n", False)]
)
def test_a_request_that_can_be_undone_still_takes_y(answer: str, runs: bool) -> None:
    command = parse_command("lockdown room-x")
    assert confirmed(answer, command) is runs
    assert confirmation_prompt(command) == "Type yes to run it: "
