"""Invariants of the rendered Kubernetes manifests that the comments in k8s/ rely on and that no
schema can express.

    python invariants.py RENDERED_DIR NAME...

NAME is a rendered target (base, overlays-dev, overlays-production, examples-site-overlay), read
from RENDERED_DIR/NAME.yaml. Production-like targets (the production overlay and anything layered
on it) get the checks of what production adds: Ingress, NetworkPolicy, ServiceMonitor, HPA
metrics, Redis wiring.
"""
import re
import sys
import tomllib
from pathlib import Path

import yaml

# Every path a client uses (docs/protocol.md): the WebSocket, the two fallbacks and their
# command endpoint, the three unidirectional transports, Socket.IO. The Ingress must route each of
# them...
CLIENT_PATHS = ["/connection/websocket", "/connection/http_stream", "/connection/sse", "/emulation",
                "/connection/uni_websocket", "/connection/uni_sse", "/connection/uni_http_stream",
                "/socket.io/"]
# ...and none of what belongs to the operator's side (server.internal_listen) or nothing at all.
PRIVATE_PATHS = ["/api", "/api/publish", "/api/info", "/metrics", "/ready", "/", "/health"]
PRODUCTION_LIKE = {"overlays-production", "examples-site-overlay"}
SECRETLESS = {"overlays-dev"}  # defines every Secret it references

out = Path(sys.argv[1])
failures = []


def secs(d):
    m = re.fullmatch(r"(\d+)s", d)
    assert m, f"unsupported duration {d!r}"
    return int(m.group(1))


def port_of(addr):
    return int(addr.rsplit(":", 1)[1])


def matches(rule_path, path_type, path):
    """Whether an Ingress path (networking.k8s.io/v1 semantics) matches request path `path`."""
    if path_type == "Exact":
        return path == rule_path
    prefix = rule_path.rstrip("/")
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items()) and not selector.get(
        "matchExpressions"
    )


