"""The Grafana dashboard and the Prometheus alert rules cannot drift from what roombot exports.

Every PromQL expression in them is parsed (promql-parser, Prometheus's grammar), and each
metric it selects must be a series roombot's registry (`bot.metrics`, plus the serving
adapter's own collector) exports, each label it matches or groups by one that series has, and
each label value it names one of that label's closed set in `bot.metrics`. The rules cover at
least what the issue asked for, and parse as Prometheus rules."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import promql_parser
import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from bot import metrics
from bot.tencent.errors import CONFIGURATION_CODES, ERROR_HINTS
from handlers.app import Bot
from handlers.ops import _WorkInFlight

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "roombot-alerts.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "roombot-dashboard.json"

#: Labels Prometheus adds to every scraped series (the target's), not roombot's.
TARGET_LABELS = frozenset({"instance", "job"})
#: The series names each metric type exposes (`_created` series are disabled in bot.metrics).
_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_count", "_sum"),
    "summary": ("_count", "_sum", ""),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}
#: The closed set of values of each label an expression names a value of.
CLOSED_SETS: dict[tuple[str, str], frozenset[str]] = {
    ("roombot_ready", "part"): metrics.READY_PARTS,
    ("roombot_requests_total", "source"): metrics.SOURCES,
    ("roombot_requests_total", "outcome"): metrics.REQUEST_OUTCOMES,
    ("roombot_tencent_calls_total", "code"): frozenset(
        {"0", *(str(code) for code in ERROR_HINTS), *metrics.TENCENT_FAILURES}
    ),
    ("roombot_slack_api_errors_total", "error"): metrics.SLACK_ERRORS,
    ("roombot_slack_api_errors_total", "method"): metrics.SLACK_METHODS,
    ("roombot_audit_write_failures_total", "operation"): metrics.AUDIT_OPERATIONS,
    ("roombot_member_actions_total", "outcome"): metrics.TARGET_OUTCOMES,
    ("roombot_callbacks_total", "outcome"): metrics.CALLBACK_OUTCOMES,
    ("roombot_http_refused_total", "reason"): metrics.REFUSAL_REASONS,
    ("roombot_takeovers_total", "kind"): metrics.TAKEOVER_KINDS,
}
#: Grafana's variables and macros, replaced by what they stand for before parsing.
_GRAFANA = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "6h",
    "$instance": ".*",
    "${instance}": ".*",
}
_LITERAL_ALTERNATION = re.compile(r"[\w.\-]+(\|[\w.\-]+)*")


def _exported() -> dict[str, frozenset[str]]:
    """Every series name roombot exports → its label names."""
    labels = {
        wrapper._name: frozenset(wrapper._labelnames)
        for wrapper in vars(metrics).values()
        if isinstance(wrapper, MetricWrapperBase)
    }
    idle = SimpleNamespace(runtime=SimpleNamespace(tasks=SimpleNamespace(pending=0)))
    families = [*metrics.REGISTRY.collect(), *_WorkInFlight(cast(Bot, idle)).collect()]
    series: dict[str, frozenset[str]] = {}
    for family in families:
        names = frozenset(k for s in family.samples for k in s.labels)
        for suffix in _SUFFIXES[family.type]:
            extra = {"le"} if suffix == "_bucket" else set()
            series[family.name + suffix] = labels.get(family.name, names) | extra
    return series


@dataclass
class Selected:
    """What one PromQL expression uses."""

    metrics: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)


def _selected(expr: str) -> Selected:
    for variable, value in _GRAFANA.items():
        expr = expr.replace(variable, value)
    found = Selected()

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            assert node.name, f"a selector without a metric name: {expr}"
            matchers = [
                (m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers
            ]
            found.metrics.setdefault(node.name, []).extend(matchers)
        elif isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            found.grouping.update(node.modifier.labels)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _dashboard() -> dict[str, Any]:
    data = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _expressions() -> list[Any]:
    """(where, PromQL) for every expression in the rules and the dashboard, as test params."""
    found = [(f"rule {rule['alert']}", rule["expr"]) for rule in _rules()]
    for panel in _panels(_dashboard()["panels"]):
        targets = panel.get("targets", [])
        found += [(f"panel {panel['title']} {t['refId']}", t["expr"]) for t in targets]
    return [pytest.param(where, expr, id=where) for where, expr in found]


@pytest.mark.parametrize(("where", "expr"), _expressions())
def test_every_metric_label_and_value_used_is_one_roombot_exports(where: str, expr: str) -> None:
    exported = _exported()
    used = _selected(expr)
    assert used.metrics, where
    known_labels = set(TARGET_LABELS)
    for name, matchers in used.metrics.items():
        assert name in exported, f"{where}: roombot exports no {name}"
        known_labels |= exported[name]
        for label, op, value in matchers:
            assert label in exported[name] | TARGET_LABELS, f"{where}: {name} has no {label!r}"
            if label in TARGET_LABELS:
                continue
            closed = CLOSED_SETS.get((name, label))
            assert closed is not None, f"{where}: add {name}'s {label!r} values to CLOSED_SETS"
            if op in ("Re", "NotRe"):
                assert _LITERAL_ALTERNATION.fullmatch(value), f"{where}: {value!r}"
            for one in value.split("|") if op in ("Re", "NotRe") else [value]:
                assert one in closed, f"{where}: {name}{{{label}}} is never {one!r}"
    assert used.grouping <= known_labels, f"{where}: grouped by {used.grouping - known_labels}"


def test_the_dashboards_replica_variable_asks_an_exported_series() -> None:
    exported = _exported()
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    query = variables["instance"]["query"]["query"]
    found = re.fullmatch(r"label_values\((\w+), (\w+)\)", query)
    assert found is not None, query
    assert found.group(1) in exported
    assert found.group(2) in TARGET_LABELS
    assert variables["datasource"]["query"] == "prometheus"


def test_the_dashboard_is_well_formed() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"]
    assert dashboard["title"] == "roombot"
    panels = list(_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert panel["description"], panel["title"]


def test_the_rules_are_prometheus_alerting_rules() -> None:
    rules = _rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert {"summary", "description"} <= rule["annotations"].keys()
        # An annotation can only name a label the alert's series still carry.
        referenced = {
            label
            for text in rule["annotations"].values()
            for label in re.findall(r"\$labels\.(\w+)", text)
        }
        assert referenced <= _selected(rule["expr"]).grouping, rule["alert"]


@pytest.mark.parametrize(
    ("topic", "metric", "matcher"),
    [
        ("readiness failing", "roombot_ready", None),
        ("audit write failures", "roombot_audit_write_failures_total", None),
        ("Room Engine error rate", "roombot_tencent_calls_total", ("code", "NotRe")),
        ("callback authentication failures", "roombot_callbacks_total", ("outcome", "Equal")),
        ("work stuck past the lease", "roombot_takeovers_total", None),
        ("the rate budget saturated", "roombot_rate_budget_waits_total", None),
    ],
)
def test_the_rules_cover_what_the_issue_asks(
    topic: str, metric: str, matcher: tuple[str, str] | None
) -> None:
    for rule in _rules():
        used = _selected(rule["expr"]).metrics.get(metric)
        if used is None:
            continue
        if matcher is None or any((label, op) == matcher for label, op, _ in used):
            return
    pytest.fail(f"no alert rule on {topic} ({metric})")


def test_the_configuration_alert_names_exactly_roombots_configuration_codes() -> None:
    [rule] = [r for r in _rules() if r["alert"] == "RoombotRoomEngineRejectsConfiguration"]
    [(label, op, value)] = _selected(rule["expr"]).metrics["roombot_tencent_calls_total"]
    assert (label, op) == ("code", "Re")
    assert {int(code) for code in value.split("|")} == CONFIGURATION_CODES
