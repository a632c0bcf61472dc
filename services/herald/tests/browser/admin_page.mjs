// Drives the Herald admin page in headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM):
// two pages (each its own browser context, so each logs in), both subscribe to one channel, page
// A publishes through its publish box, and the message must appear in both logs; the node list
// must show the node. Used by services/herald/tests/admin.rs.
//
//   node admin_page.mjs --url http://127.0.0.1:9000 [--password P] [--node-name NAME]
//        [--channel chat:admin] [--api-key KEY] [--screenshot docs/admin.png]
//
// Exits 0 and prints `admin page ok` on success; anything else fails with the reason on stderr.
import { chromium } from 'playwright-core';

function parseArgs(argv) {
  const args = { channel: 'chat:admin', timeout: 15000 };
  for (let i = 0; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    args[key] = argv[i + 1];
  }
  if (!args.url) throw new Error('--url is required');
  return args;
}

const args = parseArgs(process.argv.slice(2));
const step = (what) => process.stderr.write(`admin_page: ${what}\n`);
// Script errors and console errors (a CSP violation, a failed load) fail the run at the end.
const problems = [];

async function openPage(browser, name) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(Number(args.timeout));
  page.on('pageerror', (e) => problems.push(`${name}: page error: ${e.message}`));
  page.on('console', (m) => {
    // With a login, 401s are expected: the page's first probe and the wrong password.
    if (m.type() === 'error' && !(args.password !== undefined && m.text().includes('401'))) {
      problems.push(`${name}: console error: ${m.text()} (${m.location().url})`);
    }
  });
  await page.goto(args.url);
  if (args.password !== undefined) {
    await page.locator('#login-form').waitFor();
    if (args.wrongPassword) {
      await page.fill('#password', args.wrongPassword);
      await page.click('#login-form button[type=submit]');
      await page.locator('#login-error', { hasText: 'wrong password' }).waitFor();
      step(`${name}: wrong password refused`);
    }
    await page.fill('#password', args.password);
    await page.click('#login-form button[type=submit]');
  }
  await page.locator('#main').waitFor();
  step(`${name}: page shown`);
  return { page, context };
}

async function subscribe(page, name) {
  await page.fill('#channel', args.channel);
  await page.click('#subscribe');
  await page.locator('#sub-state', { hasText: `subscribed: ${args.channel}` }).waitFor();
  step(`${name}: subscribed to ${args.channel}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // As root (CI, containers) Chromium refuses to start with its sandbox on.
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
try {
  const a = await openPage(browser, 'page A');
  const b = await openPage(browser, 'page B');

  if (args.nodeName) {
    for (const [name, p] of [['page A', a.page], ['page B', b.page]]) {
      await p.locator('#nodes tr.self td', { hasText: args.nodeName }).first().waitFor();
      step(`${name}: node list shows ${args.nodeName}`);
    }
  }
  await subscribe(a.page, 'page A');
  await subscribe(b.page, 'page B');
  await a.page.locator('#conn-state', { hasText: 'connected' }).waitFor();

  const text = `hello from page A ${Date.now()}`;
  await a.page.fill('#publish-channel', args.channel);
  await a.page.fill('#publish-data', JSON.stringify({ text }));
  await a.page.click('#publish-button');
  await a.page.locator('#publish-result', { hasText: `published to ${args.channel}` }).waitFor();
  step('page A: published');
  for (const [name, p] of [['page B', b.page], ['page A', a.page]]) {
    await p.locator(`#log li[data-channel="${args.channel}"]`, { hasText: text }).waitFor();
    step(`${name}: message in the log`);
  }
  // Counts come from /admin/api/info every few seconds: wait for the two page clients.
  await a.page.locator('#total-clients', { hasText: /^[2-9]|^\d{2,}/ }).waitFor();

  if (args.apiKey) {
    for (const [name, p] of [['page A', a.page], ['page B', b.page]]) {
      const seen = await p.evaluate(() => document.documentElement.outerHTML
        + JSON.stringify(Object.entries(localStorage)) + document.cookie);
      if (seen.includes(args.apiKey)) throw new Error(`${name}: the API key is in the page`);
    }
    step('the API key is nowhere in the pages');
  }
  if (args.screenshot) {
    await a.page.fill('#publish-data', '{"text": "hello"}');
    await a.page.evaluate(() => document.activeElement && document.activeElement.blur());
    await a.page.screenshot({ path: args.screenshot, fullPage: true });
    step(`screenshot: ${args.screenshot}`);
  }
  await a.context.close();
  await b.context.close();
  if (problems.length) throw new Error(`errors in the pages:\n${problems.join('\n')}`);
  process.stdout.write('admin page ok\n');
} finally {
  await browser.close();
}
