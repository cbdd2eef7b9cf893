"""The container image's recipe keeps its promises (no Docker daemon is needed: the Dockerfile is
read with Docker's own parser, and the build context is computed with docker-py's
`.dockerignore` matcher). `scripts/check` lints the same file with hadolint."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import dockerfile
import pytest
from docker.utils.build import exclude_paths

from bot.cli import build_parser
from bot.config import load_settings
from handlers.ops import HEALTHZ_PATH

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
#: A Python image pinned to a patch release, in its slim variant.
_PINNED_SLIM_PYTHON = re.compile(r"^python:3\.\d+\.\d+-slim(-[a-z]+)?$")


def _stages() -> list[list[dockerfile.Command]]:
    stages: list[list[dockerfile.Command]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        if command.cmd == "FROM":
            stages.append([])
        elif stages:
            stages[-1].append(command)
    return stages


def _bases() -> list[str]:
    return [c.value[0] for c in dockerfile.parse_file(str(DOCKERFILE)) if c.cmd == "FROM"]


def _final(cmd: str) -> list[dockerfile.Command]:
    return [c for c in _stages()[-1] if c.cmd == cmd]


def _env() -> dict[str, str]:
    """The final stage's ENV, as NAME: value."""
    values = [v for c in _final("ENV") for v in c.value]
    return dict(zip(values[::2], values[1::2], strict=True))


def test_a_multi_stage_build_on_one_pinned_slim_python() -> None:
    bases = _bases()
    assert len(bases) >= 2
    assert len(set(bases)) == 1, bases  # the venv's interpreter is the final image's
    assert _PINNED_SLIM_PYTHON.match(bases[0]), bases[0]
    python = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    floor = python["requires-python"].removeprefix(">=")
    assert tuple(map(int, bases[0].split(":")[1].split(".")[:2])) >= tuple(
        map(int, floor.split("."))
    )


def test_dependencies_are_installed_in_a_layer_before_the_code() -> None:
    build = _stages()[0]
    copies = [c for c in build if c.cmd == "COPY"]
    assert copies[0].value[:-1] == ("pyproject.toml",)  # the first layer knows only the deps
    first_install = next(
        i for i, c in enumerate(build) if c.cmd == "RUN" and "pip install" in c.value[0]
    )
    code = next(i for i, c in enumerate(build) if c.cmd == "COPY" and "bot" in c.value[:-1])
    assert build.index(copies[0]) < first_install < code


def test_the_final_image_runs_unprivileged_with_no_build_tools() -> None:
    [user] = _final("USER")
    uid = user.value[0].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    for run in _final("RUN"):
        assert not re.search(r"\b(pip|apt-get|apt|gcc|make)\b", run.value[0]), run.original
    copies = _final("COPY")
    assert copies
    assert all(any(f.startswith("--from=") for f in c.flags) for c in copies)


def test_it_runs_roombot_serve_with_json_logs_unbuffered() -> None:
    [entrypoint] = _final("ENTRYPOINT")
    [cmd] = _final("CMD")
    assert entrypoint.json
    assert cmd.json
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert entrypoint.value[0] in scripts["project"]["scripts"]
    assert build_parser().parse_args([*entrypoint.value[1:], *cmd.value]).command == "serve"
    env = _env()
    assert env["PYTHONUNBUFFERED"] == "1"
    roombot = {k.lower(): v for k, v in env.items() if k.startswith(("ROOMBOT_", "TENCENT_"))}
    assert load_settings(env_file=None, **roombot).roombot_log_format == "json"


def test_the_healthcheck_asks_healthz_on_the_exposed_port() -> None:
    [healthcheck] = _final("HEALTHCHECK")
    assert HEALTHZ_PATH in healthcheck.original
    assert "PORT" in healthcheck.original
    [expose] = _final("EXPOSE")
    assert _env()["PORT"] == expose.value[0]


def _context(root: Path) -> set[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {p for p in exclude_paths(str(root), patterns) if (root / p).is_file()}


def test_the_build_context_holds_everything_the_dockerfile_copies() -> None:
    context = _context(REPO)
    for copy in (c for stage in _stages() for c in stage if c.cmd == "COPY"):
        if any(f.startswith("--from=") for f in copy.flags):
            continue
        for source in copy.value[:-1]:
            assert (REPO / source).exists(), source
            assert source in context or any(p.startswith(source + "/") for p in context), source


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        ("pyproject.toml", True),
        ("bot/__init__.py", True),
        ("bot/tencent/client.py", True),
        ("handlers/app.py", True),
        (".git/config", False),
        (".venv/bin/python", False),
        (".ci-venv/bin/python", False),
        ("tests/test_readme.py", False),
        ("testkit/slack_api.py", False),
        (".env", False),
        (".env.production", False),
        ("bot/.env", False),
        ("bot/__pycache__/cli.cpython-311.pyc", False),
        ("roombot-audit.sqlite3", False),
        ("docs/index.md", False),
    ],
)
def test_dockerignore_keeps_secrets_venvs_tests_and_git_out(
    tmp_path: Path, path: str, sent: bool
) -> None:
    (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / path).write_text("x", encoding="utf-8")
    assert (path in _context(tmp_path)) is sent
