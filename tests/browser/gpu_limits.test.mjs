// A model too large for the WebGPU adapter's buffer limits is refused before training, with
// the buffer, its size and the limit named. First the estimate itself (www/gpu-limits.js, in
// Node), then the page with the adapter's limits faked low inside the training worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { facts, initSync } from '../../www/pkg/dpo.js';
import { formatBytes, largestBuffers, limitProblem, modelShape, setFacts } from '../../www/gpu-limits.js';
import { METRIC, unknownMetrics } from '../../www/metric-names.js';
import { injectIntoWorker, launch, openPage, root, serverUrl, trainAgain, waitForRun } from './harness.mjs';

// The presets' shapes and the head's chunk size come from the library, as in the worker.
initSync({ module: readFileSync(join(root, 'www/pkg/dpo_bg.wasm')) });
setFacts(facts());

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const swiftShader = { maxStorageBufferBindingSize: GiB, maxBufferSize: 4 * GiB };
// The least a WebGPU adapter may offer (the spec's defaults).
const smallest = { maxStorageBufferBindingSize: 128 * MiB, maxBufferSize: 256 * MiB };

test('the page reads only metrics the library reports', () => {
  assert.deepEqual(unknownMetrics(facts().metrics), []);
  assert.deepEqual(unknownMetrics(facts().metrics.filter((name) => name !== METRIC.margins)), [METRIC.margins]);
});

