"""The operations kit: the Grafana dashboard and the Prometheus alert rules ask only for
metrics persona exports, with labels they carry, in rules Prometheus accepts; and
`persona serve` exposes the metrics on a port of their own, without a key, summed over its
processes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from persona.access import Scope
from persona.api.app import create_app
from persona.engine import Engine
from persona.jobs import PeriodicJob, start_all, stop_all
from persona.observability import Metrics
from persona.settings import Settings, SettingsError, load_settings
from tests.server import free_port, start_server

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "ops" / "grafana" / "persona.json"
ALERTS = ROOT / "ops" / "prometheus" / "alerts.yml"

# Prometheus's own series, and the labels it adds to every scraped series.
BUILT_IN_SERIES = {"up": {"job", "instance"}}
TARGET_LABELS = {"job", "instance"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
KEYWORDS = {
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "and",
    "or",
    "unless",
    "offset",
    "inf",
    "nan",
}
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}


def samples(text: str, series: str, /, **labels: str) -> float:
    """The sum of the samples of ``series`` with ``labels`` in a scrape."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == series and all(sample.labels.get(k) == v for k, v in labels.items())
    )


# --- what persona exports ----------------------------------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Every series name persona exports, with its label names: the families of a real
    engine's registry (their samples' names by type), the labels from a scrape of /metrics
    after traffic that gives every labelled family a sample."""
    engine = Engine.open(Settings(home=tmp_path_factory.mktemp("home"), dev_mode=True))
    try:
        metrics = engine.metrics
        metrics.watch_stream(lambda: {"lake": 3})
        metrics.webhook_counted("dead", 1)
        metrics.job_ran("retrain", False)
        metrics.write_conflicts.inc()
        metrics.stream_published.inc()
        with TestClient(create_app(engine)) as client:
            events = [
                {"event_id": "e-1", "type": "view", "user_id": "u", "item_id": "i"},
                {"event_id": "e-1", "type": "view", "user_id": "u", "item_id": "i"},
                {"event_id": "e-2", "type": "view", "item_id": "i"},
            ]
            assert client.post("/v1/events", json=events).status_code == 200
            assert client.get("/v1/users/u/recommendations").status_code == 200
            scraped = client.get("/metrics").text
        names: dict[str, set[str]] = {}
        for family in metrics.registry.collect():
            for suffix in SUFFIXES[family.type]:
                names[family.name + suffix] = set()
        for family in text_string_to_metric_families(scraped):
            for sample in family.samples:
                if sample.name in names:
                    names[sample.name] |= set(sample.labels)
    finally:
        engine.close()
    return names


def test_the_exercise_gives_every_labelled_family_its_labels(
    exported: dict[str, set[str]],
) -> None:
    """Labels are learnt from samples: a family left without one would dodge the checks."""
    assert exported["persona_events_rejected_total"] == {"code"}
    assert exported["persona_job_runs_total"] == {"name", "outcome"}
    assert exported["persona_http_request_seconds_bucket"] == {"route", "method", "le"}
    assert exported["persona_stream_lag"] == {"group"}
    assert exported["persona_recommendations_total"] == {"route", "source", "cache"}


def test_rejected_events_are_counted_by_code(tmp_path: Path) -> None:
    engine = Engine.open(Settings(home=tmp_path, dev_mode=True))
    try:
        with TestClient(create_app(engine)) as client:
            events = [
                {"type": "view", "item_id": "i"},
                {"type": "view", "item_id": "i"},
                {"type": "view", "user_id": "u", "timestamp": "soon"},
                {"type": "view", "user_id": "u"},
            ]
            assert client.post("/v1/events", json=events).json()["rejected"] == 3
            scraped = client.get("/metrics").text
    finally:
        engine.close()
    assert samples(scraped, "persona_events_rejected_total", code="missing_identity") == 2
    assert samples(scraped, "persona_events_rejected_total", code="invalid_timestamp") == 1
    assert samples(scraped, "persona_events_total", outcome="rejected") == 3


def test_background_job_runs_are_counted_with_their_outcome() -> None:
    metrics = Metrics()

    def fail() -> None:
        raise RuntimeError("the store is away")

    jobs = start_all(
        [PeriodicJob("boom", 0.01, fail), PeriodicJob("fine", 0.01, lambda: None)],
        metrics.job_ran,
    )
    try:
        deadline = time.monotonic() + 5
        while samples(metrics.render().decode(), "persona_job_runs_total", name="fine") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        stop_all(jobs)
    scraped = metrics.render().decode()
    assert samples(scraped, "persona_job_runs_total", name="boom", outcome="failed") >= 1
    assert samples(scraped, "persona_job_runs_total", name="boom", outcome="ok") == 0
    assert samples(scraped, "persona_job_runs_total", name="fine", outcome="failed") == 0


# --- reading PromQL ------------------------------------------------------------------------

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
RANGE = re.compile(r"\[[^\]]*\]")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def substituted(expr: str) -> str:
    """A Grafana expression with its variables replaced by what Prometheus accepts."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?[A-Za-z_]+\}?", ".*", expr)


