// dashboard.mjs - the dashboard in a real browser (Debian's chromium,
// headless, driven by playwright-core), against a running chatbattle
// (test/integration/t55-browser starts the pipeline):
//   1. the first screen is the battle of every channel watched: ranked in
//      the order of CB_RANKED (the simulator's rates), live over one event
//      stream and no polling of the battle, 50 rows that stay readable on a
//      desktop and on a phone (390 px);
//   2. deep links: #a opens one channel, #a,b compares those two;
//   3. a channel started from the page (CB_CHANNEL) appears in the battle;
//      a click on it opens its own view, where the count rises live; Stop
//      makes it settle;
//   4. the API goes away (this script ends the server: CB_SERVER_PID): an
//      error is shown and can be dismissed.
// Screenshots in CB_SHOT_DIR: battle.png, battle-phone.png (the first
// screen), dashboard.png, dashboard-phone.png (one channel),
// dashboard-down.png.  Prints "ok - ..." / "not ok - ..." lines.
//
// Environment: CB_URL (the server), CB_SERVER_PID, CB_BROWSER_MODULES (the
// node_modules holding playwright-core), CB_SHOT_DIR, CB_RANKED (channels,
// busiest first), CB_BATTLE_SIZE (channels watched), CB_CHANNEL.
import { failed, launch, ok, waitFor } from './lib.mjs';

const url = process.env.CB_URL;
const channel = process.env.CB_CHANNEL || 'browsertest';
const ranked = (process.env.CB_RANKED || '').split(',').filter(Boolean);
const size = Number(process.env.CB_BATTLE_SIZE || ranked.length);
const shots = process.env.CB_SHOT_DIR || '.';


const count = (page) => page.$eval('#count', (e) => Number(e.textContent.replace(/[^0-9]/g, '')) || 0);
const order = (page) => page.$$eval('#battle-list .fighter', (l) => l.map((e) => e.dataset.channel));

