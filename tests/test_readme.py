"""The README cannot drift from the code: generated sections, every verb, every example."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from bot import docs
from bot.commands import VERBS, canonical_verb, parse_command

README = Path(__file__).resolve().parents[1] / "README.md"
_PLACEHOLDER = re.compile(
    r"\b[A-Z][A-Z_]+\b"
)  # ROOM, VERB, TEXT… mark a usage line, not an example


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _examples() -> list[str]:
    text = _text()
    found = []
    in_code = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif in_code:
            if line.strip().startswith("/room "):
                found.append(line.strip())
        else:
            found += [
                span
                for span in re.findall(r"`(/room [^`]+)`", line)
                if not _PLACEHOLDER.search(span.removeprefix("/room "))
            ]
    return found


def test_generated_sections_are_up_to_date() -> None:
    assert docs.render(_text()) == _text(), "run `python -m bot.docs` to regenerate README sections"


def test_every_verb_and_alias_is_documented() -> None:
    text = _text()
    for spec in VERBS.values():
        assert f"`/room {spec.name}" in text, spec.name
        for alias in spec.aliases:
            assert f"`{alias}`" in text, alias


def test_there_are_examples_and_every_one_parses() -> None:
    examples = _examples()
    assert len(examples) >= len(VERBS)
    for example in examples:
        parse_command(example)  # raises ParseError if the README shows something invalid


@pytest.mark.parametrize("variable", ["SLACK_BOT_TOKEN", "TENCENT_REGION", "ROOMBOT_MAX_ROOMS"])
def test_configuration_table_names_settings(variable: str) -> None:
    assert f"| `{variable}` |" in _text()


def test_every_setting_is_in_the_configuration_table() -> None:
    from bot.config import Settings

    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in _text(), name


def test_the_policy_example_names_real_verbs_and_keeps_destroy_from_moderators() -> None:
    block = re.search(r"```toml\n(# policy.toml\n.*?)```", _text(), re.S)
    assert block is not None
    roles = tomllib.loads(block.group(1))["roles"]
    for role in roles.values():
        assert all(verb == "*" or canonical_verb(verb) == verb for verb in role["verbs"])
    moderators = set(roles["moderators"]["verbs"])
    assert "destroy" not in moderators
    assert {"members", "banned", "kick", "ban", "unban"} <= moderators


@pytest.mark.slow
def test_the_policy_example_works_in_the_console_as_the_readme_shows(tmp_path: Path) -> None:
    """Issue 27, item 13: the README's own example policy refused even `show` in the console.
    The policy and the console line are both taken from the README."""
    import os
    import shlex
    import subprocess
    import sys

    block = re.search(r"```toml\n(# policy.toml\n.*?)```", _text(), re.S)
    assert block is not None
    (tmp_path / "policy.toml").write_text(block.group(1), encoding="utf-8")
    line = re.search(r"^ROOMBOT_POLICY_FILE=policy\.toml (roombot console .*)$", _text(), re.M)
    assert line is not None, "the README shows how to try the policy in the console"
    argv = shlex.split(line.group(1))
    assert argv[:2] == ["roombot", "console"]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TENCENT_", "ROOMBOT_"))
    }
    env["ROOMBOT_POLICY_FILE"] = "policy.toml"
    result = subprocess.run(
        [sys.executable, "-m", "bot", *argv[1:]],
        input="show room-test\nmute-all room-test\ndestroy room-test\n",
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    out = result.stdout
    assert "not allowed to run 'show'" not in out, out + result.stderr
    assert "audio on" in out  # show answered
    assert "✅ done: 1/1 room changed" in out  # mute-all ran
    assert "not allowed to run 'destroy'" in out  # destroy stays with the incident commanders
    assert result.returncode == 1  # the refused destroy
