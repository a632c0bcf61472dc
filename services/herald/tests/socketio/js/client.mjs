// client.mjs --url HTTP [--token T] [--transports polling,websocket] [--upgrade true|false]
//            [--channel C] [--count N] [--reconnect] [--namespace NSP] [--timeout S] [--debug]
//
// A socket.io-client v4 (the real one, from npm) driven by services/herald/tests/socketio.rs.
// Connects to --url (a node or a front door: http://host:port) with auth {token}, and prints one
// JSON line per event on stdout:
//   {"event":"connect","sid","recovered","pid","transport"}  socket connected (again)
//   {"event":"connect_error","message","code","data"}      CONNECT_ERROR or a failed transport
//   {"event":"upgrade","transport"}                          the engine moved to another transport
//   {"event":"disconnect","reason","description"}
//   {"event":"<server event>","args":[...]}                  publication, join, leave, subscribed,
//                                                            unsubscribed, message, disconnected
//   {"event":"ack","n","emit","value"}                       the answer to the nth emit
//   {"event":"transport","transport"}                        answer to {"transport":true}
// With --channel it emits `subscribe` for C at the first connect (its ack is emit number 0);
// with --count it exits 0 after N `publication` events. Without --reconnect a lost connection is
// not retried. Commands come on stdin, one JSON object a line:
//   {"emit":"subscribe","args":["ch"]}          emit with an ack callback (prints the ack)
//   {"emit":"publish","args":["ch",{}],"ack":false}   emit without one
//   {"emit":"x","args":[],"binary":true}         a Buffer appended to args (a BINARY_EVENT)
//   {"disconnect_transport":true}                close the Engine.IO connection (the client
//                                                reconnects with --reconnect, and recovers)
//   {"connect":true}                             socket.connect() (a reconnect by hand, with
//                                                the recovery pid and offset)
//   {"disconnect":true}                          socket.disconnect()
//   {"transport":true}                           print the current transport
//   {"exit":0}                                   exit with that status
// Everything else (debug logs, diagnostics) goes to stderr; any error or the --timeout ends with
// {"event":"error","message"} and a non-zero exit.
import { createInterface } from 'node:readline';
import { format } from 'node:util';

function emitLine(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

let exiting = false;
function exit(code, message) {
  if (exiting) return;
  exiting = true;
  if (message !== undefined) {
    process.stderr.write(`error: ${message}\n`);
    emitLine({ event: 'error', message: String(message) });
  }
  process.stdout.write('', () => process.exit(code));
}

function parseArgs(spec) {
  const argv = process.argv.slice(2);
  const out = { ...spec };
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || !(name in spec)) usage(`unknown argument ${argv[i]}`);
    if (typeof spec[name] === 'boolean') out[name] = true;
    else if (typeof spec[name] === 'number') out[name] = Number(argv[++i]);
    else out[name] = argv[++i];
  }
  if (!out.url) usage('missing --url');
  return out;
}

function usage(message) {
  process.stderr.write(`usage error: ${message}\n`);
  process.exit(2);
}

const args = parseArgs({
  url: undefined,
  token: '',
  transports: 'polling,websocket',
  upgrade: 'true',
  channel: '',
  count: -1,
  reconnect: false,
  namespace: '/',
  timeout: 20,
  debug: false,
});

// socket.io-client logs through the `debug` package (to stderr); keep stdout for JSON lines.
if (args.debug) process.env.DEBUG = 'socket.io-client:*,engine.io-client:*';
for (const level of ['log', 'debug', 'info', 'warn', 'error']) {
  console[level] = (...a) => process.stderr.write(`[${level}] ${format(...a)}\n`);
}
const { io } = await import('socket.io-client');

let received = 0;
const timer = setTimeout(
  () => exit(1, `timeout after ${args.timeout}s (${received} publications)`),
  args.timeout * 1000,
);

const url = new URL(args.namespace, args.url).toString();
const socket = io(url, {
  auth: args.token ? { token: args.token } : {},
  transports: args.transports.split(','),
  upgrade: args.upgrade === 'true',
  reconnection: args.reconnect,
  reconnectionDelay: 200,
  reconnectionDelayMax: 1000,
  timeout: args.timeout * 1000,
});

const transportName = () => socket.io.engine?.transport?.name ?? null;

// A new Engine.IO connection (the first, or one after a reconnect): watch its upgrades.
socket.io.on('open', () => {
  const engine = socket.io.engine;
  engine.on('upgrade', (transport) => emitLine({ event: 'upgrade', transport: transport.name }));
});

let firstConnect = true;
socket.on('connect', () => {
  emitLine({
    event: 'connect',
    sid: socket.id,
    recovered: socket.recovered ?? false,
    // The recovery session id of the server's CONNECT (socket.io-client keeps it in `_pid`).
    pid: socket._pid ?? null,
    transport: transportName(),
  });
  if (firstConnect && args.channel) emitWithAck(0, 'subscribe', [args.channel]);
  firstConnect = false;
});
socket.on('connect_error', (err) =>
  emitLine({
    event: 'connect_error',
    message: err.message,
    code: err.data?.code ?? null,
    data: err.data ?? null,
  }),
);
socket.on('disconnect', (reason, description) =>
  emitLine({
    event: 'disconnect',
    reason,
    description: description?.description?.message ?? description?.message ?? null,
  }),
);
socket.onAny((event, ...rest) => {
  emitLine({ event, args: rest });
  if (event === 'publication' && ++received === args.count) {
    clearTimeout(timer);
    leave(0);
  }
});

// Disconnects and exits once the server has been told: over polling, socket.disconnect() ends
// with the Engine.IO close packet in a POST that must complete first (the transport then emits
// "drain"); a WebSocket's close frame goes out at once.
function leave(code) {
  const transport = socket.io.engine?.transport;
  socket.disconnect();
  if (transport?.name === 'polling' && transport.writable === false) {
    transport.once('drain', () => exit(code));
    setTimeout(() => exit(code), 2000).unref();
  } else {
    exit(code);
  }
}

function emitWithAck(n, name, eventArgs) {
  socket.emit(name, ...eventArgs, (value) => emitLine({ event: 'ack', n, emit: name, value }));
}

let emitted = 0;
createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    return exit(2, `bad command ${line}: ${e}`);
  }
  if (cmd.emit !== undefined) {
    const n = ++emitted;
    const eventArgs = [...(cmd.args ?? [])];
    if (cmd.binary) eventArgs.push(Buffer.from([1, 2, 3]));
    if (cmd.ack === false) socket.emit(cmd.emit, ...eventArgs);
    else emitWithAck(n, cmd.emit, eventArgs);
  } else if (cmd.disconnect_transport) {
    socket.io.engine.close();
  } else if (cmd.connect) {
    socket.connect();
  } else if (cmd.disconnect) {
    socket.disconnect();
  } else if (cmd.transport) {
    emitLine({ event: 'transport', transport: transportName() });
  } else if (cmd.exit !== undefined) {
    leave(cmd.exit);
  } else {
    exit(2, `unknown command ${line}`);
  }
});
