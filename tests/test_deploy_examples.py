"""The README's "Running in production" examples cannot drift from the code: the Kubernetes
Deployment and the systemd unit parse, and name real endpoints, subcommands and variables; the
metrics table lists exactly the series roombot exports."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from bot import metrics
from bot.cli import build_parser
from bot.config import SECRET_VARIABLES, Settings
from handlers.ops import HEALTHZ_PATH, METRICS_PATH, READYZ_PATH

README = Path(__file__).resolve().parents[1] / "README.md"
SETTINGS = {name.upper() for name in Settings.model_fields}


def _block(language: str, first_line: str) -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(rf"```{language}\n({re.escape(first_line)}\n.*?)```", text, re.S)
    assert found is not None, f"no ```{language} block starting with {first_line!r}"
    return found.group(1)


def _deployment() -> dict[str, Any]:
    docs = list(yaml.safe_load_all(_block("yaml", "# kubernetes: roombot Deployment")))
    [deployment] = docs
    assert isinstance(deployment, dict)
    return deployment


def test_the_kubernetes_deployment_parses_and_probes_the_real_endpoints() -> None:
    deployment = _deployment()
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    pod = deployment["spec"]["template"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    args = build_parser().parse_args(container["args"])
    assert args.command == "serve"
    [port] = container["ports"]
    env = {item["name"]: item for item in container["env"]}
    assert env["PORT"]["value"] == str(port["containerPort"])
    assert container["livenessProbe"]["httpGet"]["path"] == HEALTHZ_PATH
    assert container["startupProbe"]["httpGet"]["path"] == HEALTHZ_PATH
    # Traffic is gated on /healthz: /readyz's parts are shared by every replica, so gating on
    # it would take them all out at once when Room Engine is down (it is for alerting).
    assert container["readinessProbe"]["httpGet"]["path"] == HEALTHZ_PATH
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    annotations = pod["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert annotations["prometheus.io/port"] == str(port["containerPort"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > 25  # longer than the drain


def test_the_deployment_sets_only_real_variables_and_secrets_from_a_secret() -> None:
    [container] = _deployment()["spec"]["template"]["spec"]["containers"]
    names = {item["name"] for item in container["env"]}
    assert names - {"PORT"} <= SETTINGS
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TENCENT_SECRET_KEY"} <= names
    for item in container["env"]:
        if item["name"] in SECRET_VARIABLES:
            assert "value" not in item
            assert item["valueFrom"]["secretKeyRef"]["key"] == item["name"]


def _unit() -> dict[str, list[tuple[str, str]]]:
    """The systemd unit as sections of (key, value) pairs (keys may repeat, as in systemd)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in _block("ini", "# /etc/systemd/system/roombot.service").splitlines():
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
    text = README.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(roombot_[a-z_]+)` \|", text, re.M))
    exported = set()
    for family in metrics.REGISTRY.collect():
        if family.name.startswith("roombot_"):
            suffix = "_total" if family.type == "counter" else ""
            exported.add(family.name + suffix)
    exported.add("roombot_work_in_flight")  # the serving adapter's own collector
    assert documented == exported


def test_the_readme_says_to_alert_on_readiness_with_the_real_endpoint_and_series() -> None:
    probes = README.read_text(encoding="utf-8").split("### Probes", 1)[1].split("###", 1)[0]
    assert READYZ_PATH in probes
    assert metrics.READY._name in probes
