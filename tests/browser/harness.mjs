// Shared by the browser tests and scripts/bench_web.mjs: the static server, Chromium with
// the flags that work on a machine without a GPU (SwiftShader's WebGPU needs
// --enable-unsafe-webgpu; never a downloaded browser), and waiting for a run to end.
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const artifacts = join(root, 'target', 'browser-artifacts');
// The native binary lives where cargo put it: CARGO_TARGET_DIR when set (CI), else target/.
export const dpoBinary = join(process.env.CARGO_TARGET_DIR ?? join(root, 'target'), 'release', 'dpo');

const baseFlags = [
  '--headless', '--no-sandbox', '--disable-gpu-sandbox', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

// Playwright gives every launch a fresh temporary profile (its own --user-data-dir).
export async function launch({ webgpu = true } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: webgpu ? [...baseFlags, '--enable-unsafe-webgpu'] : baseFlags,
  });
}

// The server scripts/test_browser.sh started (DPO_WEB_URL), or one of our own on a free port
// (always our own with `own: true`, for a test that takes the server away). `isolated`: send
// COOP + COEP (serve.mjs's default, unless DPO_ISOLATION=off in the environment); asking for
// other than the environment's setting starts our own server.
const isolatedByDefault = process.env.DPO_ISOLATION !== 'off';
export async function serverUrl({ own = false, isolated = isolatedByDefault } = {}) {
  if (process.env.DPO_WEB_URL && !own && isolated === isolatedByDefault) return { url: process.env.DPO_WEB_URL, stop: () => {} };
  const env = { ...process.env, DPO_ISOLATION: isolated ? 'on' : 'off' };
  const child = spawn(process.execPath, [join(root, 'scripts', 'serve.mjs'), '0'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`serve.mjs exited with ${code}`)));
    child.stdout.once('data', (chunk) => resolve(chunk.toString().trim().split('\n')[0]));
  });
  return { url, stop: () => child.kill() };
}

// A page that records every request it makes and forwards its (and its worker's) console.
// `serviceWorkers: 'block'` keeps the site's offline copy (sw.js) out, for tests that
// answer requests themselves with page.route (a service worker would bypass it).
export async function openPage(browser, url, { log = process.env.DPO_TEST_VERBOSE === '1',
  viewport = { width: 1366, height: 900 }, serviceWorkers = 'allow', prepare = async () => {} } = {}) {
  const page = await browser.newPage({ viewport, acceptDownloads: true, serviceWorkers });
  const requests = [];
  page.on('request', (request) => requests.push(request.url()));
  const consoleLines = [];
  page.on('console', (message) => {
    consoleLines.push(`${message.type()}: ${message.text()}`);
    if (log) console.log(`[page ${message.type()}] ${message.text()}`);
  });
  page.on('pageerror', (error) => consoleLines.push(`pageerror: ${error.message}`));
  await prepare(page); // routes, init scripts: before the first request
  await page.goto(url);
  return { page, requests, consoleLines };
}

// Every request went to the page's own origin (or never left the browser).
export function foreignRequests(requests, url) {
  const origin = new URL(url).origin;
  return requests.filter((r) => !(r.startsWith('data:') || r.startsWith('blob:') || new URL(r).origin === origin));
}

export async function waitForRun(page, timeoutMs) {
  await page.waitForFunction(() => window.dpoState && (window.dpoState.done || window.dpoState.error),
    null, { timeout: timeoutMs, polling: 500 });
  return page.evaluate(() => ({ ...window.dpoState, points: window.dpoCharts.points() }));
}

// Presses the page's Train button once it is enabled and waits for that run's end. The
// previous run's end is cleared first: the start message may go out only after an await
// (reading a model folder), and the old error must not be taken for the new run's.
export async function trainAgain(page, timeoutMs) {
  await page.waitForFunction(() => !document.querySelector('#start').disabled, null, { timeout: 60_000 });
  await page.evaluate(() => { window.dpoState.error = null; window.dpoState.done = false; });
  await page.click('#start');
  return waitForRun(page, timeoutMs);
}

export async function screenshot(page, name) {
  mkdirSync(artifacts, { recursive: true });
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

// Median `ms` of each phase's steps, leaving out the first ones of each phase: the first
// two SFT steps and the first DPO step compile shaders (and set up optimizer state).
export function phaseMedians(metrics) {
  const median = (times) => {
    const sorted = times.filter(Number.isFinite).sort((a, b) => a - b);
    if (sorted.length === 0) return NaN;
    const mid = sorted.length >> 1;
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  const of = (phase, skip) => median(metrics.filter((m) => m.phase === phase).slice(skip).map((m) => m.ms));
  return { sft: of('sft', 2), dpo: of('dpo', 1) };
}

// Prepends a call of `shims[i].fn` (a function, with the JSON-able `shims[i].arg`) to the i-th
// worker.js the page starts, and nothing to later ones. Faults are injected this way at the
// WebGPU API inside the training worker, where the wasm calls it: init scripts reach pages,
// not workers. The page must block service workers (they would answer without the route).
export function injectIntoWorker(page, shims) {
  let served = 0;
  return page.route('**/worker.js', async (route) => {
    const shim = shims[served++];
    const response = await route.fetch();
    const call = shim ? `(${shim.fn})(${JSON.stringify(shim.arg ?? null)});\n` : '';
    await route.fulfill({ response, body: call + await response.text() });
  });
}
