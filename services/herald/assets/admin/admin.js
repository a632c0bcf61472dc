// The Herald admin page. It talks only to the /admin/... endpoints of the node that served it;
// the server API key never reaches the browser. No framework, no build step.
'use strict';

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 3000;

let client = null;
let subscription = null;
let refreshTimer = null;

/** GET (no body) or POST JSON to one of the page's endpoints; {status, json}. */
async function call(path, body) {
  const init = body === undefined
    ? { method: 'GET' }
    : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
  init.credentials = 'same-origin';
  const response = await fetch(path, init);
  let json = null;
  try { json = await response.json(); } catch { /* 204, or not JSON */ }
  return { status: response.status, json };
}

function showLogin(message) {
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message || '';
  $('password').focus();
}

async function boot() {
  const r = await call('/admin/api/info');
  if (r.status === 401) {
    showLogin();
    return;
  }
  if (r.status !== 200) {
    showLogin(`the node answered ${r.status}`);
    return;
  }
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = !r.json.login;
  render(r.json);
  refreshTimer = setInterval(refresh, REFRESH_MS);
  if (r.json.can_subscribe) {
    connect();
  } else {
    $('subscribe').disabled = true;
    $('sub-state').hidden = true;
    $('sub-unavailable').hidden = false;
    $('sub-unavailable').textContent = 'Subscribing is unavailable: this node verifies tokens with a '
      + 'public key or a JWKS, so it cannot sign tokens for this page (it can with auth.hmac_secret). '
      + 'Publishing works.';
    $('conn-state').textContent = 'no client';
  }
}

async function refresh() {
  const r = await call('/admin/api/info').catch(() => null);
  if (r && r.status === 401) {
    clearInterval(refreshTimer);
    if (client) client.disconnect();
    showLogin('session expired');
  } else if (r && r.status === 200) {
    render(r.json);
  }
}

function uptime(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor(seconds / 3600) % 24;
  const m = Math.floor(seconds / 60) % 60, s = seconds % 60;
  return d ? `${d}d ${h}h` : h ? `${h}h ${m}m` : m ? `${m}m ${s}s` : `${s}s`;
}

function render(data) {
  const nodes = (data.info && data.info.nodes) || [];
  nodes.sort((a, b) => a.name.localeCompare(b.name));
  const sum = (key) => nodes.reduce((total, n) => total + (n[key] || 0), 0);
  $('total-nodes').textContent = nodes.length;
  $('total-clients').textContent = sum('num_clients');
  $('total-users').textContent = sum('num_users');
  $('total-channels').textContent = sum('num_channels');
  $('total-subs').textContent = sum('num_subs');
  const self = nodes.find((n) => n.uid === data.node_uid);
  $('node-name').textContent = self ? `node ${self.name} · ${self.version}` : '';
  const rows = nodes.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.uid = n.uid;
    if (n.uid === data.node_uid) tr.className = 'self';
    for (const v of [n.name, n.version, n.num_clients, n.num_users, n.num_channels, n.num_subs, uptime(n.uptime)]) {
      const td = document.createElement('td');
      td.textContent = String(v);
      tr.appendChild(td);
    }
    return tr;
  });
  $('nodes').replaceChildren(...rows);
  $('updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
}

async function token(path, body) {
  const r = await call(path, body);
  if (r.status === 401 || r.status === 409) {
    // Unauthorized: centrifuge-js stops trying instead of retrying forever.
    throw new Centrifuge.UnauthorizedError((r.json && r.json.error) || `HTTP ${r.status}`);
  }
  if (r.status !== 200) throw new Error(`token: HTTP ${r.status}`);
  return r.json.token;
}

function connect() {
  const base = window.location.origin;
  // The HTTP-streaming fallback on the page's own origin: no allowed_origins entry needed.
  client = new Centrifuge(
    [{ transport: 'http_stream', endpoint: `${base}/admin/connection/http_stream` }],
    {
      emulationEndpoint: `${base}/admin/emulation`,
      getToken: () => token('/admin/api/connection_token', {}),
    },
  );
  client.on('state', (ctx) => {
    $('conn-state').textContent = ctx.newState;
    $('conn-state').classList.toggle('connected', ctx.newState === 'connected');
  });
  client.connect();
  subscribe($('channel').value.trim());
}

function subscribe(channel) {
  if (!client || !channel) return;
  if (subscription) {
    subscription.unsubscribe();
    client.removeSubscription(subscription);
  }
  const sub = client.newSubscription(channel, {
    getToken: (ctx) => token('/admin/api/subscription_token', { channel: ctx.channel }),
  });
  subscription = sub;
  sub.on('state', (ctx) => {
    if (sub === subscription) $('sub-state').textContent = `${ctx.newState}: ${channel}`;
  });
  sub.on('error', (ctx) => {
    if (sub === subscription) $('sub-state').textContent = `error on ${channel}: ${ctx.error.message}`;
  });
  sub.on('publication', (ctx) => log(ctx.channel, ctx.data));
  sub.subscribe();
  $('publish-channel').value = channel;
}

function log(channel, data) {
  const li = document.createElement('li');
  li.dataset.channel = channel;
  const parts = [
    ['time', new Date().toLocaleTimeString()],
    ['channel', channel],
    ['data', JSON.stringify(data)],
  ];
  for (const [cls, text] of parts) {
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = text;
    li.appendChild(span);
  }
  $('log').prepend(li);
  while ($('log').children.length > 200) $('log').lastChild.remove();
}

async function publish() {
  const channel = $('publish-channel').value.trim();
  const text = $('publish-data').value;
  let data;
  try { data = JSON.parse(text); } catch { data = { text }; }
  const result = $('publish-result');
  const r = await call('/admin/api/publish', { channel, data }).catch((e) => ({ status: 0, json: { error: String(e) } }));
  if (r.status === 200 && r.json.result) {
    const offset = r.json.result.offset ? ` at offset ${r.json.result.offset}` : '';
    result.className = 'ok';
    result.textContent = `published to ${channel}${offset}`;
  } else if (r.status === 401) {
    showLogin('session expired');
  } else {
    const e = r.json && r.json.error;
    result.className = 'error';
    result.textContent = `not published: ${e && e.message ? `${e.message} (code ${e.code})` : e || `HTTP ${r.status}`}`;
  }
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const r = await call('/admin/login', { password: $('password').value });
    if (r.status === 204) {
      $('password').value = '';
      boot();
    } else {
      $('login-error').textContent = (r.json && r.json.error) || `HTTP ${r.status}`;
    }
  });
  $('logout').addEventListener('click', async () => {
    await call('/admin/logout', {});
    window.location.reload();
  });
  $('subscribe-form').addEventListener('submit', (event) => {
    event.preventDefault();
    subscribe($('channel').value.trim());
  });
  $('publish-form').addEventListener('submit', (event) => {
    event.preventDefault();
    publish();
  });
  $('clear-log').addEventListener('click', () => $('log').replaceChildren());
  boot();
});
