// sub_token.mjs --url WS --token T --channel C [--get-token] [--count N] [--protobuf]
//               [--timeout S] [--debug]
//
// A subscription that needs a subscription token, for the tests of token expiry. Tokens come
// from stdin, one line each, asked for by a {"event":"get_token","n":k} line: the test signs
// each when asked, so a short-lived token's clock starts when the SDK needs it, however slow
// the machine was to start the program. With --get-token the SDK gets every token (first
// subscribe and each refresh) from a getToken that asks; the subscription must then stay:
// leaving it ({"event":"subscribing"} after being subscribed, or unsubscribed) fails the
// program, which exits 0 after N publications. Without --get-token the subscription is made
// with the first token alone and the program exits 0 at its end, printing
// {"event":"unsubscribed","code":...,"reason":...}.
import { createInterface } from 'node:readline';
import { parseArgs, emit, fail, succeed, deadline, newClient, decodeData } from './common.mjs';

const args = parseArgs({
  url: undefined,
  token: undefined,
  channel: undefined,
  'get-token': false,
  count: 1,
  protobuf: false,
  transport: 'websocket',
  timeout: 30,
  debug: false,
});
let calls = 0;
let received = 0;
deadline(args.timeout, () => `${calls} token calls, ${received} of ${args.count} publications`);

const stdin = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
async function nextToken() {
  calls++;
  emit({ event: 'get_token', n: calls });
  const { value, done } = await stdin.next();
  if (done) fail(`stdin ended before token ${calls}`);
  return value.trim();
}

const { client } = await newClient(args);
const options = args['get-token'] ? { getToken: nextToken } : { token: await nextToken() };
const sub = client.newSubscription(args.channel, options);
let subscribed = false;
sub.on('subscribed', (ctx) => {
  subscribed = true;
  emit({ event: 'subscribed', channel: ctx.channel });
});
sub.on('subscribing', (ctx) => {
  // The client's own disconnect at the end moves the subscription to subscribing too.
  if (!subscribed || received === args.count) return;
  emit({ event: 'subscribing', code: ctx.code, reason: ctx.reason });
  if (args['get-token']) fail(`the subscription was lost: code=${ctx.code} reason=${ctx.reason}`);
});
sub.on('unsubscribed', (ctx) => {
  emit({ event: 'unsubscribed', code: ctx.code, reason: ctx.reason });
  if (args['get-token']) fail(`unsubscribed: code=${ctx.code} reason=${ctx.reason}`);
  else succeed(client);
});
sub.on('error', (ctx) => {
  // Without getToken the SDK reports that it cannot refresh before it unsubscribes.
  emit({ event: 'refresh_error', type: ctx.type, code: ctx.error?.code ?? null });
  if (args['get-token']) fail(`subscription error (${ctx.type}): ${JSON.stringify(ctx.error)}`);
});
sub.on('publication', (ctx) => {
  received++;
  emit({ event: 'publication', data: decodeData(ctx.data, args.protobuf) });
  if (received === args.count) succeed(client);
});
sub.subscribe();
client.connect();
