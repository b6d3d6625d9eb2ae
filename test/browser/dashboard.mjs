// dashboard.mjs - the dashboard in a real browser (Debian's chromium,
// headless, driven by playwright-core): load it, start a channel, see its
// count rise live, stop it, see the count settle, then see an error when
// the API goes away (this script ends the server: CB_SERVER_PID), and
// dismiss it.  Screenshots: CB_SHOT_DIR/dashboard.png (desktop) and
// dashboard-phone.png.  Prints "ok - ..." / "not ok - ..." lines.
//
// Environment: CB_URL (the server), CB_SERVER_PID, CB_BROWSER_MODULES (the
// node_modules holding playwright-core), CB_SHOT_DIR, CB_CHANNEL.
import { createRequire } from 'node:module';

const require = createRequire(process.env.CB_BROWSER_MODULES + '/');
const { chromium } = require('playwright-core');

const url = process.env.CB_URL;
const channel = process.env.CB_CHANNEL || 'browsertest';
const shots = process.env.CB_SHOT_DIR || '.';
let failed = 0;

function ok(cond, name, detail) {
  console.log(`${cond ? 'ok' : 'not ok'} - ${name}`);
  if (!cond) {
    failed++;
    if (detail) console.log(`# ${detail}`);
  }
  return cond;
}

const count = (page) => page.$eval('#count', (e) => Number(e.textContent.replace(/[^0-9]/g, '')) || 0);

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const consoleErrors = [];
  page.on('pageerror', (e) => consoleErrors.push(String(e)));

  const res = await page.goto(url, { waitUntil: 'domcontentloaded' });
  ok(res && res.status() === 200, 'the dashboard loads (200)');
  ok((await page.title()) === 'ChatBattle', 'the page title is ChatBattle');
  await page.waitForFunction(() => document.querySelector('#health .pill[data-dep="kafka"]').dataset.state !== 'unknown',
    null, { timeout: 10000 }).catch(() => {});
  ok(await page.$eval('#health .pill[data-dep="kafka"]', (e) => e.dataset.state === 'up'),
    'dependency health is shown (kafka up)');

  // Start monitoring.
  await page.fill('#channel-input', '#' + channel.toUpperCase());
  const [post] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && r.url().includes('/api/channels/')),
    page.click('#start-btn'),
  ]);
  ok(post.status() === 202, 'Start sends POST /api/channels/:id and gets 202', `status ${post.status()}`);
  ok(post.url().endsWith('/api/channels/' + channel), 'the channel name is normalized before it is sent', post.url());

  // The count appears and rises, live.
  let first = 0;
  try {
    await page.waitForFunction(() => Number(document.querySelector('#count').textContent.replace(/[^0-9]/g, '')) > 0,
      null, { timeout: 30000 });
    first = await count(page);
  } catch (e) { /* reported below */ }
  ok(first > 0, 'the message count appears', `count ${first}`);
  let risen = false;
  try {
    await page.waitForFunction((c) => Number(document.querySelector('#count').textContent.replace(/[^0-9]/g, '')) > c,
      first, { timeout: 20000 });
    risen = true;
  } catch (e) { /* reported below */ }
  ok(risen, 'the count rises without a reload (Server-Sent Events)', `stayed at ${first}`);
  ok(['live', 'joined'].includes(await page.$eval('#conn-status', (e) => e.dataset.state)),
    'the connection status is green (live or joined)');
  ok(await page.$eval('#live', (e) => e.dataset.state === 'on'), 'live updates are on');
  await page.waitForFunction(() => document.querySelectorAll('#chart rect.bar').length > 0, null, { timeout: 10000 }).catch(() => {});
  ok((await page.$$('#chart rect.bar')).length > 0, 'the per-minute chart has bars');
  ok((await page.$$('#top-emotes li')).length > 0, 'top emotes are listed');
  ok((await page.$$('#top-chatters li')).length > 0, 'top chatters are listed');
  ok(/\d\d:\d\d–\d\d:\d\d/.test(await page.textContent('#window-range')), 'the window time range is shown');
  ok(await page.$(`#channel-list .chip[data-channel="${channel}"]`) !== null, 'the channel is in the channel list');
  await page.screenshot({ path: `${shots}/dashboard.png`, fullPage: true });

  // A phone-sized screen: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 390, height: 844 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  ok(overflow <= 0, 'the layout fits a phone screen (390 px)', `overflows by ${overflow}px`);
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
    await page.waitForTimeout(1500);
    const now = await count(page);
    if (now === prev) { settled = true; break; }
    prev = now;
  }
  ok(settled, 'after Stop the count stops rising', `still moving at ${prev}`);

  // The API goes away: an error is shown, and can be dismissed.
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
    const before = (await page.$$('#errors .error')).length;
    await page.click('#errors .error .dismiss');
    ok((await page.$$('#errors .error')).length === before - 1, 'an error can be dismissed');
  }
  ok(await page.$eval('#conn-status', (e) => e.dataset.state !== 'live'), 'the status no longer says live');
  ok(consoleErrors.length === 0, 'no JavaScript errors on the page', consoleErrors.join('; '));
} catch (e) {
  ok(false, 'the browser test ran to the end', String(e && e.stack || e));
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