def check_target(name):
    def check(ok, msg):
        if not ok:
            failures.append(f"{name}: {msg}")

    docs = [d for d in yaml.safe_load_all((out / f"{name}.yaml").read_text()) if d]
    # Generated ConfigMaps/Secrets carry a content hash suffix; look them up without it.
    by = {
        (d["kind"], d["metadata"]["name"].rsplit("-", 1)[0] if d["kind"] in ("ConfigMap", "Secret") else d["metadata"]["name"]): d
        for d in docs
    }
    dep = by[("Deployment", "herald")]
    pod = dep["spec"]["template"]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    c = pod["containers"][0]
    cm = by[("ConfigMap", "herald-config")]
    cfg = tomllib.loads(cm["data"]["herald.toml"])
    shutdown = secs(cfg["server"]["shutdown_timeout"])
    pre = c["lifecycle"]["preStop"]["exec"]["command"]
    sleep = int(pre[1])
    grace = pod["terminationGracePeriodSeconds"]
    check(grace > sleep + shutdown, f"terminationGracePeriodSeconds {grace} <= preStop {sleep}s + shutdown_timeout {shutdown}s")
    check(c["readinessProbe"]["httpGet"]["path"] == "/ready", "readiness probe must GET /ready")
    check(c["livenessProbe"]["httpGet"]["path"] == "/health", "liveness probe must GET /health")
    check(c["args"][:2] == ["--config", "/etc/herald/herald.toml"], "args must pass --config")
    check(c["securityContext"]["readOnlyRootFilesystem"] is True, "read-only rootfs")
    check(pod["securityContext"]["runAsNonRoot"] is True, "runAsNonRoot")
    check(cm["metadata"]["name"] in [v["configMap"]["name"] for v in pod["volumes"] if "configMap" in v], "config volume must reference the generated ConfigMap")

    # Ports: the container's named ports are the config's listeners, and the Service exposes both.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    internal = cfg["server"].get("internal_listen")
    check(internal is not None, "herald.toml must set server.internal_listen (API and metrics off the public port)")
    check(ports.get("http") == port_of(cfg["server"]["listen"]), f"containerPort http {ports.get('http')} != server.listen {cfg['server']['listen']}")
    if internal:
        check(ports.get("internal") == port_of(internal), f"containerPort internal {ports.get('internal')} != server.internal_listen {internal}")
    for probe in ("readinessProbe", "livenessProbe"):
        # The public port's /ready is the brief one; probes must not depend on the internal port.
        check(c[probe]["httpGet"]["port"] in ("http", ports.get("http")), f"{probe} must use the public port")
    svc = by[("Service", "herald")]
    svc_ports = {p["name"]: p for p in svc["spec"]["ports"]}
    for pname in ("http", "internal"):
        sp = svc_ports.get(pname)
        check(sp is not None and sp["targetPort"] in (pname, ports.get(pname)), f"Service port {pname} must target the container's {pname} port")
    check(selects({"matchLabels": svc["spec"]["selector"]}, pod_labels), "Service selector must select the pods")

    # Spread over zones and nodes.
    spread = {t["topologyKey"]: t for t in pod.get("topologySpreadConstraints", [])}
    for key in ("topology.kubernetes.io/zone", "kubernetes.io/hostname"):
        check(key in spread and selects(spread[key]["labelSelector"], pod_labels), f"topologySpreadConstraints on {key} selecting the pods")

    # Secrets, and $(VAR) references that Kubernetes only expands from variables defined earlier.
    env = c["env"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env if "valueFrom" in e}
    secrets = {d["metadata"]["name"] for d in docs if d["kind"] == "Secret"}
    for i, e in enumerate(env):
        for var in re.findall(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)", e.get("value", "")):
            check(var in [x["name"] for x in env[:i]], f"env {e['name']} uses $({var}) before (or without) defining it")

    if name in SECRETLESS:
        check(refs <= secrets, f"dev must define the Secrets it references ({refs - secrets})")
        check(dep["spec"]["replicas"] == 1, "dev runs 1 replica")
        check(("HorizontalPodAutoscaler", "herald") not in by, "dev has no HPA")
    else:
        check("herald-secrets" in refs and not secrets, "must reference, not define, herald-secrets")
        check(("HorizontalPodAutoscaler", "herald") in by and ("PodDisruptionBudget", "herald") in by, "HPA and PDB present")

    if name == "overlays-production":
        check(refs == {"herald-secrets", "herald-redis"}, f"production references herald-secrets and herald-redis, got {refs}")
    if name in PRODUCTION_LIKE:
        values = {e["name"]: e.get("value") for e in env}
        env_from = {e["name"]: e["valueFrom"] for e in env if "valueFrom" in e}
        check(dep["spec"]["replicas"] == 3, "production runs 3 replicas")
        check(values.get("HERALD_BROKER__KIND") == "redis", "production uses the redis broker")
        urls = values.get("HERALD_BROKER__REDIS_URLS") or ""
        check("$(REDIS_PASSWORD)" in urls and "secretKeyRef" in env_from.get("REDIS_PASSWORD", {}), "the Redis URL takes its password from a Secret (REDIS_PASSWORD)")
        redis_ports = {int(m) if m else 6379 for m in re.findall(r"@[^:/,|]+(?::(\d+))?", urls)}

        ing = by.get(("Ingress", "herald"))
        check(ing is not None, "production has the Ingress")
        if ing:
            check("defaultBackend" not in ing["spec"], "Ingress must not have a defaultBackend")
            routes = [(p["path"], p["pathType"], p["backend"]["service"]) for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
            for path, kind, backend in routes:
                check(kind in ("Exact", "Prefix"), f"Ingress path {path}: pathType {kind} has no portable meaning")
                check(backend["name"] == "herald" and backend["port"].get("name", backend["port"].get("number")) in ("http", svc_ports["http"]["port"]), f"Ingress path {path} must go to the Service's public port")
            for path in CLIENT_PATHS:
                check(any(matches(p, k, path) for p, k, _ in routes), f"Ingress does not route client path {path}")
            for path in PRIVATE_PATHS:
                check(not any(matches(p, k, path) for p, k, _ in routes), f"Ingress routes {path}, which must stay private")
            ann = ing["metadata"].get("annotations", {})
            ping = secs(cfg["client"]["ping_interval"])
            for a in ("proxy-read-timeout", "proxy-send-timeout"):
                v = int(ann.get(f"nginx.ingress.kubernetes.io/{a}", 60))
                check(v > ping, f"Ingress {a} {v}s must exceed client.ping_interval {ping}s")
            check(ann.get("nginx.ingress.kubernetes.io/proxy-buffering") == "off", "Ingress must not buffer streams (proxy-buffering: off)")

        np = by.get(("NetworkPolicy", "herald"))
        check(np is not None, "production has the NetworkPolicy")
        if np:
            spec = np["spec"]
            check(selects(spec["podSelector"], pod_labels), "NetworkPolicy must select the pods")
            check(set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}, "NetworkPolicy restricts Ingress and Egress")
            allowed = {}  # container port name -> peers
            for rule in spec.get("ingress", []):
                check(rule.get("ports") and rule.get("from"), "every NetworkPolicy ingress rule names its ports and peers")
                for p in rule.get("ports", []):
                    pname = p["port"] if isinstance(p["port"], str) else next((n for n, v in ports.items() if v == p["port"]), None)
                    check(pname in ports, f"NetworkPolicy port {p['port']} is not a container port")
                    allowed.setdefault(pname, []).extend(rule.get("from", []))
            check(set(allowed) == {"http", "internal"}, f"NetworkPolicy opens exactly the http and internal ports, got {sorted(allowed, key=str)}")
            for peer in allowed.get("http", []):
                check(set(peer) == {"namespaceSelector"} and peer["namespaceSelector"].get("matchLabels"), "only the ingress controller's namespace reaches the client port")
            for peer in allowed.get("internal", []):
                ok = (set(peer) == {"podSelector"} and peer["podSelector"].get("matchLabels") == {"herald.io/api-client": "true"}) or (
                    set(peer) == {"namespaceSelector"} and peer["namespaceSelector"].get("matchLabels")
                )
                check(ok, f"internal port peer {peer} must be the api-client label or a named namespace")
            egress = {(p.get("protocol", "TCP"), p["port"]) for r in spec.get("egress", []) for p in r.get("ports", [])}
            check(("UDP", 53) in egress and ("TCP", 53) in egress, "NetworkPolicy must allow DNS egress")
            for rp in redis_ports:
                check(("TCP", rp) in egress, f"NetworkPolicy must allow egress to Redis port {rp}")

        sm = by.get(("ServiceMonitor", "herald"))
        check(sm is not None, "production has the ServiceMonitor")
        if sm:
            check(selects(sm["spec"]["selector"], svc["metadata"]["labels"]), "ServiceMonitor must select the Service")
            eps = sm["spec"]["endpoints"]
            check(all(e.get("port") == "internal" and e.get("path") == "/metrics" for e in eps) and eps, "ServiceMonitor scrapes /metrics on the internal port")
            check(sm["spec"].get("jobLabel") in svc["metadata"]["labels"] and svc["metadata"]["labels"][sm["spec"]["jobLabel"]] == "herald", "job label resolves to herald (the alerts select job=\"herald\")")
        check(("PrometheusRule", "herald") in by, "production has the PrometheusRule")

        hpa = by[("HorizontalPodAutoscaler", "herald")]
        metrics = hpa["spec"].get("metrics", [])
        check(any(m["type"] == "Resource" and m["resource"]["name"] == "cpu" for m in metrics), "HPA scales on CPU")
        check(any(m["type"] == "Pods" and m["pods"]["metric"]["name"] == "herald_clients" for m in metrics), "HPA scales on herald_clients per pod")
        check(hpa["spec"]["minReplicas"] >= dep["spec"]["replicas"], "HPA floor below the replica count")
    print(f"{name}: grace {grace}s > preStop {sleep}s + shutdown {shutdown}s; ports, probes, spread, secrets"
          + ("; ingress, network policy, monitoring, HPA, redis" if name in PRODUCTION_LIKE else "") + " OK")


for target in sys.argv[2:]:
    check_target(target)
if failures:
    sys.exit("\n".join(failures))
