/*
 * ChatBattle dashboard: plain JavaScript, no build step, no dependencies.
 *
 * Two views, chosen by the address's fragment:
 *   - the battle (no fragment: every channel watched; "#a,b,c": those):
 *     channels ranked by messages per minute, live from one stream,
 *     GET /api/battle/events (Server-Sent Events: the whole ranking,
 *     docs/api.md); a click on a channel opens its own view;
 *   - one channel ("#xqc"): GET /api/channels/:id/windows (history for the
 *     chart, once) and the live stream GET /api/channels/:id/events (one
 *     ChannelStats document per change).
 * EventSource reconnects by itself, and we reopen a stream when the
 * browser gives up.  GET /api/health and /api/channels are polled (the
 * dependency pills and the chips).  Start and stop are POST and DELETE
 * /api/channels/:id, with the API token when the server asks.  Everything
 * user-visible is set with textContent (never innerHTML).
 */
'use strict';

const $ = (id) => document.getElementById(id);
const API = 'api/';
const HEALTH_MS = 5000;
const CHANNELS_MS = 3000;
const CHART_MINUTES = 60;

const NAME_RE = /^[a-z0-9_]{1,25}$/;

const state = {
  view: 'battle',     // 'battle' or 'channel'
  compare: null,      // battle of these channels (array), or null: all
  battle: null,       // the last battle document
  bes: null,          // EventSource of the battle
  besTimer: null,
  fresh: new Set(),   // channels started from this page (highlighted)
  channel: null,      // selected channel login
  windows: [],        // ChannelStats, newest first
  viewers: null,      // GET /api/channels/:id/viewers, then its events
  es: null,           // EventSource
  esTimer: null,
  lastEventAt: 0,     // Date.now() of the last stats event
  channels: new Map(),// name -> /api/channels entry
  monitoring: false,  // the server reads chat (start/stop work)
  dismissed: new Set(),
};

/* ---- messages ---- */

function showError(key, text, level) {
  if (state.dismissed.has(key)) return;
  let el = document.querySelector(`.error[data-key="${key}"]`);
  if (!el) {
    el = document.createElement('div');
    el.className = 'error' + (level === 'warn' ? ' warn' : '');
    el.dataset.key = key;
    const msg = document.createElement('span');
    msg.className = 'msg';
    const x = document.createElement('button');
    x.className = 'dismiss';
    x.type = 'button';
    x.setAttribute('aria-label', 'Dismiss');
    x.textContent = '×';
    x.addEventListener('click', () => { state.dismissed.add(key); el.remove(); });
    el.append(msg, x);
    $('errors').append(el);
  }
  el.querySelector('.msg').textContent = text;
}

function clearError(key) {
  state.dismissed.delete(key);
  const el = document.querySelector(`.error[data-key="${key}"]`);
  if (el) el.remove();
}

/* ---- API ---- */

function authHeaders() {
  const t = sessionStorage.getItem('cb_token');
  return t ? { Authorization: 'Bearer ' + t } : {};
}

async function api(path, opts) {
  let res;
  try {
    res = await fetch(API + path, Object.assign({ cache: 'no-store' }, opts || {}));
  } catch (e) {
    showError('api', `The API is not responding (${location.host}): retrying every few seconds.`);
    throw e;
  }
  clearError('api');
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  return { status: res.status, body };
}

/* ---- formatting ---- */

