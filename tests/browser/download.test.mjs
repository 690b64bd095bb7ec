// What a learner's first minute costs: the bytes the page transfers before its first DPO step
// (gzip-compressed, as scripts/serve.mjs and any web server send them) and the time from a
// cold page load to the first DPO metrics point, on the `micro` preset with no SFT, on the
// WebGPU path (www/pkg, the build with WebGPU) and on the CPU path (www/pkg-cpu, the CPU-only
// build). Both are printed; the byte ceilings below are guards set just above today's builds
// (7.2 and 2.5 MB gzipped), not the goals (3 MB on the WebGPU path, 1 MB on the CPU path), which
// need smaller builds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, serverUrl } from './harness.mjs';

const SETUP = 'sample=sentiment&preset=micro&sft_steps=0&steps=2&batch=4&max_length=48&gen_tokens=4&eval_limit=8&autostart=1';
const CEILING_MB = { WebGPU: 7.6, CPU: 2.7 };

for (const webgpu of [true, false]) {
  const path = webgpu ? 'WebGPU' : 'CPU';
  test(`transferred bytes and time to the first DPO point, ${path} path`, { timeout: 300_000 }, async () => {
    const server = await serverUrl();
    const browser = await launch({ webgpu });
    try {
      // A fresh profile: nothing cached. The service worker's copy of the site is left out:
      // it revalidates (304) what the page fetched rather than downloading it again.
      const page = await browser.newPage({ serviceWorkers: 'block' });
      const transfers = [];
      page.on('requestfinished', async (request) => {
        const response = await request.response();
        const sizes = await request.sizes();
        transfers.push({ url: request.url(), bytes: sizes.responseBodySize,
          encoding: (await response?.allHeaders())?.['content-encoding'] ?? null });
      });
      const started = performance.now();
      // The WebGPU path asked for by name: `auto` would time both and, on SwiftShader, pick the CPU.
      await page.goto(`${server.url}#${SETUP}&backend=${webgpu ? 'webgpu' : 'auto'}`);
      await page.waitForFunction(() => window.dpoState?.error || window.dpoState?.metrics.some((m) => m.phase === 'dpo'),
        null, { timeout: 240_000, polling: 20 });
      const seconds = (performance.now() - started) / 1000;
      const state = await page.evaluate(() => ({ error: window.dpoState.error, backend: window.dpoState.backend }));
      assert.equal(state.error, null, state.error);
      assert.equal(state.backend, webgpu ? 'webgpu' : 'cpu');

      const code = transfers.filter((t) => /\.(wasm|m?js)$/.test(new URL(t.url).pathname));
      const modules = code.filter((t) => t.url.endsWith('dpo_bg.wasm'));
      // One build per path: WebGPU's (www/pkg) or the CPU-only one (www/pkg-cpu), never both.
      assert.deepEqual(modules.map((t) => new URL(t.url).pathname), [webgpu ? '/pkg/dpo_bg.wasm' : '/pkg-cpu/dpo_bg.wasm']);
      for (const wasm of modules) assert.equal(wasm.encoding, 'gzip', `${wasm.url} travels gzip-compressed`);
      const total = code.reduce((sum, t) => sum + t.bytes, 0);
      const mb = (bytes) => `${(bytes / 1e6).toFixed(2)} MB`;
      console.log(`${path} path: wasm + JS transferred before the first DPO step ${mb(total)} gzipped ` +
        `(${modules.map((t) => `${new URL(t.url).pathname} ${mb(t.bytes)}`).join(', ')}, ${code.length - modules.length} JS files); ` +
        `cold load to the first DPO metrics point ${seconds.toFixed(1)} s`);
      const ceiling = CEILING_MB[path];
      assert.ok(total / 1e6 <= ceiling, `${mb(total)} is over the ${ceiling} MB guard`);
    } finally {
      await browser.close();
      server.stop();
    }
  });
}
