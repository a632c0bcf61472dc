// A browser's EventSource against Herald's unidirectional SSE, in headless Chromium (Debian's
// /usr/bin/chromium, or $CHROMIUM): the page opens /connection/uni_sse with the connect request in
// `cf_connect`, must get the `connect` push, then the publication this script sends through the
// server API. Used by services/herald/tests/uni.rs.
//
//   node uni_sse.mjs --url http://127.0.0.1:8000 --token JWT --api-key KEY [--channel news]
//
// Exits 0 and prints `uni sse ok` on success; anything else fails with the reason on stderr.
import { chromium } from 'playwright-core';

function parseArgs(argv) {
  const args = { channel: 'news', timeout: 15000 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    args[key] = argv[i + 1];
  }
  for (const required of ['url', 'token', 'apiKey']) {
    if (!args[required]) throw new Error(`--${required} is required`);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const step = (what) => process.stderr.write(`uni_sse: ${what}\n`);
const problems = [];

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // As root (CI, containers) Chromium refuses to start with its sandbox on.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(Number(args.timeout));
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  // A page of the node's own origin: the EventSource needs no CORS.
  await page.goto(`${args.url}/health`);
  await page.evaluate((token) => {
    window.pushes = [];
    window.errors = 0;
    const url = new URL('/connection/uni_sse', location.href);
    url.searchParams.append('cf_connect', JSON.stringify({ token }));
    const source = new EventSource(url);
    source.onmessage = (event) => window.pushes.push(JSON.parse(event.data));
    source.onerror = () => { window.errors += 1; };
    window.source = source;
  }, args.token);
  await page.waitForFunction(() => window.pushes.some((p) => p.connect));
  const connect = await page.evaluate(() => window.pushes.find((p) => p.connect).connect);
  if (!connect.subs || !(args.channel in connect.subs)) {
    throw new Error(`connect push without ${args.channel}: ${JSON.stringify(connect)}`);
  }
  step(`connect push: client ${connect.client}`);

  const data = { text: 'hello, EventSource' };
  const published = await fetch(`${args.url}/api/publish`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-API-Key': args.apiKey },
    body: JSON.stringify({ channel: args.channel, data }),
  });
  if (!published.ok) throw new Error(`publish: ${published.status} ${await published.text()}`);
  await page.waitForFunction(
    (channel) => window.pushes.some((p) => p.channel === channel && p.pub),
    args.channel,
  );
  const pub = await page.evaluate(
    (channel) => window.pushes.find((p) => p.channel === channel && p.pub).pub,
    args.channel,
  );
  if (JSON.stringify(pub.data) !== JSON.stringify(data)) {
    throw new Error(`publication data: ${JSON.stringify(pub)}`);
  }
  step('publication received');
  const errors = await page.evaluate(() => { window.source.close(); return window.errors; });
  if (errors > 0) problems.push(`EventSource reported ${errors} error(s)`);
} finally {
  await browser.close();
}
if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write('uni sse ok\n');
