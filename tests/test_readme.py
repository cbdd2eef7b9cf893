"""The README and the docs pages cannot drift from the code: generated sections, every verb,
every example, every setting, the policy example; and the README stays a front door whose
links all lead somewhere."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from bot import docs
from bot.commands import VERBS, canonical_verb, parse_command

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"
COMMANDS = DOCS / "commands.md"
CONFIGURATION = DOCS / "configuration.md"
PERMISSIONS = DOCS / "permissions.md"
#: Where each generated section must be (a missing marker would silently skip it).
GENERATED = {
    README: {"summary"},
    COMMANDS: {"commands", "examples"},
    DOCS / "errors.md": {"errors"},
}
#: The README is the front door: what it is, set-up, Slack, a command summary, links.
README_MAX_LINES = 250
_PLACEHOLDER = re.compile(
    r"\b[A-Z][A-Z_]+\b"
)  # ROOM, VERB, TEXT… mark a usage line, not an example
_MARKER = re.compile(r"<!-- generated:([a-z-]+) -->")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
#: Paths in `code` that name a file or folder of this repository.
_REPO_PATH = re.compile(
    r"`((?:bot|handlers|tests|testkit|bench|scripts|deploy|docs)/[\w./-]*"
    r"|Dockerfile|compose\.yaml|manifest\.yml|\.env\.example|CHANGELOG\.md|mkdocs\.yml)`"
)


def _text(path: Path = README) -> str:
    return path.read_text(encoding="utf-8")


def _pages() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _examples(path: Path) -> list[str]:
    found = []
    in_code = False
    for line in _text(path).splitlines():
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


@pytest.mark.parametrize("path", docs.documents(REPO), ids=lambda p: p.name)
def test_generated_sections_are_up_to_date(path: Path) -> None:
    text = _text(path)
    assert docs.render(text) == text, "run `python -m bot.docs` to regenerate the sections"


def test_the_generated_sections_are_where_they_belong() -> None:
    for path, names in GENERATED.items():
        assert set(_MARKER.findall(_text(path))) == names, path.name


def test_every_verb_and_alias_is_documented() -> None:
    text = _text(COMMANDS)
    for spec in VERBS.values():
        assert f"`/room {spec.name}" in text, spec.name
        for alias in spec.aliases:
            assert f"`{alias}`" in text, alias


def test_there_are_examples_and_every_one_parses() -> None:
    assert len(_examples(COMMANDS)) >= len(VERBS)
    for page in _pages():
        for example in _examples(page):
            parse_command(example)  # raises ParseError if a page shows something invalid


@pytest.mark.parametrize("variable", ["SLACK_BOT_TOKEN", "TENCENT_REGION", "ROOMBOT_MAX_ROOMS"])
def test_configuration_table_names_settings(variable: str) -> None:
    assert f"| `{variable}` |" in _text(CONFIGURATION)


def test_every_setting_is_in_the_configuration_table() -> None:
    from bot.config import Settings

    for name in Settings.model_fields:
        assert f"| `{name.upper()}` |" in _text(CONFIGURATION), name


def test_the_policy_example_names_real_verbs_and_keeps_destroy_from_moderators() -> None:
    block = re.search(r"```toml\n(# policy.toml\n.*?)```", _text(PERMISSIONS), re.S)
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

    block = re.search(r"```toml\n(# policy.toml\n.*?)```", _text(PERMISSIONS), re.S)
    assert block is not None
    (tmp_path / "policy.toml").write_text(block.group(1), encoding="utf-8")
    line = re.search(
        r"^ROOMBOT_POLICY_FILE=policy\.toml (roombot console .*)$", _text(PERMISSIONS), re.M
    )
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


def test_the_readme_is_a_front_door() -> None:
    text = _text()
    assert len(text.splitlines()) <= README_MAX_LINES
    headings = re.findall(r"^## (.+)$", text, re.M)
    assert headings == ["Set up", "Connect it to Slack", "Commands", "Run it", "Documentation"]
    linked = {link.split("#")[0] for link in _LINK.findall(text)}
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in linked, f"the README does not link {page.name}"


def _anchors(page: Path) -> set[str]:
    """The ids MkDocs gives the headings of `page` (its default slugify)."""
    text = re.sub(r"```.*?```", "", _text(page), flags=re.S)
    return {slugify(title, "-") for title in re.findall(r"^#+ (.+)$", text, re.M)}


def test_every_link_in_the_readme_leads_somewhere() -> None:
    for link in _LINK.findall(_text()):
        if re.match(r"[a-z]+:", link):
            continue  # an absolute URL
        path, _, anchor = link.partition("#")
        target = REPO / path
        assert target.exists(), link
        if anchor:
            assert anchor in _anchors(target), link


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.name)
def test_every_repository_path_a_page_names_exists(page: Path) -> None:
    for path in _REPO_PATH.findall(_text(page)):
        assert (REPO / path).exists(), f"{page.name} names {path}, which does not exist"
