// The page and the native CLI compute the same first step: same data, seed and settings on
// the CPU backend (flex in wasm vs flex natively, which differ only in summation order).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dpoBinary, launch, openPage, root, serverUrl, waitForRun } from './harness.mjs';

test('first step matches `dpo train` to 1e-3', { timeout: 300_000 }, async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'dpo-native-')), 'run');
  const native = spawnSync(dpoBinary, ['train', '--backend', 'cpu', '--preset', 'micro', '--seed', '5',
    '--batch', '4', '--sft-steps', '1', '--steps', '1', '--samples', '0', '--json', '--out', out,
    '--data', join(root, 'www/samples/train.jsonl'), '--eval-data', join(root, 'www/samples/heldout.jsonl')],
  { encoding: 'utf8' });
  assert.equal(native.status, 0, native.stderr);
  const first = JSON.parse(native.stdout.split('\n').find((line) => line.startsWith('{')));

  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await openPage(browser,
      `${server.url}#sample=sentiment&backend=cpu&preset=micro&seed=5&batch=4&sft_steps=1&steps=1&gen_tokens=4&autostart=1`);
    const run = await waitForRun(page, 240_000);
    assert.equal(run.error, null, run.error);
    const web = run.metrics[0];
    assert.equal(web.step, 1);
    assert.equal(web.phase, first.phase);
    for (const key of ['loss', 'logps/chosen', 'grad_norm']) {
      const relative = Math.abs(web[key] - first[key]) / Math.max(Math.abs(first[key]), 1e-12);
      t.diagnostic(`${key}: page ${web[key]}, native ${first[key]}, relative difference ${relative.toExponential(1)}`);
      assert.ok(relative <= 1e-3, `${key}: page ${web[key]} vs native ${first[key]} (relative ${relative})`);
    }
  } finally {
    await browser.close();
    server.stop();
  }
});
