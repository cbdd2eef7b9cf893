"""deploy/kubernetes/ applies as it is: every manifest is valid against the Kubernetes schemas
(kubernetes-validate's bundled copies, strict: an unknown or misspelt field fails), the
kustomization lists them, and they agree with roombot: real endpoints, subcommands, settings
and secrets, the image's user, a grace period longer than the drain, a policy that loads.
There is no cluster here; `kubectl kustomize` runs where kubectl exists."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import dockerfile
import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

import bot
from bot.cli import build_parser
from bot.config import SECRET_VARIABLES, Settings, load_settings
from bot.policy.loader import known_verbs, load_policy
from handlers.ops import HEALTHZ_PATH, METRICS_PATH
from handlers.serve import DRAIN_TIMEOUT_S

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
#: The oldest Kubernetes the manifests promise to work on (docs/deployment.md says so too).
OLDEST = "1.28"
_SETTINGS = {name.upper() for name in Settings.model_fields}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d is not None]


def _kustomization() -> dict[str, Any]:
    [kustomization] = _documents(MANIFESTS / "kustomization.yaml")
    return kustomization


def _resource(kind: str) -> dict[str, Any]:
    found = [
        document
        for name in _kustomization()["resources"]
        for document in _documents(MANIFESTS / name)
        if document["kind"] == kind
    ]
    [resource] = found
    return resource


def _pod() -> dict[str, Any]:
    pod = _resource("Deployment")["spec"]["template"]
    assert isinstance(pod, dict)
    return pod


def _container() -> dict[str, Any]:
    [container] = _pod()["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def _validate(document: dict[str, Any], version: str, where: str) -> None:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where}: {exc.message} at {'.'.join(map(str, exc.path))}")


def _secret_template() -> dict[str, Any]:
    [secret] = _documents(MANIFESTS / "secret.template.yaml")
    return secret


@pytest.mark.parametrize("version", [OLDEST, latest_version()])
@pytest.mark.parametrize(
    "name", sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
)
def test_each_manifest_is_valid_against_the_kubernetes_schemas(name: str, version: str) -> None:
    documents = _documents(MANIFESTS / name)
    assert documents
    for document in documents:
        _validate(document, version, name)


def test_the_kustomization_applies_every_manifest_but_the_secret_template() -> None:
    listed = set(_kustomization()["resources"])
    present = {p.name for p in MANIFESTS.glob("*.yaml")}
    assert listed == present - {"kustomization.yaml", "secret.template.yaml"}
    kinds = {d["kind"] for name in listed for d in _documents(MANIFESTS / name)}
    assert kinds == {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"}


def test_the_image_is_roombots_at_this_version() -> None:
    [image] = _kustomization()["images"]
    assert image["name"] == _container()["image"]
    assert image["newTag"] == bot.__version__


def test_kustomize_builds_what_the_schemas_accept() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl here; the files are validated one by one above")
    result = subprocess.run(
        [kubectl, "kustomize", str(MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d is not None]
    assert len(built) == 4
    for document in built:
        _validate(document, OLDEST, "kustomize's output")
        assert document["metadata"]["labels"]["app.kubernetes.io/part-of"] == "roombot"
    [deployment] = [d for d in built if d["kind"] == "Deployment"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"].endswith(f"/roombot:{bot.__version__}")


def test_two_replicas_serve_http_and_probe_the_real_endpoints() -> None:
    deployment = _resource("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= _pod()["metadata"]["labels"].items()
    container = _container()
    assert build_parser().parse_args(container["args"]).command == "serve"
    assert build_parser().parse_args(container["args"]).http is True
    [port] = container["ports"]
    env = {item["name"]: item for item in container["env"]}
    assert env["PORT"]["value"] == str(port["containerPort"])
    # Traffic is gated on /healthz too: /readyz's parts are shared by every replica, so gating
    # on it would take them all out at once when Room Engine is down (it is for alerting).
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == HEALTHZ_PATH, probe
        assert container[probe]["httpGet"]["port"] in (port["name"], port["containerPort"])
    annotations = _pod()["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == METRICS_PATH
    assert annotations["prometheus.io/port"] == str(port["containerPort"])


def test_the_pod_outlives_the_drain_with_bounded_resources() -> None:
    spec = _pod()["spec"]
    # The drain, then a margin for the process to exit and its lease to be released.
    assert spec["terminationGracePeriodSeconds"] >= DRAIN_TIMEOUT_S + 10
    resources = _container()["resources"]
    assert {"cpu", "memory"} <= resources["requests"].keys()
    assert "memory" in resources["limits"]


def test_it_runs_as_the_images_user_on_a_read_only_root_filesystem() -> None:
    final_stage_user = [
        c.value[0] for c in dockerfile.parse_file(str(REPO / "Dockerfile")) if c.cmd == "USER"
    ][-1]
    uid, gid = (int(part) for part in final_stage_user.split(":"))
    pod = _pod()["spec"]["securityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"]) == (uid, gid)
    container = _container()["securityContext"]
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    # Nothing writable is mounted: with PostgreSQL, roombot needs no disk.
    volumes = {v["name"]: v for v in _pod()["spec"]["volumes"]}
    for mount in _container()["volumeMounts"]:
        assert mount["readOnly"] is True
        assert "emptyDir" not in volumes[mount["name"]]


def test_settings_are_real_and_secrets_come_from_the_secret() -> None:
    env = _container()["env"]
    names = {item["name"] for item in env}
    assert names - {"PORT"} <= _SETTINGS
    plain = {item["name"].lower(): item["value"] for item in env if "value" in item}
    plain.pop("port")
    load_settings(env_file=None, **plain)  # a bad value raises ConfigError naming it
    secret_keys = set(_secret_template()["stringData"])
    for item in env:
        if item["name"] in SECRET_VARIABLES or item["name"] == "ROOMBOT_AUDIT_DB":
            assert "value" not in item, item["name"]
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert ref["name"] == _secret_template()["metadata"]["name"]
            assert ref["key"] == item["name"]
            assert ref["key"] in secret_keys
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "TENCENT_SECRET_KEY"} <= names


def test_the_secret_template_has_every_key_and_no_value() -> None:
    secret = _secret_template()
    assert "data" not in secret
    assert set(secret["stringData"].values()) == {""}
    used = {item["name"] for item in _container()["env"] if "valueFrom" in item}
    assert set(secret["stringData"]) == used


def test_the_policy_configmap_is_mounted_where_roombot_reads_it_and_loads(tmp_path: Path) -> None:
    env = {item["name"]: item.get("value") for item in _container()["env"]}
    policy_path = Path(env["ROOMBOT_POLICY_FILE"])
    [mount] = [
        m for m in _container()["volumeMounts"] if policy_path.parent == Path(m["mountPath"])
    ]
    volume = next(v for v in _pod()["spec"]["volumes"] if v["name"] == mount["name"])
    configmap = _resource("ConfigMap")
    assert volume["configMap"]["name"] == configmap["metadata"]["name"]
    text = configmap["data"][policy_path.name]
    file = tmp_path / policy_path.name
    file.write_text(text, encoding="utf-8")
    policy = load_policy(allowed_users=(), policy_file=file, known_verbs=known_verbs())
    assert policy.roles


def test_the_service_and_the_disruption_budget_select_the_pods() -> None:
    labels = _pod()["metadata"]["labels"]
    service = _resource("Service")
    assert service["spec"]["selector"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == _container()["ports"][0]["name"]
    budget = _resource("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert 1 <= budget["spec"]["minAvailable"] < _resource("Deployment")["spec"]["replicas"]
