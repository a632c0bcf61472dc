// subscriber.mjs --url WS --token T --channel C --count N [--protobuf] [--recoverable]
//                [--reconnect] [--join-leave] [--transport T] [--timeout S] [--debug]
//
// Connects with centrifuge-js, subscribes to C and prints {"event":"subscribed"} each time it
// is subscribed (again after a reconnect, with the SDK's recovery flags), then
// {"event":"publication","data":...} per publication; exits 0 after N publications, non-zero
// on any error or after the timeout. --recoverable asks for a recoverable subscription;
// --reconnect lets the SDK reconnect after a lost connection instead of failing.
// --join-leave asks for the channel's join and leave messages and prints
// {"event":"join"|"leave","user":...,"client":...} for each.
// --transport http_stream|sse connects through that fallback (--url is its endpoint).
import { parseArgs, emit, fail, succeed, deadline, newClient, decodeData } from './common.mjs';

const args = parseArgs({
  url: undefined,
  token: undefined,
  channel: undefined,
  count: undefined,
  protobuf: false,
  recoverable: false,
  reconnect: false,
  'join-leave': false,
  transport: 'websocket',
  timeout: 20,
  debug: false,
});
if (!Number.isInteger(args.count) || args.count < 0) fail(`invalid --count ${args.count}`);

let received = 0;
deadline(args.timeout, () => `received ${received} of ${args.count} publications`);

const { client } = await newClient(args);
const sub = client.newSubscription(args.channel, {
  recoverable: args.recoverable,
  joinLeave: args['join-leave'],
});
for (const event of ['join', 'leave']) {
  sub.on(event, (ctx) => emit({ event, user: ctx.info.user, client: ctx.info.client }));
}
sub.on('subscribed', (ctx) => {
  emit({
    event: 'subscribed',
    channel: ctx.channel,
    recoverable: ctx.recoverable ?? false,
    wasRecovering: ctx.wasRecovering ?? false,
    recovered: ctx.recovered ?? false,
  });
  if (args.count === 0) succeed(client);
});
sub.on('unsubscribed', (ctx) => fail(`unsubscribed: code=${ctx.code} reason=${ctx.reason}`));
sub.on('error', (ctx) => fail(`subscription error (${ctx.type}): ${JSON.stringify(ctx.error)}`));
sub.on('publication', (ctx) => {
  received++;
  emit({ event: 'publication', data: decodeData(ctx.data, args.protobuf), offset: ctx.offset ?? null });
  if (received === args.count) succeed(client);
});
sub.subscribe();
client.connect();
