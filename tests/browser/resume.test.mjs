// Reload-proof runs: the page checkpoints a run into the tab's origin-private file system
// (run-store.js, checkpointer.js) and, after a reload, offers to resume it and goes on as if
// nothing had happened, the native --resume's guarantee; a worker killed mid-checkpoint
// leaves the previous checkpoint whole. CPU backend: its runs repeat exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { injectIntoWorker, launch, openPage, serverUrl, waitForRun } from './harness.mjs';

const SETUP = 'sample=sentiment&backend=cpu&preset=micro&batch=4&max_length=48&gen_tokens=8&eval_limit=8';

// Every number equal to 1e-6, the rest exactly; `ms` (a step's time) is no run's to repeat.
function assertSame(actual, expected, what) {
  if (typeof expected === 'number') {
    assert.ok(Math.abs(actual - expected) <= 1e-6, `${what}: ${actual}, uninterrupted ${expected}`);
  } else if (expected && typeof expected === 'object') {
    const keys = (value) => Object.keys(value).filter((key) => key !== 'ms').sort();
    assert.deepEqual(keys(actual), keys(expected), what);
    for (const key of keys(expected)) assertSame(actual[key], expected[key], `${what}.${key}`);
  } else {
    assert.equal(actual, expected, what);
  }
}

const offer = (page) => page.waitForSelector('#saved-runs .offer button:not([disabled])', { timeout: 60_000 });

// The folders of the tab's saved runs and the files in each, read straight from the OPFS.
const savedFolders = (page) => page.evaluate(async () => {
  const runs = await (await navigator.storage.getDirectory()).getDirectoryHandle('runs', { create: true });
  const folders = {};
  for await (const [id, run] of runs.entries()) {
    for await (const [name, entry] of run.entries()) {
      if (entry.kind !== 'directory') continue;
      folders[`${id}/${name}`] = [];
      for await (const file of entry.keys()) folders[`${id}/${name}`].push(file);
    }
  }
  return folders;
});

test('a run reloaded mid-run resumes to the metrics of an uninterrupted run', { timeout: 600_000 }, async (t) => {
  const setup = `${SETUP}&sft_steps=3&steps=9&checkpoint_every=2`;
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    // Each page is a fresh browser context: its own origin-private file system.
    const whole = await openPage(browser, `${server.url}#${setup}&autostart=1`);
    const uninterrupted = await waitForRun(whole.page, 240_000);
    assert.equal(uninterrupted.error, null, whole.consoleLines.join('\n'));
    assert.equal(uninterrupted.metrics.length, 12);
    assert.deepEqual(await savedFolders(whole.page), {}, 'a finished run is not kept');

    const { page, consoleLines } = await openPage(browser, `${server.url}#${setup}&autostart=1`);
    // Into DPO, with its reference saved: the resumed run needs both.
    await page.waitForFunction(() => window.dpoState.saved?.step >= 4, null, { timeout: 240_000, polling: 50 });
    await page.reload(); // the worker dies wherever it was: mid-step, or mid-checkpoint
    const button = await offer(page);
    const text = await page.textContent('#saved-runs .offer');
    const saved = Number(/saved at step (\d+) of 12/.exec(text)?.[1]);
    assert.ok(saved >= 4 && saved < 12, `offered: ${text}`);
    t.diagnostic(`reloaded with step ${saved} of 12 saved`);
    await button.click();
    const resumed = await waitForRun(page, 240_000);
    assert.equal(resumed.error, null, consoleLines.join('\n'));
    assert.equal(resumed.resumedFrom, saved);
    const points = (p) => p.evaluate(() => window.dpoCharts.points());
    assert.deepEqual(await points(page), await points(whole.page), 'the charts were not redrawn from the saved steps');
    assertSame(resumed.metrics, uninterrupted.metrics, 'metrics');
    // The reference came back too: the same samples before DPO, the same held-out evaluation.
    assertSame(resumed.generations, uninterrupted.generations, 'generations');
    assertSame(resumed.evaluation, uninterrupted.evaluation, 'evaluation');
    assert.deepEqual(await savedFolders(page), {}, 'the finished run is still saved');
  } finally {
    await browser.close();
    server.stop();
  }
});

// Injected into the training worker: its second checkpoint never gets past the file after
// the policy's (the optimizer's), as if the worker died right there.
function stallSecondCheckpoint() {
  const open = FileSystemFileHandle.prototype.createSyncAccessHandle;
  let checkpoints = 0;
  FileSystemFileHandle.prototype.createSyncAccessHandle = function (...args) {
    if (this.name === 'optimizer.bpk' && ++checkpoints === 2) {
      self.postMessage({ type: 'status', text: 'test: the second checkpoint stalls' });
      return new Promise(() => {});
    }
    return open.apply(this, args);
  };
}

test('a worker killed mid-checkpoint leaves the previous checkpoint whole', { timeout: 600_000 }, async () => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const url = `${server.url}#${SETUP}&sft_steps=2&steps=4&checkpoint_every=2&autostart=1`;
    // Service workers blocked: the route that injects the stall must see worker.js.
    const { page, consoleLines } = await openPage(browser, url, { serviceWorkers: 'block',
      prepare: (page) => injectIntoWorker(page, [{ fn: stallSecondCheckpoint }]) });
    await page.waitForFunction(() => /second checkpoint stalls/.test(document.querySelector('#progress').textContent),
      null, { timeout: 240_000 });
    const folders = await savedFolders(page);
    const [id] = Object.keys(folders)[0].split('/');
    assert.ok(folders[`${id}/step-000002`]?.includes('manifest.json'), JSON.stringify(folders));
    const cut = folders[`${id}/step-000004`];
    assert.ok(cut?.includes('model.safetensors') && !cut.includes('manifest.json'), `not mid-checkpoint: ${JSON.stringify(folders)}`);

    await page.reload(); // ends the stalled worker, as closing the tab would
    const button = await offer(page);
    assert.match(await page.textContent('#saved-runs .offer'), /saved at step 2 of 6/);
    await button.click();
    const resumed = await waitForRun(page, 240_000);
    assert.equal(resumed.error, null, consoleLines.join('\n'));
    assert.equal(resumed.resumedFrom, 2);
    assert.deepEqual(resumed.metrics.map((m) => m.step), [1, 2, 3, 4, 5, 6]);
  } finally {
    await browser.close();
    server.stop();
  }
});