def read_promql(expr: str) -> tuple[dict[str, set[str]], set[str]]:
    """The series an expression selects, each with the labels its matchers name, and the
    labels its groupings (by, without, on, ignoring) name."""
    text = RANGE.sub("", STRING.sub('""', expr))
    grouped: set[str] = set()
    for match in GROUPING.finditer(text):
        grouped |= {label.strip() for label in match.group(2).split(",") if label.strip()}
    text = GROUPING.sub(" ", text)
    selected: dict[str, set[str]] = {}
    for match in SELECTOR.finditer(text):
        labels = set(MATCHER.findall(match.group(2)))
        assert match.group(1), f"a selector without a metric name in {expr!r}"
        selected.setdefault(match.group(1), set()).update(labels)
    text = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)
    for match in NAME.finditer(text):
        name, rest = match.group(), text[match.end() :]
        before = text[match.start() - 1] if match.start() else " "
        if name in KEYWORDS or before.isdigit() or before == "." or rest.lstrip().startswith("("):
            continue  # a keyword, part of a number (1e-9), a function or an aggregation
        selected.setdefault(name, set())
    return selected, grouped


def test_the_reader_finds_series_matchers_and_groupings() -> None:
    selected, grouped = read_promql(
        'histogram_quantile(0.99, sum by (route, le) (rate(a_bucket{job=~"$job",'
        ' route!="x{y}"}[5m]))) / on(job) b_total > 1e-9 and up offset 5m'
    )
    assert selected == {"a_bucket": {"job", "route"}, "b_total": set(), "up": set()}
    assert grouped == {"route", "le", "job"}


def check_expression(where: str, expr: str, exported: dict[str, set[str]]) -> list[str]:
    """What is wrong with ``expr``: series persona does not export, labels they lack."""
    known = {**{name: labels | TARGET_LABELS for name, labels in exported.items()}}
    known |= BUILT_IN_SERIES
    selected, grouped = read_promql(expr)
    problems = []
    available = set(TARGET_LABELS)
    for name, labels in selected.items():
        if name not in known:
            problems.append(f"{where}: {name} is not exported")
            continue
        available |= known[name]
        if labels - known[name]:
            problems.append(f"{where}: {name} has no label {sorted(labels - known[name])}")
    if grouped - available:
        problems.append(f"{where}: groups by labels no series has: {sorted(grouped - available)}")
    if not selected:
        problems.append(f"{where}: selects no series")
    return problems


