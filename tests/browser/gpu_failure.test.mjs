// A lost WebGPU device and out-of-memory failures, injected at the WebGPU API inside the
// training worker (SwiftShader is real WebGPU, so the wasm, wgpu and cubecl take their real
// error paths): the page and the <dpo-trainer> element show a specific message, and Train
// works again without a reload, in a fresh worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { injectIntoWorker, launch, openPage, serverUrl, trainAgain, waitForRun } from './harness.mjs';

// The shims run inside the worker, before the wasm starts: self-contained functions.

// Destroys the device after `submits` queue submissions: a real device loss (reason
// "destroyed"; a driver reset says "unknown"), wherever the run happens to be.
function loseDevice(submits) {
  const devices = [];
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = async function (...args) {
    const device = await requestDevice.apply(this, args);
    devices.push(device);
    return device;
  };
  let count = 0;
  const submit = GPUQueue.prototype.submit;
  GPUQueue.prototype.submit = function (...args) {
    const result = submit.apply(this, args);
    if (++count === submits) devices.forEach((device) => device.destroy());
    return result;
  };
}

// At the `nth` buffer, what an exhausted GPU does: `event` raises an uncaptured
// GPUOutOfMemoryError (as a failed allocation reports itself); `throw` makes createBuffer
// throw, as Chrome's does when a mapped buffer cannot be allocated.
function outOfMemory({ nth, how }) {
  let count = 0;
  const createBuffer = GPUDevice.prototype.createBuffer;
  GPUDevice.prototype.createBuffer = function (descriptor) {
    if (++count === nth && how === 'throw') {
      throw new RangeError(`Failed to execute 'createBuffer' on 'GPUDevice': createBuffer failed, size (${descriptor.size}) ` +
        'is too large for the implementation when mappedAtCreation == true');
    }
    const buffer = createBuffer.call(this, descriptor);
    if (count === nth && how === 'event') {
      const error = new GPUOutOfMemoryError('Not enough memory left to allocate the buffer.');
      queueMicrotask(() => this.dispatchEvent(new GPUUncapturedErrorEvent('uncapturederror', { error })));
    }
    return buffer;
  };
}

// The smallest run that still goes through every stage (SFT, DPO, generation, evaluation):
// SwiftShader compiles each kernel on first use, ~90 s for this whole run.
const SHORT = 'sample=sentiment&backend=webgpu&preset=micro&sft_steps=1&steps=1&batch=1&max_length=16&gen_tokens=1&eval_limit=1';

test('a lost GPU device is named, and Train starts again on a fresh device', { timeout: 400_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: true });
  try {
    const started = Date.now();
    const { page, consoleLines } = await openPage(browser, `${server.url}#${SHORT}&autostart=1`, {
      serviceWorkers: 'block', prepare: (p) => injectIntoWorker(p, [{ fn: loseDevice, arg: 3 }]) });
    const failed = await waitForRun(page, 180_000);
    assert.match(failed.error ?? '', /^the GPU device was lost \(reason destroyed: .+\) while .+: press Train to start again$/,
      consoleLines.join('\n'));
    assert.equal(await page.textContent('#error'), failed.error);
    t.diagnostic(`failed after ${((Date.now() - started) / 1000).toFixed(0)} s: ${failed.error}`);

    // The same page: Train comes back once the fresh worker has loaded, and trains on WebGPU.
    const run = await trainAgain(page, 240_000);
    assert.equal(run.error, null, `the second run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.equal(run.backend, 'webgpu');
    assert.deepEqual(run.metrics.map((m) => m.phase), ['sft', 'dpo']);
    assert.ok(run.evaluation, 'no evaluation');
    assert.ok(await page.isHidden('#error'), 'the old error is still shown');
    t.diagnostic(`both runs took ${((Date.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await browser.close();
    server.stop();
  }
});

test('out of GPU memory, twice, in the element: explained each time, then it trains', { timeout: 300_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: true });
  try {
    const { page, consoleLines } = await openPage(browser, `${server.url}lesson.html`, {
      serviceWorkers: 'block',
      prepare: (p) => injectIntoWorker(p, [{ fn: outOfMemory, arg: { nth: 8, how: 'event' } },
        { fn: outOfMemory, arg: { nth: 8, how: 'throw' } }]),
    });
    const trainer = page.locator('#lesson-trainer');
    const trainButton = trainer.getByRole('button', { name: 'Train' });
    await page.evaluate(() => {
      const el = document.querySelector('#lesson-trainer');
      const settings = { backend: 'webgpu', 'sft-steps': 1, steps: 1, batch: 1, 'max-length': 16, 'eval-limit': 1 };
      for (const [name, value] of Object.entries(settings)) el.setAttribute(name, String(value));
      window.trainerErrors = [];
      el.addEventListener('dpo-error', ({ detail }) => window.trainerErrors.push(detail.message));
    });
    for (const attempt of ['an uncaptured GPUOutOfMemoryError', 'createBuffer throwing']) {
      const started = Date.now();
      await trainButton.waitFor({ state: 'visible' });
      await page.waitForFunction(() => !document.querySelector('#lesson-trainer').shadowRoot
        .querySelector('[name="start"]').disabled, null, { timeout: 60_000 });
      const error = await page.evaluate(() => document.querySelector('#lesson-trainer').start().then(
        () => null, (e) => e.message));
      assert.match(error ?? 'it trained', /^out of GPU memory while .+: try a smaller preset or batch, or the CPU backend, then press Train again$/,
        `${attempt}\n${consoleLines.join('\n')}`);
      assert.equal(await trainer.locator('.status').textContent(), `Error: ${error}`);
      t.diagnostic(`${attempt}: "${error}" after ${((Date.now() - started) / 1000).toFixed(0)} s`);
    }
    assert.equal((await page.evaluate(() => window.trainerErrors)).length, 2, 'one dpo-error per failure');

    // A third worker, with nothing injected; the CPU keeps the test short.
    await page.waitForFunction(() => !document.querySelector('#lesson-trainer').shadowRoot
      .querySelector('[name="start"]').disabled, null, { timeout: 60_000 });
    const done = await page.evaluate(async () => {
      const el = document.querySelector('#lesson-trainer');
      el.setAttribute('backend', 'cpu');
      const result = await el.start();
      return { steps: result.metrics.map((m) => m.phase), backend: el.backend, stopped: result.stopped };
    });
    assert.deepEqual(done, { steps: ['sft', 'dpo'], backend: 'cpu', stopped: false });
  } finally {
    await browser.close();
    server.stop();
  }
});
