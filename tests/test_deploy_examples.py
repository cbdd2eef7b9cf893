"""The docs' deployment and operations pages cannot drift from the code: the systemd unit
parses and names real subcommands and variables; the metrics table lists exactly the series
roombot exports; the probes section names the real endpoint and series to alert on. (The
Kubernetes manifests are files of their own, checked by tests/deploy/test_kubernetes.py.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from bot import metrics
from bot.cli import build_parser
from bot.config import SECRET_VARIABLES, Settings
from handlers.ops import READYZ_PATH

DOCS = Path(__file__).resolve().parents[1] / "docs"
DEPLOYMENT = DOCS / "deployment.md"
OPERATIONS = DOCS / "operations.md"
SETTINGS = {name.upper() for name in Settings.model_fields}


def _block(page: Path, language: str, first_line: str) -> str:
    text = page.read_text(encoding="utf-8")
    found = re.search(rf"```{language}\n({re.escape(first_line)}\n.*?)```", text, re.S)
    assert found is not None, f"no ```{language} block starting with {first_line!r}"
    return found.group(1)


def _unit() -> dict[str, list[tuple[str, str]]]:
    """The systemd unit as sections of (key, value) pairs (keys may repeat, as in systemd)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in _block(DEPLOYMENT, "ini", "# /etc/systemd/system/roombot.service").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), [])
            continue
        assert current is not None, line
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line!r}"
        current.append((key, value))
    return sections


def test_the_systemd_unit_parses_and_runs_roombot_serve() -> None:
    unit = _unit()
    assert set(unit) == {"Unit", "Service", "Install"}
    service = dict(unit["Service"])
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == "roombot"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "serve"
    assert args.port is not None
    assert service["RestartPreventExitStatus"] == "2"  # configuration problems: no restart loop
    assert int(service["TimeoutStopSec"]) > 25
    assert "-HUP" in service["ExecReload"]  # SIGHUP reloads the policy


def test_the_systemd_unit_sets_only_real_variables() -> None:
    environment = [value for key, value in _unit()["Service"] if key == "Environment"]
    names = {value.split("=", 1)[0] for value in environment}
    assert names
    assert names <= SETTINGS
    assert not names & SECRET_VARIABLES  # secrets belong in the EnvironmentFile


def test_the_metrics_table_lists_every_series_roombot_exports() -> None:
    text = OPERATIONS.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(roombot_[a-z_]+)` \|", text, re.M))
    exported = set()
    for family in metrics.REGISTRY.collect():
        if family.name.startswith("roombot_"):
            suffix = "_total" if family.type == "counter" else ""
            exported.add(family.name + suffix)
    exported.add("roombot_work_in_flight")  # the serving adapter's own collector
    assert documented == exported


def test_the_probes_section_says_to_alert_on_readiness_with_the_real_endpoint_and_series() -> None:
    probes = OPERATIONS.read_text(encoding="utf-8").split("## Probes", 1)[1].split("\n## ", 1)[0]
    assert READYZ_PATH in probes
    assert metrics.READY._name in probes