const fmtInt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');
const pad = (n) => String(n).padStart(2, '0');
function hhmm(ms) {
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function ago(ms) {
  if (!ms) return '–';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

/* ---- health ---- */

async function pollHealth() {
  try {
    const { status, body } = await api('health');
    if (!body || !body.services) return;
    const deps = body.dependencies || {};
    for (const pill of document.querySelectorAll('#health .pill')) {
      const name = pill.dataset.dep;
      const text = body.services[name] || 'unknown';
      const st = text === 'not_in_roles' ? 'not_in_roles' : (deps[name] ? deps[name].state : 'unknown');
      pill.dataset.state = st;
      pill.title = `${name}: ${text.replace(/_/g, ' ')}`;
    }
    if (status === 503) {
      const bad = Object.keys(body.services)
        .filter((k) => deps[k] && !deps[k].healthy)
        .map((k) => `${k} ${body.services[k]}`);
      showError('health', `A dependency is down: ${bad.join(', ') || 'unhealthy'}. Figures may be stale.`, 'warn');
    } else {
      clearError('health');
    }
  } catch (e) {
    // Shown by api(); the dependencies' states are unknown meanwhile.
    for (const pill of document.querySelectorAll('#health .pill')) pill.dataset.state = 'unknown';
  }
}

/* ---- channels ---- */

async function pollChannels() {
  try {
    const { status, body } = await api('channels');
    if (status !== 200 || !body) return;
    state.monitoring = !!body.monitoring_available;
    state.channels = new Map(body.channels.map((c) => [c.channel_id, c]));
    renderChips();
    renderStatus();
  } catch (e) { /* shown by api() */ }
}

function chipState(c) {
  if (c.monitored) return c.state || 'unknown';
  if (state.monitoring) return 'disabled'; // this server reads chat, not this channel
  return c.has_stats ? 'live' : 'unknown';
}

function renderChips() {
  const ul = $('channel-list');
  const names = [...state.channels.keys()];
  if (state.channel && !state.channels.has(state.channel)) names.push(state.channel);
  names.sort();
  ul.replaceChildren(...names.map((name) => {
    const c = state.channels.get(name) || { channel_id: name };
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'chip' + (name === state.channel ? ' selected' : '');
    b.dataset.state = chipState(c);
    b.dataset.channel = name;
    b.title = c.monitored ? `${name}: ${c.state}${c.reason ? ' (' + c.reason + ')' : ''}` : `${name}: not monitored here`;
    const n = document.createElement('span');
    n.className = 'n';
    n.textContent = typeof c.message_count === 'number' ? fmtInt(c.message_count) : '';
    b.append(document.createTextNode(name), n);
    b.addEventListener('click', () => select(name));
    li.append(b);
    return li;
  }));
}

/* The colour-coded state of the selected channel: the IRC reader's state
 * when this server reads chat, else how fresh the live figures are. */
function renderStatus() {
  const el = $('conn-status');
  let st = 'idle';
  let text = 'no channel';
  if (state.channel) {
    const c = state.channels.get(state.channel);
    const fresh = Date.now() - state.lastEventAt < 20000;
    if (c && c.monitored) {
      st = c.state;
      text = c.state === 'failed' && c.reason ? `failed: ${c.reason}` : c.state;
    } else if (state.monitoring) {
      st = 'idle';
      text = 'not monitored';
    } else if (!state.es || state.es.readyState !== EventSource.OPEN) {
      st = 'error';
      text = 'offline';
    } else {
      st = fresh ? 'live' : 'waiting';
      text = fresh ? 'live' : 'waiting for data';
    }
  }
  el.dataset.state = st;
  el.textContent = text;
  $('stop-btn').disabled = !state.channel;
}

/* ---- start / stop ---- */

async function command(method, name) {
  let r;
  try {
    r = await api('channels/' + encodeURIComponent(name), { method, headers: authHeaders() });
  } catch (e) { return false; }
  if (r.status === 401 || r.status === 403) {
    $('token-row').hidden = false;
    showError('auth', (r.body && r.body.error) || 'This server needs an API token to start and stop channels.');
    return false;
  }
  clearError('auth');
  if (r.status !== 202) {
    showError('cmd', (r.body && r.body.error) || `${method} failed with status ${r.status}`);
    return false;
  }
  clearError('cmd');
  return true;
}

/* In the battle the started channel joins it (and is highlighted); in a
 * channel's view, it opens that channel. */
async function onStart(ev) {
  ev.preventDefault();
  const raw = $('channel-input').value.trim().replace(/^#/, '').toLowerCase();
  if (!NAME_RE.test(raw)) {
    showError('cmd', 'A channel name is 1 to 25 letters, digits or _.');
    return;
  }
  if (await command('POST', raw)) {
    if (state.view === 'battle') {
      state.fresh.add(raw);
      $('channel-input').value = '';
      if (state.compare && !state.compare.includes(raw)) location.hash = state.compare.concat(raw).join(',');
      else renderBattle();
    } else {
      select(raw);
    }
    pollChannels();
  }
}

async function onStop() {
  if (!state.channel) return;
  if (await command('DELETE', state.channel)) pollChannels();
}

/* ---- the selected channel ---- */

/* Opens a channel's own view (through the address, so Back returns). */
function select(name) {
  if (location.hash !== '#' + name) location.hash = name;
  else route();
}

function showChannel(name) {
  closeBattle();
  document.body.dataset.view = 'channel';
  state.view = 'channel';
  if (state.channel === name && state.es) return;
  state.channel = name;
  state.windows = [];
  state.lastEventAt = 0;
  $('channel-input').value = name;
  $('back-link').href = state.compare ? '#' + state.compare.join(',') : '#';
  render();
  renderChips();
  state.viewers = null;
  loadWindows(name);
  loadViewers(name);
  openStream(name);
  pollChannels(); // its IRC state now, not at the next poll
}

/* The fragment decides: "" the battle of all, "a,b" a battle of those,
 * "a" one channel.  Names are normalized like the API does. */
function route() {
  const raw = decodeURIComponent(location.hash.slice(1));
  const names = [...new Set(raw.split(',').map((n) => n.trim().replace(/^#/, '').toLowerCase()).filter((n) => n))];
  const bad = names.filter((n) => !NAME_RE.test(n));
  if (bad.length) showError('hash', `Not a channel name in the address: ${bad.join(', ')}. Showing every channel.`, 'warn');
  else clearError('hash');
  const good = names.filter((n) => NAME_RE.test(n));
  if (good.length === 1 && !raw.includes(',')) showChannel(good[0]);
  else showBattle(good.length ? good : null);
}

function closeChannel() {
  clearTimeout(state.esTimer);
  if (state.es) state.es.close();
  state.es = null;
  state.channel = null;
  state.windows = [];
}

async function loadWindows(name) {
  try {
    const { status, body } = await api(`channels/${encodeURIComponent(name)}/windows?limit=6`);
    if (name !== state.channel) return;
    if (status === 200 && body && Array.isArray(body.windows)) {
      // Keep whatever the stream already delivered for the newest window.
      const cur = state.windows[0];
      state.windows = body.windows;
      if (cur) merge(cur);
      render();
    }
  } catch (e) { /* shown by api() */ }
}

/* Viewer counts (Helix): the series once, then the stream's events. */
async function loadViewers(name) {
  try {
    const { status, body } = await api(`channels/${encodeURIComponent(name)}/viewers?limit=120`);
    if (name !== state.channel || status !== 200 || !body) return;
    state.viewers = body;
    render();
  } catch (e) { /* shown by api() */ }
}

function mergeViewers(doc) {
  const series = state.viewers && Array.isArray(state.viewers.series) ? state.viewers.series : [];
  if (doc.updated && !series.some((p) => p.t === doc.updated)) {
    series.push({ t: doc.updated, viewers: doc.live ? doc.viewers : null });
    if (series.length > 240) series.shift();
  }
  state.viewers = Object.assign({}, doc, { series });
}

const fmtPer1k = (v) => (typeof v === 'number' ? v.toFixed(v >= 100 ? 0 : 1) : '–');

function renderViewers() {
  const v = state.viewers;
  $('viewers').textContent = !v ? '–' : !v.enabled ? 'off' : typeof v.viewers !== 'number' ? '–' : v.live ? fmtInt(v.viewers) : 'offline';
  $('viewers').title = v && !v.enabled ? `viewer counts are off: ${v.reason}` : '';
  $('per1k').textContent = v ? fmtPer1k(v.msgs_per_1k_viewers) : '–';
  const box = $('viewers-chart');
  const W = Math.max(280, box.clientWidth || 600), H = Math.max(100, box.clientHeight || 140);
  const L = 48, R = 8, T = 10, B = 20;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  const pts = (v && v.series ? v.series : []).filter((p) => typeof p.viewers === 'number');
  svg.append(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  if (pts.length < 1) {
    svg.append(el('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' },
      v && !v.enabled ? 'viewer counts are off (no Twitch client id/secret)' : 'waiting for viewer counts…'));
    box.replaceChildren(svg);
    return;
  }
  const max = Math.max(1, ...pts.map((p) => p.viewers));
  const t0 = pts[0].t, t1 = Math.max(t0 + 1, pts[pts.length - 1].t);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (n) => H - B - (n / max) * (H - B - T);
  const short = max >= 1e6 ? (max / 1e6).toFixed(1) + 'M' : max >= 1e4 ? Math.round(max / 1e3) + 'k' : fmtInt(max);
  svg.append(el('text', { class: 'tick', x: L - 6, y: y(max) + 4, 'text-anchor': 'end' }, short));
  svg.append(el('text', { class: 'tick', x: L, y: H - 4 }, hhmm(t0)));
  svg.append(el('text', { class: 'tick', x: W - R, y: H - 4, 'text-anchor': 'end' }, hhmm(t1)));
  const line = el('polyline', { class: 'vline', points: pts.map((p) => `${x(p.t).toFixed(1)},${y(p.viewers).toFixed(1)}`).join(' ') });
  line.append(el('title', {}, `${fmtInt(pts[pts.length - 1].viewers)} viewers at ${hhmm(pts[pts.length - 1].t)}`));
  svg.append(line);
  box.replaceChildren(svg);
}

function merge(doc) {
  const i = state.windows.findIndex((w) => w.window_start === doc.window_start);
  if (i >= 0) state.windows[i] = doc;
  else {
    state.windows.push(doc);
    state.windows.sort((a, b) => b.window_start - a.window_start);
    state.windows.length = Math.min(state.windows.length, 12);
  }
}

function openStream(name) {
  clearTimeout(state.esTimer);
  if (state.es) state.es.close();
  const es = new EventSource(`${API}channels/${encodeURIComponent(name)}/events`);
  state.es = es;
  es.addEventListener('open', () => {
    $('live').dataset.state = 'on';
    $('live').textContent = 'live updates on';
    clearError('stream');
    renderStatus();
  });
  es.addEventListener('stats', (e) => {
    let doc;
    try { doc = JSON.parse(e.data); } catch (err) { return; }
    if (name !== state.channel || doc.channel_id !== name) return;
    state.lastEventAt = Date.now();
    merge(doc);
    render();
  });
  es.addEventListener('viewers', (e) => {
    let doc;
    try { doc = JSON.parse(e.data); } catch (err) { return; }
    if (name !== state.channel || doc.channel_id !== name) return;
    mergeViewers(doc);
    render();
  });
  es.addEventListener('error', () => {
    $('live').dataset.state = 'off';
    $('live').textContent = 'live updates off';
    renderStatus();
    showError('stream', 'Live updates are interrupted: reconnecting…', 'warn');
    if (es.readyState === EventSource.CLOSED && state.es === es) {
      // The browser gave up (e.g. a 503): try again ourselves.
      state.esTimer = setTimeout(() => { if (state.channel === name) openStream(name); }, 3000);
    }
  });
}

/* ---- the battle ---- */

function showBattle(list) {
  closeChannel();
  document.body.dataset.view = 'battle';
  state.view = 'battle';
  const key = list ? list.join(',') : '';
  const same = state.bes && (state.compare ? state.compare.join(',') : '') === key;
  state.compare = list;
  $('battle-all').hidden = !list;
  renderStatus();
  renderChips();
  if (!same) {
    state.battle = null;
    renderBattle();
    openBattle();
  }
}

function closeBattle() {
  clearTimeout(state.besTimer);
  if (state.bes) state.bes.close();
  state.bes = null;
}

function openBattle() {
  closeBattle();
  const q = state.compare ? '?channels=' + encodeURIComponent(state.compare.join(',')) : '';
  const es = new EventSource(`${API}battle/events${q}`);
  state.bes = es;
  es.addEventListener('open', () => {
    $('live').dataset.state = 'on';
    $('live').textContent = 'live updates on';
    clearError('stream');
  });
  es.addEventListener('battle', (e) => {
    if (state.bes !== es) return;
    try { state.battle = JSON.parse(e.data); } catch (err) { return; }
    renderBattle();
  });
  es.addEventListener('error', async () => {
    $('live').dataset.state = 'off';
    $('live').textContent = 'live updates off';
    if (es.readyState !== EventSource.CLOSED || state.bes !== es) {
      showError('stream', 'Live updates are interrupted: reconnecting…', 'warn');
      return;
    }
    // The browser gave up: a 400 (a bad list) says why; else retry.
    try {
      const { status, body } = await api(`battle${q}`);
      if (status === 400) {
        showError('stream', (body && body.error) || 'The server refused this battle.');
        return;
      }
    } catch (err) { /* shown by api() */ }
    showError('stream', 'Live updates are interrupted: reconnecting…', 'warn');
    state.besTimer = setTimeout(() => { if (state.bes === es) openBattle(); }, 3000);
  });
}

function sparkline(points) {
  const W = 130, H = 30;
  const pts = points.slice(0, -1); // the current minute is not over
  const svg = el('svg', { class: 'spark', viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', 'aria-hidden': 'true' });
  if (pts.length < 2) return svg;
  const max = Math.max(1, ...pts);
  const xy = pts.map((v, i) => `${((i / (pts.length - 1)) * (W - 2) + 1).toFixed(1)},${(H - 2 - (v / max) * (H - 4)).toFixed(1)}`);
  svg.append(el('polygon', { points: `1,${H} ${xy.join(' ')} ${W - 1},${H}` }), el('polyline', { points: xy.join(' ') }));
  return svg;
}

function fighterState(f) {
  if (f.monitored) return f.state || 'unknown';
  if (!f.has_stats) return 'waiting';
  return f.in_window ? 'live' : 'idle';
}

function renderBattle() {
  const doc = state.battle;
  const list = doc && Array.isArray(doc.channels) ? doc.channels : [];
  const names = new Set(list.map((f) => f.channel_id));
  // Channels started here show up at once, waiting for their figures.
  const waiting = [...state.fresh].filter((n) => !names.has(n) && (!state.compare || state.compare.includes(n)))
    .map((n) => ({ channel_id: n, has_stats: false, monitored: true, state: 'joining', sparkline: [] }));
  const all = list.concat(waiting);
  const lead = Math.max(1, ...list.map((f) => f.messages_per_minute || 0));
  $('battle-title').textContent = state.compare ? `Battle: ${state.compare.map((n) => '#' + n).join(' vs ')}` : 'Battle';
  $('battle-sub').textContent = !doc ? 'Connecting…'
    : `${fmtInt(doc.count + waiting.length)} channel${doc.count + waiting.length === 1 ? '' : 's'} · ranked live by messages per minute in the current window${doc.truncated ? ' · the first 100 shown' : ''}`;
  $('battle-list').replaceChildren(...all.map((f, i) => {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'fighter' + (state.fresh.has(f.channel_id) ? ' fresh' : '');
    b.dataset.channel = f.channel_id;
    b.dataset.state = fighterState(f);
    b.title = `Open #${f.channel_id}`;
    const rank = document.createElement('span');
    rank.className = 'rank';
    rank.textContent = f.rank || i + 1;
    const name = document.createElement('span');
    name.className = 'name';
    const nm = document.createElement('span');
    nm.textContent = '#' + f.channel_id;
    name.append(nm);
    const rate = document.createElement('span');
    rate.className = 'rate';
    const big = document.createElement('b');
    big.textContent = f.has_stats ? fmtInt(Math.round(f.messages_per_minute)) : '–';
    const unit = document.createElement('small');
    unit.textContent = ' /min';
    const meter = document.createElement('span');
    meter.className = 'meter';
    meter.style.width = `${Math.round(((f.messages_per_minute || 0) / lead) * 100)}%`;
    rate.append(big, unit, meter);
    const meta = document.createElement('span');
    meta.className = 'meta';
    if (!f.has_stats) {
      meta.textContent = f.monitored ? `${f.state || 'joining'}: waiting for the first figures` : 'no figures yet';
    } else {
      meta.textContent = `${fmtInt(f.message_count)} msgs · ${fmtInt(f.unique_chatters)} chatters`;
      if (f.top_emote) {
        const em = document.createElement('span');
        em.className = 'emote';
        em.textContent = ` · ${f.top_emote.name} ×${fmtInt(f.top_emote.count)}`;
        meta.append(em);
      } else if (!f.in_window) {
        meta.append(document.createTextNode(' · quiet this window'));
      }
      if (f.in_window && typeof f.sentiment === 'number') {
        const md = document.createElement('span');
        md.className = 'mood';
        md.dataset.mood = moodOf(f.sentiment);
        md.textContent = ` · mood ${fmtMood(f.sentiment)}`;
        md.title = `chat mood ${moodOf(f.sentiment)}: mean sentiment of this window's messages`;
        meta.append(md);
      }
    }
    if (typeof f.viewers === 'number') {
      const vw = document.createElement('span');
      vw.className = 'viewers';
      vw.textContent = f.live ? ` · ${fmtInt(f.viewers)} viewers · ${fmtPer1k(f.msgs_per_1k_viewers)} /min per 1k` : ' · offline';
      meta.append(vw);
    }
    b.append(rank, name, rate, meta, sparkline(f.sparkline || []));
    b.addEventListener('click', () => select(f.channel_id));
    li.append(b);
    return li;
  }));
}

/* ---- rendering ---- */

/* Chat mood (ChannelStats "sentiment", the mean compound score in [-1, 1];
 * docs/aggregation.md): signed, two decimals, and a word for its side of
 * the +-0.05 thresholds. */
function fmtMood(v) {
  return (v > 0 ? '+' : v < 0 ? '−' : '') + Math.abs(v).toFixed(2);
}
function moodOf(v) {
  return v >= 0.05 ? 'positive' : v <= -0.05 ? 'negative' : 'neutral';
}

function render() {
  const w = state.windows[0];
  $('channel-name').textContent = state.channel ? '#' + state.channel : 'No channel selected';
  $('count').textContent = w ? fmtInt(w.message_count) : '–';
  $('chatters').textContent = w && typeof w.unique_chatters === 'number' ? fmtInt(w.unique_chatters) : '–';
  $('window-range').textContent = w ? `${hhmm(w.window_start)}–${hhmm(w.window_end)}` : (state.channel ? 'waiting for the first figures' : '–');
  $('updated').textContent = w ? ago(w.last_updated) : '–';
  const mood = $('mood');
  if (w && typeof w.sentiment === 'number') {
    mood.textContent = `${fmtMood(w.sentiment)} ${moodOf(w.sentiment)}`;
    mood.dataset.mood = moodOf(w.sentiment);
  } else {
    mood.textContent = '–';
    delete mood.dataset.mood;
  }
  const series = minuteSeries();
  const full = series.filter((p) => !p.current);
  $('rate').textContent = full.length ? fmtInt(full[full.length - 1].count) : '–';
  renderEvents(w);
  renderChart(series);
  renderViewers();
  renderBars('top-emotes', w && w.top_emotes, 'name');
  renderBars('top-chatters', w && w.top_chatters, 'username');
  renderMoments();
  renderStatus();
}

/* Minutes of the kept windows, oldest first, up to now. */
function minuteSeries() {
  const now = Date.now();
  const pts = [];
  for (const w of [...state.windows].reverse()) {
    if (Array.isArray(w.per_minute) && w.per_minute.length) {
      w.per_minute.forEach((c, i) => {
        const t = w.window_start + i * 60000;
        if (t <= now) pts.push({ t, count: c, current: t + 60000 > now });
      });
    } else if (w.window_end > w.window_start) {
      // No per-minute figures (e.g. the original stream processor): the
      // window's average per minute.
      const mins = Math.max(1, Math.round((w.window_end - w.window_start) / 60000));
      pts.push({ t: w.window_start, count: Math.round(w.message_count / mins), current: w.window_end > now });
    }
  }
  return pts.slice(-CHART_MINUTES);
}

const SVG = 'http://www.w3.org/2000/svg';
function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderChart(series) {
  const box = $('chart');
  const W = Math.max(280, box.clientWidth || 600);
  const H = Math.max(140, box.clientHeight || 220);
  const L = 40, R = 8, T = 10, B = 24;
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img' });
  svg.append(el('line', { class: 'axis', x1: L, y1: H - B, x2: W - R, y2: H - B }));
  if (!series.length) {
    svg.append(el('text', { class: 'empty', x: W / 2, y: H / 2, 'text-anchor': 'middle' },
      state.channel ? 'waiting for data…' : 'pick or start a channel'));
    box.replaceChildren(svg);
    return;
  }
  const max = Math.max(1, ...series.map((p) => p.count));
  const step = niceStep(max / 4);
  const top = Math.ceil(max / step) * step;
  const y = (v) => H - B - (v / top) * (H - B - T);
  for (let v = 0; v <= top; v += step) {
    svg.append(el('line', { class: 'axis', x1: L, y1: y(v), x2: W - R, y2: y(v), 'stroke-dasharray': v ? '2 4' : '' }));
    svg.append(el('text', { class: 'tick', x: L - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtShort(v)));
  }
  // A fixed span of minutes ending with the current one, newest on the
  // right, so that bars keep their width and place as time goes by.
  const span = W < 500 ? 15 : 30;
  const end = Math.floor(Date.now() / 60000) * 60000;
  const first = end - (span - 1) * 60000;
  const slot = (W - L - R) / span;
  const moments = new Set(state.windows.flatMap((w) => (w.moments || []).map((m) => m.minute_start)));
  const every = [1, 2, 5, 10, 15, 30].find((k) => k * slot >= 48) || 30;
  for (let t = first; t <= end; t += 60000) {
    if ((t / 60000) % every === 0) {
      const x = L + ((t - first) / 60000 + 0.5) * slot;
      svg.append(el('text', { class: 'tick', x, y: H - 6, 'text-anchor': 'middle' }, hhmm(t)));
    }
  }
  for (const p of series) {
    if (p.t < first || p.t > end) continue;
    const x = L + ((p.t - first) / 60000) * slot + slot * 0.12;
    const h = Math.max(1, H - B - y(p.count));
    const bar = el('rect', { class: 'bar' + (p.current ? ' current' : ''), x, y: H - B - h,
      width: Math.max(1, slot * 0.76), height: h, rx: Math.min(3, slot * 0.2) });
    bar.append(el('title', {}, `${hhmm(p.t)}: ${fmtInt(p.count)} messages${p.current ? ' (so far)' : ''}`));
    svg.append(bar);
    if (moments.has(p.t)) svg.append(el('circle', { class: 'moment', cx: x + slot * 0.38, cy: H - B - h - 6, r: 3.5 }));
  }
  box.replaceChildren(svg);
}

function niceStep(raw) {
  const p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
  for (const m of [1, 2, 5, 10]) if (raw <= m * p) return m * p;
  return 10 * p;
}
const fmtShort = (v) => (v >= 1e6 ? (v / 1e6) + 'M' : v >= 1e3 ? (v / 1e3) + 'k' : String(v));

function renderBars(id, list, key) {
  const ol = $(id);
  const items = Array.isArray(list) ? list.slice(0, 8) : [];
  const max = Math.max(1, ...items.map((x) => x.count || 0));
  ol.replaceChildren(...items.map((x) => {
    const li = document.createElement('li');
    const fill = document.createElement('span');
    fill.className = 'fill';
    fill.style.width = `${Math.round(((x.count || 0) / max) * 100)}%`;
    const name = document.createElement('span');
    name.textContent = x[key];
    const v = document.createElement('span');
    v.className = 'v';
    v.textContent = fmtInt(x.count);
    li.append(fill, name, v);
    return li;
  }));
}

/* Subs, raids, bans... of the window (the aggregator counts them apart
 * from messages). */
function renderEvents(w) {
  const el = $('events');
  const ev = w && w.events && typeof w.events === 'object' ? w.events : {};
  const names = { sub: ['sub', 'subs'], resub: ['resub', 'resubs'], subgift: ['gift sub', 'gift subs'],
    raid: ['raid', 'raids'], ban: ['ban', 'bans'], timeout: ['timeout', 'timeouts'],
    clearchat: ['clear', 'clears'], other: ['other event', 'other events'] };
  const parts = Object.keys(names).filter((k) => ev[k] > 0)
    .map((k) => `${fmtInt(ev[k])} ${names[k][ev[k] === 1 ? 0 : 1]}`);
  el.hidden = parts.length === 0;
  el.textContent = parts.length ? 'Events: ' + parts.join(' · ') : '';
}

function renderMoments() {
  const all = state.windows.flatMap((w) => w.moments || []);
  const seen = new Set();
  const list = all.filter((m) => !seen.has(m.minute_start) && seen.add(m.minute_start))
    .sort((a, b) => b.minute_start - a.minute_start).slice(0, 8);
  $('moments').replaceChildren(...list.map((m) => {
    const li = document.createElement('li');
    const when = document.createElement('div');
    when.className = 'when';
    when.textContent = `${hhmm(m.minute_start)} · ${fmtInt(m.count)} messages`;
    const why = document.createElement('div');
    why.className = 'why';
    const score = typeof m.score === 'number' ? m.score.toFixed(1) : '?';
    const mean = typeof m.mean === 'number' ? m.mean.toFixed(1) : '?';
    why.textContent = `${score}σ above the usual ${mean}/min`;
    li.append(when, why);
    return li;
  }));
}

/* ---- start ---- */

function init() {
  $('channel-form').addEventListener('submit', onStart);
  $('stop-btn').addEventListener('click', onStop);
  $('token-save').addEventListener('click', () => {
    sessionStorage.setItem('cb_token', $('token-input').value);
    $('token-input').value = '';
    $('token-row').hidden = true;
    clearError('auth');
  });
  window.addEventListener('resize', () => { if (state.view === 'channel') renderChart(minuteSeries()); });
  window.addEventListener('hashchange', route);
  render();
  pollHealth();
  pollChannels();
  setInterval(pollHealth, HEALTH_MS);
  setInterval(pollChannels, CHANNELS_MS);
  setInterval(() => {
    const w = state.windows[0];
    $('updated').textContent = w ? ago(w.last_updated) : '–';
    renderStatus();
  }, 1000);
  route();
}

document.addEventListener('DOMContentLoaded', init);
