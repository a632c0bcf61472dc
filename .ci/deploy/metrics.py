"""The Grafana dashboard and the alert rules: both parse, and every series they query is one the
node exports.

    python metrics.py DASHBOARD.json OPERATIONS.md RENDERED.yaml...

- the dashboard is valid JSON with a Prometheus datasource variable, and no panel or target names
  a datasource uid of its own (so it imports into any Grafana);
- every PromQL expression (dashboard targets and variable queries after Grafana's variables are
  substituted, PrometheusRule exprs) parses (promql-parser, the Prometheus grammar);
- every metric name they use is in NODE_METRICS (`up` is Prometheus' own);
- docs/operations.md's alerts table lists exactly the alerts of the PrometheusRules.
Prints the metric names used, for the test that checks them against a live node's /metrics.
"""
import json
import re
import sys

import promql_parser
import yaml

# What a node's /metrics serves (services/herald/src/metrics.rs). Histograms by base name.
NODE_METRICS = {
    # gauges
    "herald_clients", "herald_users", "herald_channels", "herald_subscriptions",
    "herald_emulated_sessions", "herald_websocket_engine", "herald_build_info",
    # counters
    "herald_client_connects_total", "herald_publications_published_total",
    "herald_publications_broadcast_total", "herald_deliveries_total",
    "herald_client_commands_total", "herald_client_command_errors_total",
    "herald_client_limited_total", "herald_client_disconnects_total",
    "herald_client_write_timeouts_total", "herald_api_requests_total",
    "herald_broker_errors_total", "herald_broker_reconnects_total",
    # histograms
    "herald_api_request_duration_seconds", "herald_broker_publish_duration_seconds",
    "herald_client_connect_duration_seconds",
    # process metrics
    "process_resident_memory_bytes", "process_open_fds", "process_max_fds",
    "process_cpu_seconds_total",
}
PROMETHEUS_OWN = {"up"}
HISTOGRAMS = {"herald_api_request_duration_seconds", "herald_broker_publish_duration_seconds",
              "herald_client_connect_duration_seconds"}

dashboard_path, operations_path, *rendered = sys.argv[1:]
failures = []


def metric_names(expr, where):
    try:
        ast = promql_parser.parse(expr)
    except ValueError as e:
        failures.append(f"{where}: PromQL does not parse: {e}: {expr}")
        return set()
    names = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(ast, visit)
    for name in names:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        known = name in NODE_METRICS | PROMETHEUS_OWN or (base in HISTOGRAMS and base != name)
        if not known:
            failures.append(f"{where}: unknown metric {name}")
    return names


# --- dashboard ---
dash = json.load(open(dashboard_path))
variables = {v["name"]: v for v in dash.get("templating", {}).get("list", [])}
ds_vars = [n for n, v in variables.items() if v.get("type") == "datasource" and v.get("query") == "prometheus"]
if not ds_vars:
    failures.append(f"{dashboard_path}: no Prometheus datasource variable")


def walk_json(node, path):
    if isinstance(node, dict):
        ds = node.get("datasource")
        if isinstance(ds, dict) and "uid" in ds and not re.fullmatch(r"\$\{?\w+\}?", str(ds["uid"])):
            failures.append(f"{dashboard_path}: {path}: hard-coded datasource uid {ds['uid']!r}")
        if isinstance(ds, str) and not ds.startswith("$"):
            failures.append(f"{dashboard_path}: {path}: hard-coded datasource {ds!r}")
        for k, v in node.items():
            walk_json(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            walk_json(v, f"{path}/{i}")


walk_json(dash, "")


def grafana_to_promql(expr):
    # Interval variables become a duration, every other variable a label value.
    expr = re.sub(r"\$\{?__(rate_interval|interval|range)\}?", "5m", expr)
    return re.sub(r"\$\{\w+(:\w+)?\}|\$\w+", "x", expr)


panels = list(dash.get("panels", []))
for p in list(panels):
    panels.extend(p.get("panels", []))  # collapsed rows keep theirs inside
ids = [p["id"] for p in panels]
if len(ids) != len(set(ids)):
    failures.append(f"{dashboard_path}: duplicate panel ids")
used = set()
for p in panels:
    for t in p.get("targets", []):
        used |= metric_names(grafana_to_promql(t["expr"]), f"{dashboard_path}: panel {p.get('title')!r}")
for n, v in variables.items():
    if v.get("type") == "query":
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.*),\s*\w+\)", q)
        if m:
            used |= metric_names(grafana_to_promql(m.group(1)), f"{dashboard_path}: variable {n}")
print(f"{dashboard_path}: {len(panels)} panels; metrics: {' '.join(sorted(used))}")

# --- alerts ---
docs = open(operations_path).read()
alert_metrics = set()
alerts = set()
for path in rendered:
    for d in yaml.safe_load_all(open(path)):
        if not d or d["kind"] != "PrometheusRule":
            continue
        for g in d["spec"]["groups"]:
            for r in g["rules"]:
                alert_metrics |= metric_names(r["expr"], f"{path}: {r.get('alert') or r.get('record')}")
                if "alert" in r:
                    alerts.add(r["alert"])
# The alerts table: one row an alert, its name first in backquotes.
documented = set(re.findall(r"^\| `(\w+)` \|", docs, re.M))
for a in sorted(alerts - documented):
    failures.append(f"{operations_path}: alert {a} has no row in the alerts table")
for a in sorted(documented - alerts):
    failures.append(f"{operations_path}: alerts table lists {a}, which no PrometheusRule defines")
print(f"alerts ({len(alerts)}): {' '.join(sorted(alerts))}")
print(f"alert metrics: {' '.join(sorted(alert_metrics))}")
if failures:
    sys.exit("\n".join(failures))
