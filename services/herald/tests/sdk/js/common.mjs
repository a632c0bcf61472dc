// Shared helpers of the centrifuge-js test programs (driven by services/herald/tests/sdk.rs).
//
// Contract: stdout carries only JSON lines, one per event ({"event": ...}); everything else
// (SDK debug logs, diagnostics) goes to stderr. Exit 0 on success, non-zero with a message on
// stderr (and a final {"event":"error"} line) on any error or timeout.
import { format } from 'node:util';
import WebSocket from 'ws';
import { EventSource } from 'eventsource';

// The SDK logs through console.debug/console.log, which print to stdout in Node: keep stdout
// for the JSON lines.
for (const level of ['log', 'debug', 'info', 'warn', 'error']) {
  console[level] = (...args) => process.stderr.write(`[${level}] ${format(...args)}\n`);
}

const NUMERIC = new Set(['count', 'timeout']);

/** Parses `--name value` and boolean `--flag` arguments (`undefined` default = required). */
export function parseArgs(spec) {
  const argv = process.argv.slice(2);
  const out = {};
  for (const [name, def] of Object.entries(spec)) out[name] = def;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) fail(`unexpected argument ${a}`);
    const name = a.slice(2);
    if (!(name in spec)) fail(`unknown option ${a}`);
    if (typeof spec[name] === 'boolean') {
      out[name] = true;
    } else {
      if (i + 1 >= argv.length) fail(`option ${a} needs a value`);
      const v = argv[++i];
      out[name] = NUMERIC.has(name) ? Number(v) : v;
    }
  }
  for (const [name, v] of Object.entries(out)) {
    if (v === undefined || v === '' || Number.isNaN(v)) fail(`missing or invalid --${name}`);
  }
  return out;
}

/** Writes one JSON line to stdout (unbuffered on pipes in Node: write is synchronous for pipes
 * on POSIX). */
export function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let exiting = false;

/** Reports an error and exits non-zero (after stdout is drained). */
export function fail(message) {
  if (exiting) return;
  exiting = true;
  process.stderr.write(`error: ${message}\n`);
  process.stdout.write(JSON.stringify({ event: 'error', message: String(message) }) + '\n', () =>
    process.exit(1),
  );
}

/** Exits 0 once stdout is drained. */
export function succeed(client) {
  if (exiting) return;
  exiting = true;
  try {
    client?.disconnect();
  } catch (e) {
    process.stderr.write(`disconnect: ${e}\n`);
  }
  process.stdout.write('', () => process.exit(0));
}

/** Fails after `seconds` unless the program finished. */
export function deadline(seconds, what) {
  const t = setTimeout(() => fail(`timeout after ${seconds}s: ${what()}`), seconds * 1000);
  t.unref?.();
  // Keep the process alive until the deadline even if the SDK has nothing pending.
  setTimeout(() => {}, seconds * 1000 + 1000);
}

/** Creates a client of the JSON or the Protobuf build of centrifuge-js. With `--transport
 * http_stream|sse`, `--url` is that fallback's endpoint and commands go to /emulation on the
 * same server; the SDK uses Node's own fetch and ReadableStream, and the `eventsource`
 * package for SSE. */
export async function newClient(args) {
  const mod = args.protobuf
    ? await import('centrifuge/build/protobuf')
    : await import('centrifuge');
  const transport = args.transport ?? 'websocket';
  const endpoint =
    transport === 'websocket' ? args.url : [{ transport, endpoint: args.url }];
  const client = new mod.Centrifuge(endpoint, {
    token: args.token,
    websocket: WebSocket,
    fetch: globalThis.fetch,
    readableStream: globalThis.ReadableStream,
    eventsource: EventSource,
    emulationEndpoint: new URL('/emulation', args.url.replace(/^ws/, 'http')).toString(),
    debug: Boolean(args.debug),
    // A test must see a broken connection, not ride over it with a reconnect, unless it is
    // about reconnecting (`--reconnect`): then the SDK's own backoff, from 0.5 s.
    minReconnectDelay: args.reconnect ? 500 : 60000,
    maxReconnectDelay: args.reconnect ? 2000 : 60000,
  });
  let wasConnected = false;
  client.on('connected', (ctx) => {
    wasConnected = true;
    process.stderr.write(`connected: client=${ctx.client} transport=${ctx.transport}\n`);
  });
  client.on('connecting', (ctx) => {
    if (!wasConnected) return;
    if (!args.reconnect) fail(`connection lost: code=${ctx.code} reason=${ctx.reason}`);
    process.stderr.write(`reconnecting: code=${ctx.code} reason=${ctx.reason}\n`);
  });
  client.on('disconnected', (ctx) => {
    if (!exiting) fail(`disconnected: code=${ctx.code} reason=${ctx.reason}`);
  });
  client.on('error', (ctx) => fail(`client error (${ctx.type}): ${JSON.stringify(ctx.error)}`));
  return { client, mod };
}

/** Publication data as JSON: the Protobuf build hands over bytes (the JSON text the server API
 * published). */
export function decodeData(data, protobuf) {
  if (!protobuf) return data;
  const text = new TextDecoder().decode(data);
  try {
    return JSON.parse(text);
  } catch {
    return { undecodable: text };
  }
}

/** Publication data for the client-side publish of the JSON or the Protobuf build. */
export function encodeData(value, protobuf) {
  return protobuf ? new TextEncoder().encode(JSON.stringify(value)) : value;
}