const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  const requests = [];
  page.on('request', (r) => requests.push(r.url()));

  // ---- 1. the battle, the first screen ----
  const res = await page.goto(url, { waitUntil: 'domcontentloaded' });
  ok(res && res.status() === 200, 'the dashboard loads (200)');
  ok((await page.title()) === 'ChatBattle', 'the page title is ChatBattle');
  ok(await page.$eval('body', (b) => b.dataset.view === 'battle'), 'with nothing selected, the page shows the battle');
  ok(await waitFor(page, (n) => document.querySelectorAll('#battle-list .fighter').length >= n, size, 30000),
    `the battle lists every channel watched (${size})`, `rows: ${(await order(page)).length}`);
  // Ranked by messages per minute: the busiest channels first, in the
  // simulator's order of rates.
  const inOrder = await waitFor(page, (want) => {
    const got = [...document.querySelectorAll('#battle-list .fighter')].map((e) => e.dataset.channel);
    return want.every((c, i) => got[i] === c);
  }, ranked, 60000);
  ok(inOrder, `the ranking follows the simulator's rates (${ranked.join(' > ')})`, (await order(page)).slice(0, 8).join(','));
  const top = await page.$eval('#battle-list .fighter', (e) => ({
    rank: e.querySelector('.rank').textContent,
    rate: Number(e.querySelector('.rate b').textContent.replace(/[^0-9]/g, '')),
    meta: e.querySelector('.meta').textContent,
    spark: e.querySelectorAll('svg.spark').length,
  }));
  ok(top.rank === '1' && top.rate > 0, 'the leader is rank 1 with its messages per minute', JSON.stringify(top));
  ok(/\d[\d,]* msgs · \d[\d,]* chatters · \S+ ×\d/.test(top.meta), 'each row shows the count, unique chatters and top emote', top.meta);
  ok(top.spark === 1, 'each row has a sparkline');
  // The chat mood (the simulator's emotes and words carry some).
  ok(/ · mood [+−]?\d\.\d\d/.test(top.meta), 'each row shows the chat mood', top.meta);
  // Live: the leader's figures move without a reload, over the one stream.
  const before = top.meta;
  ok(await waitFor(page, (m) => document.querySelector('#battle-list .fighter .meta').textContent !== m, before, 20000),
    'the battle updates live (Server-Sent Events)');
  const streams = requests.filter((u) => u.includes('/api/battle/events'));
  const polls = requests.filter((u) => /\/api\/battle(\?|$)/.test(u));
  ok(streams.length === 1 && polls.length === 0, 'one event stream for the whole battle, no polling',
    `streams ${streams.length}, GET /api/battle ${polls.length}`);
  ok(await page.$eval('#live', (e) => e.dataset.state === 'on'), 'live updates are on');
  // 50 rows stay readable: one line each, names not cut off.
  const rows = await page.$$eval('#battle-list .fighter', (l) => l.map((e) => ({
    h: e.getBoundingClientRect().height,
    cut: e.querySelector('.name span').scrollWidth > e.querySelector('.name span').clientWidth,
  })));
  ok(rows.every((r) => r.h <= 64) && rows.every((r) => !r.cut), `${rows.length} rows, each one compact line with its full name`,
    JSON.stringify(rows.filter((r) => r.h > 64 || r.cut).slice(0, 3)));
  await page.screenshot({ path: `${shots}/battle.png` });
  await page.setViewportSize({ width: 390, height: 844 });
  const battleOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ok(battleOverflow <= 0, 'the battle fits a phone screen (390 px)', `overflows by ${battleOverflow}px`);
  const phoneRows = await page.$$eval('#battle-list .fighter', (l) => l.map((e) => {
    const r = e.getBoundingClientRect();
    return { right: r.right, h: r.height };
  }));
  ok(phoneRows.every((r) => r.right <= 390 && r.h <= 90), 'on a phone each row stays within the screen, two lines at most',
    JSON.stringify(phoneRows.filter((r) => r.right > 390 || r.h > 90).slice(0, 3)));
  await page.screenshot({ path: `${shots}/battle-phone.png` });
  await page.setViewportSize({ width: 1280, height: 900 });

  // ---- 2. deep links ----
  const [a, b] = [ranked[1], ranked[0]];
  await page.goto(`${url}#${a},${b}`, { waitUntil: 'domcontentloaded' });
  const pair = await waitFor(page, (want) => {
    const got = [...document.querySelectorAll('#battle-list .fighter')].map((e) => e.dataset.channel);
    return got.length === 2 && got[0] === want[0] && got[1] === want[1];
  }, [b, a], 20000);
  ok(pair, `#${a},${b} compares those two, ranked`, (await order(page)).join(','));
  ok(/vs/.test(await page.textContent('#battle-title')), 'the title names the channels compared', await page.textContent('#battle-title'));
  await page.goto(`${url}#${a}`, { waitUntil: 'domcontentloaded' });
  ok(await waitFor(page, (c) => document.body.dataset.view === 'channel' &&
      document.querySelector('#channel-name').textContent === '#' + c, a, 10000), `#${a} opens that channel's own view`);
  await page.click('#back-link');
  ok(await waitFor(page, (h) => document.body.dataset.view === 'battle' && location.hash === h &&
      document.querySelectorAll('#battle-list .fighter').length === 2, `#${a},${b}`, 20000),
    'the back link returns to the battle it came from', await page.evaluate(() => location.hash));
  await page.click('#battle-all');
  ok(await waitFor(page, (n) => document.body.dataset.view === 'battle' && location.hash === '' &&
      document.querySelectorAll('#battle-list .fighter').length >= n, size, 20000),
    '"all channels" returns to the battle of every channel watched');

  // ---- 3. a channel started from the page ----
  await page.fill('#channel-input', '#' + channel.toUpperCase());
  const [post] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/api/channels/')),
    page.click('#start-btn'),
  ]);
  ok(post.status() === 202, 'Start sends POST /api/channels/:id and gets 202', `status ${post.status()}`);
  ok(post.url().endsWith('/api/channels/' + channel), 'the channel name is normalized before it is sent', post.url());
  ok(await waitFor(page, (c) => document.querySelector(`#battle-list .fighter[data-channel="${c}"]`) !== null, channel, 10000),
    'the started channel appears in the battle');
  ok(await waitFor(page, (c) => {
    const e = document.querySelector(`#battle-list .fighter[data-channel="${c}"] .rate b`);
    return e !== null && Number(e.textContent.replace(/[^0-9]/g, '')) > 0;
  }, channel, 45000), 'it gets its figures in the battle');
  ok(await page.$eval('body', (bd) => bd.dataset.view === 'battle'), 'starting a channel keeps the battle on screen');
  await page.click(`#battle-list .fighter[data-channel="${channel}"]`);
  ok(await waitFor(page, (c) => location.hash === '#' + c && document.body.dataset.view === 'channel', channel, 10000),
    'a click on a row opens that channel\'s view (#channel)');

  // The channel's own view: the count appears and rises, live.
  let first = 0;
  if (await waitFor(page, () => Number(document.querySelector('#count').textContent.replace(/[^0-9]/g, '')) > 0, null, 30000)) {
    first = await count(page);
  }
  ok(first > 0, 'the message count appears', `count ${first}`);
  ok(await waitFor(page, (c) => Number(document.querySelector('#count').textContent.replace(/[^0-9]/g, '')) > c, first, 20000),
    'the count rises without a reload (Server-Sent Events)', `stayed at ${first}`);
  // The IRC state comes from GET /api/channels, polled every 3 s.
  ok(await waitFor(page, () => ['live', 'joined'].includes(document.querySelector('#conn-status').dataset.state), null, 10000),
    'the connection status is green (live or joined)', await page.$eval('#conn-status', (e) => e.textContent));
  ok(await page.$eval('#live', (e) => e.dataset.state === 'on'), 'live updates are on');
  await waitFor(page, () => document.querySelectorAll('#chart rect.bar').length > 0, null, 10000);
  ok((await page.$$('#chart rect.bar')).length > 0, 'the per-minute chart has bars');
  await waitFor(page, () => document.querySelectorAll('#top-emotes li').length > 0, null, 10000);
  ok((await page.$$('#top-emotes li')).length > 0, 'top emotes are listed');
  ok((await page.$$('#top-chatters li')).length > 0, 'top chatters are listed');
  ok(/^[+−]?\d\.\d\d (positive|negative|neutral)$/.test(await page.textContent('#mood')), 'the chat mood is shown',
    await page.textContent('#mood'));
  ok(/\d\d:\d\d–\d\d:\d\d/.test(await page.textContent('#window-range')), 'the window time range is shown');
  ok(await page.$(`#channel-list .chip[data-channel="${channel}"]`) !== null, 'the channel is in the channel list');
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  // A phone-sized screen: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ok(overflow <= 0, 'the channel view fits a phone screen (390 px)', `overflows by ${overflow}px`);
  await page.screenshot({ path: `${shots}/dashboard-phone.png`, fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Stop monitoring: the count settles.
  const [del] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'DELETE'),
    page.click('#stop-btn'),
  ]);
  ok(del.status() === 202, 'Stop sends DELETE /api/channels/:id and gets 202', `status ${del.status()}`);
  let settled = false;
  const deadline = Date.now() + 30000;
  let prev = await count(page);
  while (Date.now() < deadline) {
    // The count must hold still for 1.5 s (several aggregator commits).
    await page.waitForTimeout(1500);
    const now = await count(page);
    if (now === prev) { settled = true; break; }
    prev = now;
  }
  ok(settled, 'after Stop the count stops rising', `still moving at ${prev}`);

  // ---- 4. the API goes away: an error is shown, and can be dismissed ----
  process.kill(Number(process.env.CB_SERVER_PID), 'SIGTERM');
  let shown = false;
  try {
    await page.waitForSelector('#errors .error', { timeout: 15000 });
    shown = true;
  } catch (e) { /* reported below */ }
  ok(shown, 'an error is shown when the API is down');
  if (shown) {
    const text = await page.textContent('#errors');
    ok(/not responding|interrupted/i.test(text), 'the error says what is wrong', text);
    await page.waitForSelector('#errors .error[data-key="api"]', { timeout: 15000 }).catch(() => {});
    await page.screenshot({ path: `${shots}/dashboard-down.png` });
    const n = (await page.$$('#errors .error')).length;
    await page.click('#errors .error .dismiss');
    ok((await page.$$('#errors .error')).length === n - 1, 'an error can be dismissed');
  }
  ok(await page.$eval('#conn-status', (e) => e.dataset.state !== 'live'), 'the status no longer says live');
  ok(consoleErrors.length === 0, 'no JavaScript errors on the page', consoleErrors.join('; '));
} catch (e) {
  ok(false, 'the browser test ran to the end', String(e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed() ? 1 : 0);
