// The site works offline once loaded: sw.js caches every page, module, the worker, the wasm,
// the vendored libraries and the samples. The test loads the lesson once, then takes the
// network away (the browser offline and the server stopped) and uses every page, training a
// model on the CPU backend from cached files only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, root, serverUrl } from './harness.mjs';

const www = join(root, 'www');

test('the offline list names every file the site serves', () => {
  const sw = readFileSync(join(www, 'sw.js'), 'utf8');
  const listed = new Set([...sw.slice(sw.indexOf('const FILES'), sw.indexOf('];')).matchAll(/'([^']+)'/g)].map((m) => m[1]));
  const wanted = [
    ...readdirSync(www).filter((f) => /\.(html|js|css)$/.test(f) && f !== 'sw.js'),
    ...['pkg/dpo.js', 'pkg/dpo_bg.wasm', 'samples/reward_kl.json'],
    ...readdirSync(join(www, 'pkg-cpu'), { recursive: true }).filter((f) => /\.(js|wasm)$/.test(f)).map((f) => `pkg-cpu/${f}`),
    ...['vendor', 'samples'].flatMap((dir) => readdirSync(join(www, dir)).map((f) => `${dir}/${f}`)),
  ];
  assert.deepEqual(wanted.filter((f) => !listed.has(f)), [], 'files missing from sw.js FILES');
  assert.deepEqual([...listed].filter((f) => f !== './' && !wanted.includes(f)), [], 'sw.js lists files that do not exist');
});

test('every page works offline after one visit, training included', { timeout: 180_000 }, async (t) => {
  const server = await serverUrl({ own: true }); // this test stops it
  const browser = await launch({ webgpu: false });
  try {
    const context = await browser.newContext({ viewport: { width: 1200, height: 900 } });
    const page = await context.newPage();
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(`${m.type()}: ${m.text()}`));
    await page.goto(`${server.url}lesson.html`);
    // Installed means precached: the install step waits for every file.
    const cached = await page.evaluate(async () => {
      await Promise.race([navigator.serviceWorker.ready, new Promise((resolve, reject) =>
        setTimeout(() => reject(new Error('no service worker became active within 60 s')), 60_000))]);
      const keys = await (await caches.open('dpo-offline-v1')).keys();
      return keys.map((request) => new URL(request.url).pathname);
    });
    t.diagnostic(`${cached.length} files cached`);
    for (const file of ['/lesson.html', '/worker.js', '/pkg-cpu/dpo_bg.wasm', '/vendor/uPlot.esm.js', '/samples/train.jsonl']) {
      assert.ok(cached.includes(file), `${file} is not cached: ${cached.join(' ')}`);
    }
    // This browser has no WebGPU: the WebGPU build is not downloaded for the offline copy.
    assert.ok(!cached.includes('/pkg/dpo_bg.wasm'), 'the WebGPU build was cached on a browser without WebGPU');

    server.stop();
    await context.setOffline(true);
    // The server is gone: whatever loads now comes from the cache.
    await page.reload();
    assert.equal(await page.textContent('#we-mean-loss'), '0.6262');
    const run = await page.evaluate(async () => {
      const el = document.querySelector('dpo-trainer');
      for (const [name, value] of [['backend', 'cpu'], ['sft-steps', '2'], ['steps', '2'], ['eval-limit', '4']]) el.setAttribute(name, value);
      const done = await el.start();
      return { steps: done.metrics.length, backend: el.backend, evaluated: done.evaluation?.margins.length };
    });
    assert.deepEqual(run, { steps: 4, backend: 'cpu', evaluated: 4 }, consoleLines.join('\n'));

    // The other pages, never visited before: precached. Both check pairs in their workers.
    await page.goto(`${server.url}embed.html`);
    await page.waitForFunction(() => [...document.querySelectorAll('dpo-trainer')]
      .every((el) => /✓ train\.jsonl: 2000 pairs/.test(el.shadowRoot.querySelector('.status').textContent)), null, { timeout: 60_000 });
    await page.goto(`${server.url}index.html#sample=sentiment&preset=micro`);
    await page.waitForFunction(() => window.dpoState?.checked.train, null, { timeout: 60_000 });
    assert.equal(await page.evaluate(() => window.dpoState.checked.train.pairs), 2000);
  } finally {
    await browser.close();
    server.stop();
  }
});
