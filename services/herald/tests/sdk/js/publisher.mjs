// publisher.mjs --url WS --token T --channel C --count N [--protobuf] [--timeout S] [--debug]
//
// Connects with centrifuge-js, subscribes to C (the namespace lets subscribers publish), prints
// {"event":"subscribed"}, then publishes N messages {"n": i, "from": "js"} (i = 1..N) one after
// the other through the client protocol (`publish` command), printing
// {"event":"published","n":i} per acknowledged publish. Exits 0 when all N were acknowledged.
// Its own publications come back over the subscription; they are printed too
// ({"event":"publication"}) and the program also waits for all N of them.
import {
  parseArgs,
  emit,
  fail,
  succeed,
  deadline,
  newClient,
  decodeData,
  encodeData,
} from './common.mjs';

const args = parseArgs({
  url: undefined,
  token: undefined,
  channel: undefined,
  count: undefined,
  protobuf: false,
  timeout: 20,
  debug: false,
});

let published = 0;
let echoed = 0;
deadline(args.timeout, () => `published ${published}, echoed ${echoed} of ${args.count}`);

const { client } = await newClient(args);
const sub = client.newSubscription(args.channel);
const done = () => {
  if (published === args.count && echoed === args.count) succeed(client);
};
sub.on('unsubscribed', (ctx) => fail(`unsubscribed: code=${ctx.code} reason=${ctx.reason}`));
sub.on('error', (ctx) => fail(`subscription error (${ctx.type}): ${JSON.stringify(ctx.error)}`));
sub.on('publication', (ctx) => {
  echoed++;
  emit({ event: 'publication', data: decodeData(ctx.data, args.protobuf) });
  done();
});
sub.on('subscribed', async (ctx) => {
  emit({ event: 'subscribed', channel: ctx.channel });
  try {
    for (let n = 1; n <= args.count; n++) {
      const result = await sub.publish(encodeData({ n, from: 'js' }, args.protobuf));
      published++;
      emit({ event: 'published', n, result: result ?? null });
    }
  } catch (e) {
    fail(`publish failed: ${JSON.stringify(e)}`);
    return;
  }
  done();
});
sub.subscribe();
client.connect();
