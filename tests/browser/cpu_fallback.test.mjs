// No WebGPU (Chromium without --enable-unsafe-webgpu has no adapter): the page says so and
// `auto` trains on the CPU backend in wasm: on a thread per core where the page is
// cross-origin isolated, else on one thread, and says which.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { foreignRequests, launch, openPage, screenshot, serverUrl, waitForRun } from './harness.mjs';

const SETUP = 'sample=sentiment&backend=auto&preset=micro&sft_steps=6&steps=6&batch=4&max_length=48&gen_tokens=12&autostart=1';

test('falls back to the CPU and says WebGPU is missing', { timeout: 300_000 }, async () => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const url = `${server.url}#${SETUP}`;
    const { page, requests, consoleLines } = await openPage(browser, url);
    const run = await waitForRun(page, 240_000);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.equal(run.backend, 'cpu');
    assert.match(run.reason, /WebGPU not available/);
    assert.ok(await page.isVisible('#webgpu-missing'), 'no "WebGPU is not available" banner');
    assert.match(await page.textContent('#webgpu-missing'), /WebGPU is not available/);
    assert.match(await page.textContent('#backend'), /Training on the CPU \(wasm\) — WebGPU not available/);
    const { isolated, cores } = await page.evaluate(() => ({ isolated: self.crossOriginIsolated, cores: navigator.hardwareConcurrency }));
    assert.equal(isolated, process.env.DPO_ISOLATION !== 'off', 'the page is isolated exactly when the server sends COOP + COEP');
    assert.equal(run.threads, isolated ? cores : 1);
    assert.match(await page.textContent('#backend'), isolated ? new RegExp(`; ${cores} threads`) : /; one thread \(the page is not cross-origin isolated/);
    assert.equal(run.metrics.length, 12);
    assert.ok(run.evaluation, 'no evaluation');
    await screenshot(page, 'cpu.png');
    assert.deepEqual(foreignRequests(requests, url), []);
  } finally {
    await browser.close();
    server.stop();
  }
});