test('the largest buffers of each model, against the limits', () => {
  assert.deepEqual([formatBytes(GiB), formatBytes(1.2 * GiB), formatBytes(1536), formatBytes(100)],
    ['1 GiB', '1.2 GiB', '1.5 KiB', '100 bytes']);

  const gpt2 = modelShape({ preset: 'gpt2-124m' });
  assert.deepEqual(gpt2, { vocab: 50257, width: 768, layers: 12, heads: 12, positions: 1024, inner: 3072, from: 'preset' });
  const buffers = largestBuffers(gpt2, { batch: 16, max_length: 1024 });
  // 32 sequences x 1024 positions x 3072 floats; attention scores in blocks of at most 2^22
  // (10 query rows: 15 MiB, where the whole matrix would be 1.5 GiB); logits capped at 2^24
  // floats (333 rows).
  assert.deepEqual(buffers[0], { what: 'the MLP activation tensor (32768 positions × 3072)',
    bytes: 32768 * 3072 * 4, cause: 'batch' });
  assert.deepEqual(buffers.find((b) => b.what.startsWith('a block of attention')),
    { what: 'a block of attention scores (32 sequences × 12 heads × 10 × 1024 positions)', bytes: 32 * 12 * 10 * 1024 * 4, cause: 'batch' });
  assert.equal(buffers.find((b) => b.what.startsWith('a chunk of logits')).bytes, 333 * 50257 * 4);
  assert.equal(limitProblem(gpt2, { batch: 16, max_length: 1024 }, swiftShader), null);
  assert.equal(limitProblem(gpt2, { batch: 48, max_length: 1024 }, swiftShader).message,
    "the MLP activation tensor (98304 positions × 3072) needs 1.1 GiB but this GPU's maxStorageBufferBindingSize is 1 GiB");
  assert.equal(limitProblem(gpt2, { batch: 8, max_length: 512 }, swiftShader), null);
  // The model's own buffers come first: a smaller batch cannot fix them.
  const embedding = limitProblem(gpt2, { batch: 16, max_length: 1024 }, { maxStorageBufferBindingSize: 100 * MiB, maxBufferSize: GiB });
  assert.equal(embedding.message, "the token embedding (50257 tokens × 768) needs 147.2 MiB but this GPU's maxStorageBufferBindingSize is 100 MiB");
  assert.equal(embedding.smaller, 'a smaller preset');
  // Adapters leave every buffer as it is, and the refusal says so.
  const lora = { batch: 16, max_length: 1024, lora: { r: 8, targets: [] } };
  assert.deepEqual(largestBuffers(gpt2, lora), largestBuffers(gpt2, { batch: 16, max_length: 1024 }));
  assert.equal(limitProblem(gpt2, lora, { maxStorageBufferBindingSize: 100 * MiB, maxBufferSize: GiB }).message,
    `${embedding.message}; LoRA adapters do not make it smaller`);
  // The tighter limit is the one named.
  assert.match(limitProblem(gpt2, { batch: 2, max_length: 64 }, { maxStorageBufferBindingSize: GiB, maxBufferSize: 64 * MiB }).message,
    /needs 147\.2 MiB but this GPU's maxBufferSize is 64 MiB$/);

  // The page's presets fit any adapter at the page's defaults (batch 16, 128 tokens).
  for (const preset of ['micro', 'tiny', 'small']) {
    assert.equal(limitProblem(modelShape({ preset }), { batch: 16, max_length: 128 }, smallest), null, preset);
  }
  assert.equal(modelShape({ preset: 'huge' }), null, 'an unknown preset is the wasm\'s to refuse');

  // A picked folder's config.json (bytes, as the worker has it): the committed tiny Llama.
  const config = readFileSync(join(root, 'tests/fixtures/hf/llama/config.json'));
  const llama = modelShape({ preset: 'tiny' }, new Uint8Array(config));
  assert.deepEqual(llama, { vocab: 300, width: 32, heads: 4, inner: 48, from: 'model' });
  assert.equal(limitProblem(llama, { batch: 1, max_length: 8 }, { maxStorageBufferBindingSize: 32 * 1024 }).smaller, 'a smaller model');
  assert.equal(modelShape({}, new TextEncoder().encode('{not json')), null);
});

// Inside the worker: the adapter reports `limits` lowered, and every device request is logged
// (there must be none: the refusal comes first).
function lowLimits(lowered) {
  const requestAdapter = GPU.prototype.requestAdapter;
  GPU.prototype.requestAdapter = async function (...args) {
    const adapter = await requestAdapter.apply(this, args);
    if (adapter) {
      const real = adapter.limits;
      const limits = new Proxy(real, { get: (target, key) => (key in lowered ? lowered[key] : target[key]) });
      Object.defineProperty(adapter, 'limits', { value: limits });
    }
    return adapter;
  };
  const requestDevice = GPUAdapter.prototype.requestDevice;
  GPUAdapter.prototype.requestDevice = function (...args) {
    console.warn('test: a GPU device was requested');
    return requestDevice.apply(this, args);
  };
}

const SETUP = 'sample=sentiment&preset=tiny&sft_steps=1&steps=1&batch=2&max_length=32&gen_tokens=1&eval_limit=2';

test('the page refuses a model past the adapter limits, and auto trains it on the CPU', { timeout: 180_000 }, async () => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: true });
  try {
    const { page, consoleLines } = await openPage(browser, `${server.url}#${SETUP}&backend=webgpu&autostart=1`, {
      serviceWorkers: 'block', prepare: (p) => injectIntoWorker(p, [{ fn: lowLimits, arg: { maxStorageBufferBindingSize: 32 * 1024 } }]) });
    const refused = await waitForRun(page, 60_000);
    assert.equal(refused.error, "this model does not fit the GPU: the token embedding (4096 tokens × 128) needs 2 MiB but this " +
      "GPU's maxStorageBufferBindingSize is 32 KiB. Choose the CPU backend, or a smaller preset");
    assert.equal(await page.textContent('#error'), refused.error);
    assert.deepEqual(refused.metrics, []);

    // The same worker (nothing went wrong in it): `auto` takes the CPU and says why.
    await page.selectOption('[name="backend"]', 'auto');
    const run = await trainAgain(page, 120_000);
    assert.equal(run.error, null, consoleLines.join('\n'));
    assert.equal(run.backend, 'cpu');
    // (then the CPU backend's threads: "; 2 threads", or one where the page is not isolated)
    assert.equal(run.reason.split('; ')[0], "WebGPU cannot hold this model (the token embedding (4096 tokens × 128) needs 2 MiB " +
      "but this GPU's maxStorageBufferBindingSize is 32 KiB)");
    assert.equal(run.metrics.length, 2);

    // A picked folder is measured by its config.json: the tiny Llama's embedding is 37.5 KiB.
    await page.selectOption('[name="backend"]', 'webgpu');
    await page.setInputFiles('#model-dir', join(root, 'tests/fixtures/hf/llama'));
    await page.waitForSelector('#model-status .summary', { timeout: 30_000 });
    const folder = await trainAgain(page, 60_000);
    assert.equal(folder.error, "this model does not fit the GPU: the token embedding (300 tokens × 32) needs 37.5 KiB but this " +
      "GPU's maxStorageBufferBindingSize is 32 KiB. Choose the CPU backend, or a smaller model");
    assert.deepEqual(consoleLines.filter((line) => line.includes('a GPU device was requested')), [],
      'a device was requested before the refusal');
  } finally {
    await browser.close();
    server.stop();
  }
});
