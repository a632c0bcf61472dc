// The Socket.IO v4 baseline for Herald's benchmarks: the same job as a Herald node, done the
// idiomatic Socket.IO way, so both can be measured side by side with the same load generator.
//
//   clients:   connect to /socket.io/ (websocket transport), emit("subscribe", channel)
//              and receive emit("pub", data) for every publication of that channel (a room);
//   backends:  POST /publish {"channel": "...", "data": {...}} with header X-API-Key;
//   scale-out: with REDIS_URL set, rooms are shared between processes by @socket.io/redis-adapter.
//
// Environment: PORT (default 3000), HOST (127.0.0.1), API_KEY (required), REDIS_URL (optional).

import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.env.PORT ?? 3000);
const host = process.env.HOST ?? '127.0.0.1';
const apiKey = process.env.API_KEY;
if (!apiKey) {
  console.error('API_KEY is required');
  process.exit(2);
}

const httpServer = createServer(async (req, res) => {
  if (req.method !== 'POST' || req.url !== '/publish') {
    res.writeHead(404).end();
    return;
  }
  if (req.headers['x-api-key'] !== apiKey) {
    res.writeHead(401).end();
    return;
  }
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  let body;
  try {
    body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    res.writeHead(400).end('bad json\n');
    return;
  }
  if (typeof body.channel !== 'string' || body.data === undefined) {
    res.writeHead(400).end('channel and data required\n');
    return;
  }
  io.to(body.channel).emit('pub', body.data);
  res.writeHead(200, { 'content-type': 'application/json' }).end('{"result":{}}');
});

const io = new Server(httpServer, {
  // Same as Herald's defaults: websocket only, 25 s pings.
  transports: ['websocket'],
  pingInterval: 25_000,
  pingTimeout: 8_000,
  maxHttpBufferSize: 64 * 1024,
});

if (process.env.REDIS_URL) {
  const { createClient } = await import('redis');
  const { createAdapter } = await import('@socket.io/redis-adapter');
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  io.adapter(createAdapter(pub, sub));
}

io.on('connection', (socket) => {
  socket.on('subscribe', (channel, ack) => {
    if (typeof channel !== 'string') return;
    socket.join(channel);
    if (typeof ack === 'function') ack({ ok: true });
  });
});

// Herald listens with server.backlog = 4096; Node's default (511) overflows in a connect storm
// and the overflowed clients wait for SYN retransmissions (1 s, 3 s, …).
httpServer.listen({ port, host, backlog: 4096 }, () => {
  console.log(`socket.io baseline on http://${host}:${port} (redis: ${process.env.REDIS_URL ?? 'none'})`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    io.close();
    process.exit(0);
  });
}
