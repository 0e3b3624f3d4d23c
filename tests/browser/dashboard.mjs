#!/usr/bin/env node
// Drives the admin dashboard in headless Debian Chromium (playwright-core; no bundled browser),
// as a person would: logs in through the form, checks what each page shows, clicks "replay" on a
// dead letter, and screenshots every page.
//
//   BASE_URL=http://127.0.0.1:PORT TOKEN=... OUT=/tmp/shots PAUSED_QUEUE=q1 \
//   DEAD_QUEUE=q2 DEAD_JOB_ID=01J... node tests/browser/dashboard.mjs
//
// Environment:
//   BASE_URL       the server (http://127.0.0.1:PORT), required
//   TOKEN          an admin bearer token, required
//   OUT            directory for the PNG screenshots (created), required
//   PAUSED_QUEUE   a queue the caller paused, required
//   DEAD_QUEUE     the queue of DEAD_JOB_ID, required
//   DEAD_JOB_ID    a dead-lettered job in DEAD_QUEUE, required
//   CHROMIUM       the browser executable (default /usr/bin/chromium)
//   REPLAYED_STATUS  the status the replayed job must show (default pending)
//   TIMEOUT_MS     per action / navigation (default 10000)
//
// Prints one JSON line on stdout at the end: {"ok":true,"screenshots":[...],...}, or on a failed
// check {"ok":false,"step":...,"error":...} (also explained on stderr) and exits 1. Exit 2: bad
// environment or the browser did not start.
import { mkdirSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const TIMEOUT = Number(env.TIMEOUT_MS || 10000);
const OVERALL_TIMEOUT = Number(env.OVERALL_TIMEOUT_MS || 180000);

function usage(msg) {
  process.stderr.write(`dashboard.mjs: ${msg}\n`);
  process.stdout.write(JSON.stringify({ ok: false, step: 'env', error: msg }) + '\n');
  process.exit(2);
}

const required = ['BASE_URL', 'TOKEN', 'OUT', 'PAUSED_QUEUE', 'DEAD_QUEUE', 'DEAD_JOB_ID'];
const missing = required.filter((k) => !env[k]);
if (missing.length) usage(`missing environment variable(s): ${missing.join(', ')}`);

const BASE = env.BASE_URL.replace(/\/+$/, '');
const TOKEN = env.TOKEN;
const OUT = resolve(env.OUT);
const PAUSED_QUEUE = env.PAUSED_QUEUE;
const DEAD_QUEUE = env.DEAD_QUEUE;
const DEAD_JOB_ID = env.DEAD_JOB_ID;
const CHROMIUM = env.CHROMIUM || '/usr/bin/chromium';
const REPLAYED_STATUS = env.REPLAYED_STATUS || 'pending';
try {
  new URL(BASE);
} catch {
  usage(`BASE_URL is not a URL: ${BASE}`);
}

mkdirSync(OUT, { recursive: true });

const url = (path) => BASE + path;
const q = encodeURIComponent;
// A CSS string literal for an attribute selector: [data-job="..."] whatever the value holds.
const css = (s) =>
  '"' + String(s).replace(/[\\"]/g, '\\$&').replace(/[\u0000-\u001f\u007f]/g, (c) => `\\${c.charCodeAt(0).toString(16)} `) + '"';

class CheckFailed extends Error {}
function check(cond, msg) {
  if (!cond) throw new CheckFailed(msg);
}

const screenshots = [];
let checks = 0;
let currentStep = 'start';
let currentPage = null;
const problems = []; // page errors and failed subresources, reported at the end of each step

async function shot(page, name) {
  const file = join(OUT, name);
  await page.screenshot({ path: file, fullPage: true });
  screenshots.push(file);
}

// Watch a page for JavaScript errors and for failed requests (HTTP >= 400 on anything but
// the favicon; connection failures), which a person would see as a broken page.
function watch(page) {
  page.on('pageerror', (err) => problems.push(`page error on ${page.url()}: ${err.message}`));
  page.on('response', (resp) => {
    const u = new URL(resp.url());
    if (resp.status() >= 400 && u.pathname !== '/favicon.ico') {
      problems.push(`HTTP ${resp.status()} for ${resp.request().method()} ${u.pathname}${u.search}`);
    }
  });
  page.on('requestfailed', (req) => {
    const u = new URL(req.url());
    if (u.pathname !== '/favicon.ico') {
      problems.push(`request failed: ${req.method()} ${req.url()}: ${req.failure()?.errorText}`);
    }
  });
}

async function step(name, fn) {
  currentStep = name;
  await fn();
  check(problems.length === 0, problems.join('; '));
}

// Open PATH; the final response (after redirects) must be a 2xx HTML page at EXPECT_PATH
// (default: PATH's own path).
async function open(page, path, expectPath) {
  const resp = await page.goto(url(path), { waitUntil: 'load' });
  check(resp, `no response for ${path}`);
  const got = new URL(page.url());
  const want = expectPath ?? new URL(url(path)).pathname;
  check(got.pathname === want, `GET ${path} ended at ${got.pathname}${got.search}, expected ${want}`);
  check(resp.status() >= 200 && resp.status() < 300, `GET ${path}: HTTP ${resp.status()}`);
  const type = resp.headers()['content-type'] || '';
  check(type.startsWith('text/html'), `GET ${path}: content-type ${JSON.stringify(type)}, expected text/html`);
  checks += 4;
  return resp;
}

async function text(locator) {
  return ((await locator.textContent()) ?? '').replace(/\s+/g, ' ').trim();
}

async function expectH1(page, want) {
  const h1 = page.locator('h1');
  check((await h1.count()) === 1, `${page.url()}: expected one <h1>, found ${await h1.count()}`);
  const got = await text(h1);
  check(got === want, `${page.url()}: <h1> is ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
  checks++;
}

const NAV = ['/dashboard', '/dashboard/jobs', '/dashboard/dead', '/dashboard/workers'];
async function expectNav(page) {
  const hrefs = await page.$$eval('nav a[href]', (as) => as.map((a) => new URL(a.href).pathname));
  for (const want of NAV) {
    check(hrefs.includes(want), `${page.url()}: no <nav> link to ${want} (nav links: ${JSON.stringify(hrefs)})`);
  }
  checks++;
}

// Click a submit button and wait for the whole POST -> redirect -> GET round trip to load.
// Returns the final response (of the page the browser ends on).
async function submitAndWait(page, button) {
  const navs = [];
  const onResp = (r) => {
    if (r.request().isNavigationRequest() && r.frame() === page.mainFrame()) navs.push(r);
  };
  page.on('response', onResp);
  try {
    await page.evaluate(() => {
      window.__cwOldDocument = true;
    });
    await button.click();
    // The old document is gone once the new one is committed; then wait for it to load.
    await page.waitForFunction(() => !window.__cwOldDocument, null, { timeout: TIMEOUT });
    await page.waitForLoadState('load');
  } finally {
    page.off('response', onResp);
  }
  check(navs.length > 0, 'the click did not navigate');
  return navs;
}

async function main() {
  const started = Date.now();
  let browser;
  try {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      timeout: 30000,
      // As root there is no sandbox; the rest keeps Chromium off the (closed) network.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  } catch (err) {
    process.stderr.write(`dashboard.mjs: could not start ${CHROMIUM}: ${err.message}\n`);
    process.stdout.write(JSON.stringify({ ok: false, step: 'launch', error: err.message }) + '\n');
    process.exit(2);
  }

  const newContext = async () => {
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    ctx.setDefaultTimeout(TIMEOUT);
    ctx.setDefaultNavigationTimeout(TIMEOUT);
    const page = await ctx.newPage();
    watch(page);
    currentPage = page;
    return { ctx, page };
  };

  try {
    // --- Without a cookie: every dashboard page leads to the login form. ---
    {
      const { ctx, page } = await newContext();
      await step('login page without a cookie', async () => {
        await open(page, '/dashboard/login');
        check((await page.locator('input#token[name="token"]').count()) === 1, 'no <input id="token" name="token">');
        check((await page.locator('button#login[type="submit"]').count()) === 1, 'no <button id="login" type="submit">');
        check((await page.locator('form input#token').count()) === 1, '#token is not inside a <form>');
        checks += 3;
      });
      await step('no cookie: /dashboard redirects to the login page', async () => {
        for (const path of ['/dashboard', '/dashboard/jobs', '/dashboard/dead', '/dashboard/workers', `/dashboard/jobs/${q(DEAD_JOB_ID)}`]) {
          await open(page, path, '/dashboard/login');
        }
        await open(page, '/dashboard', '/dashboard/login');
        await page.locator('input#token').waitFor({ state: 'visible' });
        await shot(page, 'login.png');
      });
      await step('a wrong token does not log in', async () => {
        await page.fill('input#token', `${TOKEN}-wrong`);
        await submitAndWait(page, page.locator('button#login'));
        problems.length = 0; // the server may answer the bad login with a 401 page: that is fine
        await open(page, '/dashboard', '/dashboard/login');
      });
      await ctx.close();
    }

    const { page } = await newContext();

    await step('log in through the form', async () => {
      await open(page, '/dashboard/login');
      await page.fill('input#token', TOKEN);
      await Promise.all([
        page.waitForURL((u) => u.pathname === '/dashboard', { waitUntil: 'load' }),
        page.click('button#login'),
      ]);
      const cookies = await page.context().cookies();
      check(cookies.length > 0, 'logging in set no cookie');
      checks++;
    });

    await step('queues page', async () => {
      await open(page, '/dashboard');
      await expectH1(page, 'Queues');
      await expectNav(page);
      const row = page.locator(`tr[data-queue=${css(PAUSED_QUEUE)}]`);
      check((await row.count()) === 1, `expected one row tr[data-queue=${css(PAUSED_QUEUE)}], found ${await row.count()}`);
      const paused = await row.getAttribute('data-paused');
      check(paused === 'true', `queue ${PAUSED_QUEUE}: data-paused=${JSON.stringify(paused)}, expected "true"`);
      const state = await text(row.locator('td.state'));
      check(state === 'paused', `queue ${PAUSED_QUEUE}: .state is ${JSON.stringify(state)}, expected "paused"`);
      check((await row.locator('button[data-action="resume"]').count()) === 1, `queue ${PAUSED_QUEUE}: no button[data-action="resume"]`);
      // Every row is consistent: its data-paused, .state and button agree.
      const rows = await page.$$eval('tr[data-queue]', (trs) =>
        trs.map((tr) => ({
          name: tr.getAttribute('data-queue'),
          paused: tr.getAttribute('data-paused'),
          state: tr.querySelector('td.state')?.textContent.trim(),
          action: tr.querySelector('button[data-action]')?.getAttribute('data-action'),
        })),
      );
      for (const r of rows) {
        const want = r.paused === 'true' ? ['paused', 'resume'] : ['active', 'pause'];
        check(['true', 'false'].includes(r.paused), `queue ${r.name}: data-paused=${JSON.stringify(r.paused)}`);
        check(r.state === want[0] && r.action === want[1],
          `queue ${r.name}: data-paused=${r.paused} but .state=${JSON.stringify(r.state)} and button data-action=${JSON.stringify(r.action)}`);
      }
      checks += 4 + rows.length;
      await shot(page, 'queues.png');
    });

    await step('jobs page', async () => {
      await open(page, '/dashboard/jobs');
      await expectH1(page, 'Jobs');
      await expectNav(page);
      const form = page.locator('form#search');
      check((await form.count()) === 1, 'no <form id="search">');
      for (const sel of ['input[name="q"]', 'select[name="status"]', 'select[name="queue"]']) {
        check((await form.locator(sel).count()) === 1, `form#search has no ${sel}`);
      }
      // Each job row links to its page.
      const rows = await page.$$eval('tr[data-job]', (trs) =>
        trs.map((tr) => ({
          id: tr.getAttribute('data-job'),
          status: tr.getAttribute('data-status'),
          links: [...tr.querySelectorAll('a[href]')].map((a) => decodeURIComponent(new URL(a.href).pathname)),
        })),
      );
      for (const r of rows) {
        check(r.status, `job row ${r.id} has no data-status`);
        check(r.links.includes(`/dashboard/jobs/${r.id}`), `job row ${r.id} has no link to /dashboard/jobs/${r.id} (links: ${JSON.stringify(r.links)})`);
      }
      checks += 5 + rows.length;
      await shot(page, 'jobs.png');
    });

    await step('dead letters page', async () => {
      await open(page, `/dashboard/dead?queue=${q(DEAD_QUEUE)}`);
      await expectH1(page, 'Dead letters');
      await expectNav(page);
      const row = page.locator(`tr[data-job=${css(DEAD_JOB_ID)}]`);
      check((await row.count()) === 1, `expected one row tr[data-job=${css(DEAD_JOB_ID)}] in queue ${DEAD_QUEUE}, found ${await row.count()}`);
      check((await row.locator('form button[data-action="replay"]').count()) === 1, `dead job ${DEAD_JOB_ID}: no <form> button[data-action="replay"]`);
      check((await row.locator('form button[data-action="delete"]').count()) === 1, `dead job ${DEAD_JOB_ID}: no <form> button[data-action="delete"]`);
      checks += 3;
      await shot(page, 'dead.png');
    });

    await step('replay the dead letter', async () => {
      const row = page.locator(`tr[data-job=${css(DEAD_JOB_ID)}]`);
      const navs = await submitAndWait(page, row.locator('button[data-action="replay"]'));
      const post = navs.find((r) => r.request().method() === 'POST');
      check(post, 'the replay button sent no POST');
      const last = navs[navs.length - 1];
      check(last.status() >= 200 && last.status() < 300, `after replay: HTTP ${last.status()} for ${last.url()}`);
      const at = new URL(page.url());
      check(at.pathname === '/dashboard/dead', `after replay the browser is at ${at.pathname}${at.search}, expected /dashboard/dead`);
      const left = await page.locator(`tr[data-job=${css(DEAD_JOB_ID)}]`).count();
      check(left === 0, `after replay the dead letters page still lists ${DEAD_JOB_ID}`);
      // and it stays gone on a fresh load
      await open(page, `/dashboard/dead?queue=${q(DEAD_QUEUE)}`);
      check((await page.locator(`tr[data-job=${css(DEAD_JOB_ID)}]`).count()) === 0, `reloading /dashboard/dead still lists ${DEAD_JOB_ID}`);
      checks += 5;
    });

    await step('replayed job page', async () => {
      await open(page, `/dashboard/jobs/${q(DEAD_JOB_ID)}`);
      const h1 = await text(page.locator('h1'));
      check(h1.startsWith('Job') && h1.includes(DEAD_JOB_ID), `job page <h1> is ${JSON.stringify(h1)}, expected "Job ${DEAD_JOB_ID}"`);
      await expectNav(page);
      const status = await text(page.locator('#job-status'));
      check(status === REPLAYED_STATUS, `job ${DEAD_JOB_ID}: #job-status is ${JSON.stringify(status)}, expected ${JSON.stringify(REPLAYED_STATUS)}`);
      check((await page.locator('pre#payload').count()) === 1, 'no <pre id="payload">');
      checks += 2;
      await shot(page, 'job.png');
    });

    await step('workers page', async () => {
      await open(page, '/dashboard/workers');
      await expectH1(page, 'Workers');
      await expectNav(page);
      await shot(page, 'workers.png');
    });

    process.stdout.write(
      JSON.stringify({ ok: true, screenshots, checks, elapsed_ms: Date.now() - started }) + '\n',
    );
  } catch (err) {
    let where = '';
    let body = '';
    if (currentPage && !currentPage.isClosed()) {
      where = currentPage.url();
      try {
        body = (await currentPage.locator('body').innerText({ timeout: 2000 })).replace(/\s+/g, ' ').slice(0, 400);
        const file = join(OUT, 'failure.png');
        await currentPage.screenshot({ path: file, fullPage: true, timeout: 5000 });
        screenshots.push(file);
      } catch {
        /* the page is unusable: report the first error */
      }
    }
    const msg = err instanceof CheckFailed ? err.message : `${err.name}: ${err.message.split('\n')[0]}`;
    process.stderr.write(
      `dashboard.mjs: FAILED at step "${currentStep}": ${msg}\n` +
        (where ? `  page: ${where}\n` : '') +
        (body ? `  page text: ${body}\n` : ''),
    );
    process.stdout.write(
      JSON.stringify({ ok: false, step: currentStep, error: msg, url: where, screenshots }) + '\n',
    );
    process.exitCode = 1;
  } finally {
    await browser.close().catch(() => {});
  }
}

// A hard stop, so a hung browser never hangs the caller.
setTimeout(() => {
  process.stderr.write(`dashboard.mjs: FAILED: gave up after ${OVERALL_TIMEOUT} ms (step "${currentStep}")\n`);
  process.stdout.write(JSON.stringify({ ok: false, step: currentStep, error: 'overall timeout' }) + '\n');
  process.exit(1);
}, OVERALL_TIMEOUT).unref();

await main();
