// viewers.mjs - the viewer counts on the page (headless chromium driven by
// playwright-core), against a running chatbattle whose Helix poller reads
// the simulator (test/integration/t56-viewers starts it): the channel view
// shows the count CB_VIEWERS of CB_CHANNEL, the messages per minute per
// 1,000 viewers and the viewer chart; the battle row of the channel shows
// the count and the per-1k figure.  Prints "ok - ..." / "not ok - ...".
//
// Environment: CB_URL, CB_BROWSER_MODULES (node_modules with
// playwright-core), CB_CHANNEL, CB_VIEWERS (the count, formatted en-US),
// CB_SHOT_DIR (viewers.png).
import { failed, launch, ok, waitFor } from './lib.mjs';

const url = process.env.CB_URL;
const channel = process.env.CB_CHANNEL;
const viewers = process.env.CB_VIEWERS;



const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  await page.goto(`${url}#${channel}`);
  ok(await waitFor(page, (v) => document.getElementById('viewers').textContent === v, viewers, 30000),
    `the channel view shows ${viewers} viewers`, await page.textContent('#viewers'));
  ok(await waitFor(page, () => /^\d+(\.\d)?$/.test(document.getElementById('per1k').textContent), null, 30000),
    'the channel view shows messages / min per 1,000 viewers', await page.textContent('#per1k'));
  ok(await waitFor(page, () => !!document.querySelector('#viewers-chart .vline'), null, 30000),
    'the channel view draws the viewer chart');
  await page.screenshot({ path: `${process.env.CB_SHOT_DIR || '.'}/viewers.png`, fullPage: true });
  await page.goto(`${url}#`);
  const sel = `#battle-list .fighter[data-channel="${channel}"] .viewers`;
  ok(await waitFor(page, ([s, v]) => {
    const e = document.querySelector(s);
    return !!e && new RegExp(`^ · ${v} viewers · \\d+(\\.\\d)? /min per 1k$`).test(e.textContent);
  }, [sel, viewers.replace(/,/g, ',')], 30000), 'the battle row shows the viewers and the per-1k figure',
  await page.$eval(sel, (e) => e.textContent).catch(() => 'no row'));
} finally {
  await browser.close();
}
process.exit(failed() ? 1 : 0);