# --- the dashboard -------------------------------------------------------------------------


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every query of the dashboard: its panels' and its variables'
    (``label_values(series, label)``: the series, matching the label it lists)."""
    found = []
    for panel in all_panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in dashboard()["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"]
        values = re.fullmatch(r"label_values\(([A-Za-z_:][A-Za-z0-9_:]*)(\{.*\})?, *(\w+)\)", query)
        assert values, query
        name, matchers, label = values.groups()
        listed = f'{label}=~".+"'
        series = f"{name}{{{matchers[1:-1]}, {listed}}}" if matchers else f"{name}{{{listed}}}"
        found.append((f"variable {variable['name']}", series))
    return found


def test_every_dashboard_query_uses_exported_series_and_labels(
    exported: dict[str, set[str]],
) -> None:
    problems = [
        problem
        for where, expr in dashboard_expressions()
        for problem in check_expression(where, substituted(expr), exported)
    ]
    assert not problems, "\n".join(problems)


def test_the_dashboard_shows_every_family_persona_exports(
    exported: dict[str, set[str]],
) -> None:
    """A new metric gets a panel (or a reason not to, here)."""
    used = {name for _, expr in dashboard_expressions() for name in read_promql(expr)[0]}
    families = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in exported}
    shown = {re.sub(r"_(total|bucket|count|sum)$", "", name) for name in used}
    assert families - shown == set()


def test_the_dashboard_is_a_grafana_model_on_a_prometheus_variable() -> None:
    model = dashboard()
    assert model["uid"] and model["title"] and isinstance(model["schemaVersion"], int)
    variables = {v["name"]: v for v in model["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(all_panels(model["panels"]))
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"] and panel.get("description"), panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]


def test_the_dashboard_covers_what_an_operator_watches() -> None:
    titles = " | ".join(p["title"].lower() for p in all_panels(dashboard()["panels"]))
    for topic in (
        "request rate by route",
        "p99 latency by route",
        "events by outcome",
        "rejected share",
        "rejections by code",
        "fallback share",
        "job failures",
        "stream lag",
        "cache hit ratio",
    ):
        assert topic in titles, topic


# --- the alert rules -----------------------------------------------------------------------

DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")


def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"} and group["name"]
        assert group["rules"], group["name"]
        rules += group["rules"]
    return rules


def test_the_alert_rules_have_the_structure_prometheus_reads() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"]), rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip(), rule["alert"]
        assert DURATION.fullmatch(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert all(isinstance(v, str) for v in rule["labels"].values()), rule["alert"]
        assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_the_alerts_cover_what_the_kit_promises() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "PersonaDown",
        "PersonaEventRejectionRateHigh",
        "PersonaFallbackShareHigh",
        "PersonaRouteLatencyHigh",
        "PersonaJobFailing",
        "PersonaStreamLagGrowing",
    } <= names


def test_every_alert_uses_exported_series_and_labels(exported: dict[str, set[str]]) -> None:
    problems = [
        problem
        for rule in alert_rules()
        for problem in check_expression(f"alert {rule['alert']}", rule["expr"], exported)
    ]
    assert not problems, "\n".join(problems)


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)"
)
def test_promtool_accepts_the_rules_and_the_dashboard_queries(tmp_path: Path) -> None:
    assert PROMTOOL is not None
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The dashboard's queries, as recording rules: promtool parses each expression.
    recorded = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query:{n}", "expr": substituted(expr)}
                    for n, (_, expr) in enumerate(dashboard_expressions())
                ],
            }
        ]
    }
    path = tmp_path / "dashboard.yml"
    path.write_text(yaml.safe_dump(recorded))
    checked = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- the metrics port of a real server -----------------------------------------------------


def home_with_key(home: Path) -> str:
    engine = Engine.open(Settings(home=home))
    try:
        return engine.keys.create("ops", [Scope.ADMIN]).secret
    finally:
        engine.close()


def post_events(base_url: str, secret: str, count: int) -> None:
    for n in range(count):  # a connection each, so the processes share them
        answer = httpx.post(
            f"{base_url}/v1/events",
            json={"event_id": f"e-{n}", "type": "view", "user_id": f"u-{n}", "item_id": "i"},
            headers={"authorization": f"Bearer {secret}"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text


def test_the_metrics_port_is_off_by_default_and_differs_from_the_api_port() -> None:
    assert load_settings().server.metrics_port == 0
    assert load_settings(server={"metrics_port": 9100}).server.metrics_port == 9100
    with pytest.raises(SettingsError, match="metrics_port must differ from port"):
        load_settings(server={"port": 9100, "metrics_port": 9100})


@pytest.mark.slow
def test_the_metrics_port_answers_without_a_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    secret = home_with_key(home)
    port, metrics_port = free_port(), free_port()
    server = start_server(home, port, "--workers", "1", "--metrics-port", str(metrics_port))
    try:
        post_events(f"http://127.0.0.1:{port}", secret, 3)
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10)
        assert scraped.status_code == 200
        assert samples(scraped.text, "persona_events_total", outcome="accepted") == 3
        # the process's own gauges are there too with one process
        assert "persona_memory_entries" in scraped.text
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.slow
def test_the_metrics_port_sums_the_worker_processes(tmp_path: Path) -> None:
    """Two processes read the settings file named by --config (a batch over its limit is
    refused) and write their counters for the first, which serves their sum."""
    home, scratch = tmp_path / "home", tmp_path / "tmp"
    scratch.mkdir()
    secret = home_with_key(home)
    port, metrics_port = free_port(), free_port()
    config = tmp_path / "persona-settings.toml"
    config.write_text(
        f"[server]\nmetrics_port = {metrics_port}\n\n[ingest]\nmax_batch_events = 2\n"
    )
    server = start_server(
        home,
        port,
        "--workers",
        "2",
        options=("--config", str(config)),
        env={"TMPDIR": str(scratch)},  # where the processes' metric files go
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        requests = 24
        post_events(base_url, secret, requests)
        too_many = [{"type": "view", "user_id": "u", "item_id": str(n)} for n in range(3)]
        refused = httpx.post(
            f"{base_url}/v1/events", json=too_many, headers={"authorization": f"Bearer {secret}"}
        )
        assert refused.status_code == 413  # the file's limit, in whichever process answered
        scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        assert samples(scraped, "persona_events_total", outcome="accepted") == requests
        assert (
            samples(
                scraped,
                "persona_http_requests_total",
                route="/v1/events",
                method="POST",
                status="200",
            )
            == requests
        )
        assert samples(scraped, "persona_http_request_seconds_count", route="/v1/events") == (
            requests + 1
        )
        # every process writes its counters there, once started (the first to answer
        # /readyz may be alone for a few seconds)
        directories = list(scratch.glob("persona-metrics-*"))
        assert len(directories) == 1
        deadline = time.monotonic() + 30
        while len(list(directories[0].glob("counter_*.db"))) < 2:
            assert time.monotonic() < deadline, "the second process never counted"
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert not list(scratch.glob("persona-metrics-*")), "the metric files are removed"
