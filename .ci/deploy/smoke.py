"""Runs a node as a production-like overlay's pod would run (its rendered herald.toml and
environment, Secrets as placeholders, $(VAR) expanded) against a real redis-server that requires
the password the Secret would hold, and checks what the Ingress, the NetworkPolicy, the probes
and the ServiceMonitor take for granted:

- the internal port serves /ready (200), /metrics (with herald_clients) and the server API;
- the public port serves /health and /ready, and not /api or /metrics;
- every path the Ingress routes is served on the public port, and a client that connects on the
  Ingress's WebSocket path receives a publication made through the internal port's API, carried
  through Redis.

    python smoke.py HERALD_BIN REDIS_SERVER RENDERED.yaml...

Only what a pod's network changes is changed: both listeners move to free 127.0.0.1 ports, and
the Redis URL's host:port to the local redis-server. Every wait is bounded (DEADLINE); none is
timing that a check depends on.
"""
import base64
import json
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request

from pod import PLACEHOLDER, Pod

DEADLINE = 30.0
CHANNEL = "validate-deploy-smoke"
http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy from the env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, path, method="GET", body=None, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method=method, headers=headers or {})
    try:
        with http.open(req, timeout=DEADLINE) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def start_redis(binary, port):
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--requirepass", PLACEHOLDER,
         "--save", "", "--appendonly", "no"],
        stdout=subprocess.PIPE, text=True)
    for line in redis.stdout:  # ends (EOF) if redis-server exits
        if "Ready to accept connections" in line:
            return redis
    sys.exit(f"redis-server exited with {redis.wait()} before accepting connections")


def wait_until_listening(node, port):
    end = time.monotonic() + DEADLINE
    while True:
        if node.poll() is not None:
            sys.exit(f"herald exited with {node.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                sys.exit(f"herald did not listen on {port} within {DEADLINE}s")
            time.sleep(0.05)


class WebSocket:
    """Just enough of RFC 6455 for text frames: masked out, unmasked in."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: herald\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                sys.exit(f"{path}: connection closed during the handshake")
            head += chunk
        self.status = head.split(b"\r\n", 1)[0].decode()

    def send(self, text):
        data, mask = text.encode(), os.urandom(4)
        n = len(data)
        header = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n))
        self.sock.sendall(header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                sys.exit("WebSocket closed by the node")
            buf += chunk
        return buf

    def messages(self):
        """Yields every JSON message of every text frame (a frame may hold several, one a line)."""
        while True:
            b0, b1 = self._exact(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._exact(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._exact(8))[0]
            payload = self._exact(n)
            if b0 & 0x0F == 0x8:
                sys.exit(f"WebSocket closed by the node: {payload[:2].hex()} {payload[2:]!r}")
            if b0 & 0x0F == 0x1:
                for line in payload.decode().splitlines():
                    if line.strip():
                        yield json.loads(line)


def smoke(binary, redis_port, rendered):
    pod = Pod(rendered)
    public, internal = free_port(), free_port()
    urls = pod.env["HERALD_BROKER__REDIS_URLS"]
    # Every shard of the URL list becomes the local server; the user:password part stays.
    local_urls = re.sub(r"@[^/,|]+", f"@127.0.0.1:{redis_port}", urls)
    assert PLACEHOLDER in local_urls, f"the Redis URL does not carry the Secret's password: {urls}"
    overrides = {"HERALD_SERVER__LISTEN": f"127.0.0.1:{public}", "HERALD_BROKER__REDIS_URLS": local_urls}
    # Moved only if the deployed config has it: without it the public port must be seen to
    # serve the API (and fail below).
    has_internal = "internal_listen" in tomllib.loads(pod.config)["server"]
    if has_internal:
        overrides["HERALD_SERVER__INTERNAL_LISTEN"] = f"127.0.0.1:{internal}"
    env = pod.process_env(**overrides)
    api_key = pod.env["HERALD_API__KEY"]
    routes = [p["path"] for r in pod.of_kind("Ingress")["spec"]["rules"] for p in r["http"]["paths"]]
    with tempfile.TemporaryDirectory() as d:
        config = pod.write_config(d)
        node = subprocess.Popen([binary, "--config", config, "run"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_listening(node, public)
            failures = []

            def expect(ok, msg):
                if not ok:
                    failures.append(msg)

            expect(has_internal, "herald.toml sets no server.internal_listen")
            if not has_internal:
                internal = public  # what the operator's side would reach instead
            wait_until_listening(node, internal)
            status, body = request(internal, "/ready")
            expect(status == 200, f"internal /ready: {status} {body!r} (Redis with the Secret's password?)")
            status, body = request(internal, "/metrics")
            expect(status == 200 and b"herald_clients" in body, f"internal /metrics: {status}")
            status, body = request(internal, "/api/info", "POST", b"{}", {"X-API-Key": api_key})
            expect(status == 200 and b"result" in body, f"internal /api/info: {status} {body[:200]!r}")
            for path, code in (("/health", 200), ("/ready", 200)):
                status, _ = request(public, path)
                expect(status == code, f"public {path}: {status}, the probes expect {code}")
            for path in ("/api/info", "/metrics"):
                status, _ = request(public, path, "POST" if path.startswith("/api") else "GET", b"{}" if path.startswith("/api") else None)
                expect(status == 404, f"public {path}: {status}, must not be served there")
            for path in routes:
                status, _ = request(public, path)
                expect(status != 404, f"Ingress path {path}: 404 on the public port")

            ws_path = next(p for p in routes if p.endswith("/websocket"))
            token = subprocess.run([binary, "--config", config, "gentoken", "--user", "smoke",
                                    "--channels", CHANNEL, "--ttl", "5m"],
                                   env=env, capture_output=True, text=True, check=True).stdout.strip()
            ws = WebSocket(public, ws_path)
            expect(ws.status.split()[1] == "101", f"{ws_path}: {ws.status}")
            if not failures:
                ws.send(json.dumps({"id": 1, "connect": {"token": token}}))
                messages = ws.messages()
                reply = next(m for m in messages if m.get("id") == 1)
                assert "connect" in reply and CHANNEL in reply["connect"].get("subs", {}), f"connect: {reply}"
                nonce = os.urandom(8).hex()
                body = json.dumps({"channel": CHANNEL, "data": {"nonce": nonce}}).encode()
                status, answer = request(internal, "/api/publish", "POST", body,
                                         {"X-API-Key": api_key, "Content-Type": "application/json"})
                assert status == 200 and b"error" not in answer, f"/api/publish: {status} {answer!r}"
                push = next(m for m in messages if m.get("push", {}).get("channel") == CHANNEL)
                expect(push["push"]["pub"]["data"] == {"nonce": nonce}, f"publication: {push}")
            if failures:
                sys.exit("\n".join(f"{rendered}: {f}" for f in failures))
            print(f"{rendered}: internal port (ready, metrics, API), public port (probes, {len(routes)} "
                  "Ingress paths, no API/metrics), WebSocket publication through Redis OK")
        finally:
            node.terminate()
            node.wait()


binary, redis_binary, *rendered = sys.argv[1:]
redis_port = free_port()
redis = start_redis(redis_binary, redis_port)
try:
    for path in rendered:
        smoke(binary, redis_port, path)
finally:
    redis.terminate()
    redis.wait()
