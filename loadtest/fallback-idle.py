#!/usr/bin/env python3
# Idle memory of the fallback transports: opens N HTTP-streaming or SSE connections to a running
# node (each authenticated with TOKEN, not subscribed) and reports the node's RSS per connection.
# herald-loadtest speaks WebSocket only; this is the small stand-in until it learns the fallbacks.
#
#   python3 loadtest/fallback-idle.py N http_stream|sse PORT NODE_PID TOKEN
#
# Connections come from 127.0.0.2-9 so that N may exceed one source address's port range.
import asyncio, json, sys, time
N = int(sys.argv[1]); transport = sys.argv[2]; port = int(sys.argv[3]); pid = int(sys.argv[4]); token = sys.argv[5]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1])
conns = []
async def one(i):
    src = f"127.0.0.{2 + i % 8}"
    r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
    cmd = json.dumps({"id": 1, "connect": {"token": token}})
    if transport == "http_stream":
        req = f"POST /connection/http_stream HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(cmd)}\r\n\r\n{cmd}"
    else:
        from urllib.parse import quote
        req = f"GET /connection/sse?cf_connect={quote(cmd)} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"
    w.write(req.encode()); await w.drain()
    buf = b""
    while b'"connect"' not in buf:
        d = await r.read(4096)
        if not d: raise Exception("closed")
        buf += d
    conns.append((r, w))
async def main():
    before = rss()
    sem = asyncio.Semaphore(200)
    async def guarded(i):
        async with sem: await one(i)
    t = time.time()
    await asyncio.gather(*(guarded(i) for i in range(N)))
    el = time.time() - t
    await asyncio.sleep(3)
    after = rss()
    print(f"{transport}: {N} connected in {el:.2f}s; RSS {before} -> {after} KiB; {(after-before)/N:.2f} KiB/conn")
asyncio.run(main())
