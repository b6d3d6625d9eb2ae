// lib.mjs - what the browser tests share: the TAP-like ok() with its
// failure count, waitFor() (a page condition with a deadline, true or
// false, never a throw), and launch() of Debian's chromium headless through
// playwright-core from CB_BROWSER_MODULES (the node_modules the
// integration test installed under .cache/browser).
import { createRequire } from 'node:module';

const require = createRequire(process.env.CB_BROWSER_MODULES + '/');
const { chromium } = require('playwright-core');

let failures = 0;

// Prints "ok - name" or "not ok - name" (and "# detail"); returns cond.
export function ok(cond, name, detail) {
  console.log(`${cond ? 'ok' : 'not ok'} - ${name}`);
  if (!cond) {
    failures++;
    if (detail) console.log(`# ${detail}`);
  }
  return cond;
}

export const failed = () => failures;

export const waitFor = (page, fn, arg, ms) =>
  page.waitForFunction(fn, arg, { timeout: ms }).then(() => true, () => false);

export const launch = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
