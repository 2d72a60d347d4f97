"""deploy/monitoring: the alert rules and the Grafana dashboard, against the live /metrics."""

import json
import re
import shutil
import subprocess

import pytest
import yaml

from helpers import ROOT

ALERTS = ROOT / "deploy" / "monitoring" / "alerts.yml"
DASHBOARD = ROOT / "deploy" / "monitoring" / "grafana-dashboard.json"
# The series a `# TYPE` line stands for (text format: a counter's name already ends in _total).
SERIES_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}
# Made by Prometheus for every scrape target, not by the service.
SCRAPE_SERIES = {"up"}
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset"}


def _rules():
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def _dashboard():
    return json.loads(DASHBOARD.read_text())


def _expressions():
    """(where, PromQL) for every alert and every dashboard target."""
    alerts = [(rule["alert"], rule["expr"]) for rule in _rules()]
    targets = [
        (f"panel {panel['title']!r}", target["expr"])
        for panel in _dashboard()["panels"]
        for target in panel["targets"]
    ]
    return alerts + targets


def metric_names(expr):
    """The metric names a PromQL expression selects."""
    bare = re.sub(r'"(?:\\.|[^"\\])*"|`[^`]*`', '""', expr)
    bare = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    # Identifiers not followed by "(" (functions, aggregations), and not inside numbers.
    names = re.findall(r"(?<![\w.])[a-zA-Z_:][\w:]*\b(?!\s*\()", bare)
    return set(names) - PROMQL_KEYWORDS


def exposed_series(metrics_text):
    """The series names /metrics declares, including the labelled ones with no sample yet."""
    names = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", metrics_text, re.MULTILINE):
        names.update(name + suffix for suffix in SERIES_SUFFIXES.get(kind, ("",)))
    # Under gunicorn (multiprocess mode) /metrics has only the service's own
    # metrics: no process_/python_ collectors.
    return {name for name in names if name.startswith("image_catalogue_")}


def test_every_alert_rule_is_complete():
    rules = _rules()
    assert rules
    for rule in rules:
        assert {"alert", "expr", "for", "labels", "annotations"} <= rule.keys(), rule
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
    assert len({rule["alert"] for rule in rules}) == len(rules)


def test_the_dashboard_panels_have_unique_ids_a_query_and_the_datasource_variable():
    dashboard = _dashboard()
    assert dashboard["uid"] == "image-catalogue"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"] and all(target["expr"] for target in panel["targets"]), panel
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_alerts_and_dashboard_use_only_metrics_the_service_exposes(client, list_images):
    assert list_images().status_code == 200
    exposed = exposed_series(client.get("/metrics").get_data(as_text=True))
    # Catalogue, mirror and fallback series have no sample before their first
    # load, pass or fallback, but their TYPE lines are already here (under
    # gunicorn's multiprocess mode, a labelled counter's come with its first event).
    assert {
        "image_catalogue_request_duration_seconds_bucket",
        "image_catalogue_db_read_fallbacks_total",
        "image_catalogue_mirror_lag_seconds",
    } <= exposed
    expressions = _expressions()
    assert all(metric_names(expr) for _, expr in expressions)
    unknown = {
        (where, name)
        for where, expr in expressions
        for name in metric_names(expr)
        if name not in exposed | SCRAPE_SERIES
    }
    assert unknown == set()


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (job, le) (rate(a_bucket{route=~"/v1([.]1)?/x", s!="b{c}"}[5m])) > 1e3',
            {"a_bucket"},
        ),
        ("(a > on(x) group_left(y) b) or (a unless b) and time() - c offset 5m", {"a", "b", "c"}),
        ('absent(up{job="image-catalogue"})', {"up"}),
    ],
)
def test_metric_names_finds_only_the_selected_metrics(expr, names):
    assert metric_names(expr) == names


@pytest.mark.drill
def test_promtool_accepts_the_alert_rules():
    promtool = shutil.which("promtool")
    assert promtool, "promtool not on PATH (make drills installs the prometheus package)"
    checked = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
