"""compose.yaml is a valid Compose file whose services agree with each other and with roombot:
two HTTP replicas on the PostgreSQL service's database, the emulator reachable where roombot
looks for Room Engine, real settings only, and time for the drain. There is no Docker daemon
here: the file is validated against the Compose specification's JSON schema (the copy
check-jsonschema ships), and `docker compose config` runs where the compose plugin exists."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from bot.cli import build_parser
from bot.config import Settings, load_settings
from bot.dsn import DatabaseUrl
from handlers.callbacks import CALLBACK_PATH
from handlers.serve import DRAIN_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
#: `${NAME:-default}`: Compose's interpolation, here with nothing set (the defaults).
_VARIABLE = re.compile(r"\$\{[A-Z_]+:-([^}]*)\}")


def _compose() -> dict[str, Any]:
    text = _VARIABLE.sub(r"\1", COMPOSE.read_text(encoding="utf-8"))
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _service(name: str) -> dict[str, Any]:
    service = _compose()["services"][name]
    assert isinstance(service, dict)
    return service


def _env(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in _service(name)["environment"].items()}


def test_compose_yaml_is_valid_against_the_compose_specification() -> None:
    result = subprocess.run(
        ["check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _compose_command() -> list[str] | None:
    """Docker Compose v2: the docker CLI's plugin, or the standalone `docker-compose`."""
    docker = shutil.which("docker")
    if docker is not None:
        plugin = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        )
        if plugin.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone is not None:
        version = subprocess.run(
            [standalone, "version"], capture_output=True, text=True, timeout=30, check=False
        )
        if "v2." in version.stdout:
            return [standalone]
    return None


def test_docker_compose_accepts_it_as_a_new_user_would_run_it(tmp_path: Path) -> None:
    compose = _compose_command()
    if compose is None:
        pytest.skip("no Docker Compose v2 here; the schema test validates the file instead")
    shutil.copy(COMPOSE, tmp_path / "compose.yaml")
    shutil.copy(REPO / ".env.example", tmp_path / ".env")  # the first documented step
    result = subprocess.run(
        [*compose, "config", "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_two_roombot_replicas_serve_http_with_the_drain_respected() -> None:
    roombot = _service("roombot")
    assert roombot["deploy"]["replicas"] == 2
    args = build_parser().parse_args(roombot["command"])
    assert (args.command, args.http) == ("serve", True)
    env = _env("roombot")
    [mapping] = roombot["ports"]
    assert mapping.endswith(":" + env["PORT"])
    first, last = mapping.split(":")[-2].split("-")
    assert int(last) - int(first) + 1 == 2  # one host port per replica
    grace = roombot["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace.removesuffix("s")) > DRAIN_TIMEOUT_S
    assert roombot["read_only"] is True


def test_roombot_uses_the_postgres_service_and_waits_for_it_to_be_healthy() -> None:
    database = DatabaseUrl(_env("roombot")["ROOMBOT_AUDIT_DB"])
    parts = urlsplit(database.secret())
    postgres = _env("postgres")
    assert parts.hostname == "postgres"
    assert parts.username == postgres["POSTGRES_USER"]
    assert parts.password == postgres["POSTGRES_PASSWORD"]
    assert parts.path.lstrip("/") == postgres["POSTGRES_DB"]
    assert _service("roombot")["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(_service("postgres")["healthcheck"]["test"])
    [volume] = _service("postgres")["volumes"]
    name, mount = volume.split(":")
    assert name in _compose()["volumes"]  # a named volume, not a host directory
    assert mount == "/var/lib/postgresql/data"


def test_the_emulator_listens_where_roombot_looks_for_room_engine() -> None:
    emulator = build_parser().parse_args(_service("emulator")["command"])
    assert emulator.command == "emulator"
    assert emulator.host == "0.0.0.0"  # noqa: S104 (inside its container, for the others)
    api = urlsplit(_env("roombot")["TENCENT_API_URL"])
    assert (api.hostname, api.port) == ("emulator", emulator.port)
    assert _service("roombot")["depends_on"]["emulator"]["condition"] == "service_healthy"
    assert str(emulator.port) in " ".join(_service("emulator")["healthcheck"]["test"])
    # The emulator checks roombot's UserSigs: both sides know the same app.
    for name in ("TENCENT_SDKAPPID", "TENCENT_SECRET_KEY", "TENCENT_ADMIN_ID"):
        assert _env("emulator")[name] == _env("roombot")[name], name


def test_the_emulator_posts_callbacks_roombot_accepts() -> None:
    emulator = build_parser().parse_args(_service("emulator")["command"])
    url = urlsplit(emulator.callback_url)
    env = _env("roombot")
    assert (url.hostname, url.port, url.path) == ("roombot", int(env["PORT"]), CALLBACK_PATH)
    assert parse_qs(url.query)["token"] == [env["ROOMBOT_CALLBACK_TOKEN"]]


def test_every_variable_is_a_valid_setting_and_slack_secrets_come_from_env_file() -> None:
    for name in ("roombot", "emulator"):
        env = {k.lower(): v for k, v in _env(name).items() if k != "PORT"}
        load_settings(env_file=None, **env)  # raises ConfigError naming a bad one
        assert set(env) <= set(Settings.model_fields), name
    assert not {k for k in _env("roombot") if k.startswith("SLACK_")}
    [env_file] = _service("roombot")["env_file"]
    assert env_file == {"path": ".env", "required": True}
