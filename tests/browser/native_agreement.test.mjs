// The page and the native CLI run the same training: same data, seed and settings on the CPU
// backend (flex in wasm vs flex natively, which differ only in summation order) give the same
// first steps, the same held-out split and the same held-out evaluation, both with a held-out
// file and without one (then both hold out the last tenth of the training pairs); the page with
// gradient checkpointing on gives the numbers of the CLI's whole backward pass; LoRA adapters on
// f16 base weights give the CLI's numbers with the same settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dpoBinary, launch, openPage, root, serverUrl, waitForRun } from './harness.mjs';

const SETTINGS = { preset: 'micro', seed: '5', batch: '4', sft_steps: '1', steps: '1' };

function nativeRun(dataArgs) {
  const out = join(mkdtempSync(join(tmpdir(), 'dpo-native-')), 'run');
  const flags = Object.entries(SETTINGS).flatMap(([name, value]) => [`--${name.replace('_', '-')}`, value]);
  const native = spawnSync(dpoBinary, ['train', '--backend', 'cpu', ...flags, '--samples', '0', '--json',
    '--out', out, ...dataArgs], { encoding: 'utf8' });
  assert.equal(native.status, 0, native.stderr);
  return native.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
}

// `data`: a shipped sample's name, or the path of a training file given through the file
// picker (then the page has no held-out file); `extra`: settings only the page gets.
async function pageRun(data, extra) {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const sample = data.sample ? { sample: data.sample } : {};
    const settings = new URLSearchParams({ ...sample, backend: 'cpu', ...SETTINGS, ...extra, gen_tokens: '4', autostart: '1' });
    const { page } = await openPage(browser, `${server.url}#${settings}`);
    if (data.trainFile) await page.setInputFiles('#train-file', data.trainFile);
    const run = await waitForRun(page, 240_000);
    assert.equal(run.error, null, run.error);
    return run;
  } finally {
    await browser.close();
    server.stop();
  }
}

function assertClose(t, what, web, native) {
  for (const key of ['loss', 'logps/chosen', what === 'evaluation' ? 'rewards/margins' : 'grad_norm']) {
    const relative = Math.abs(web[key] - native[key]) / Math.max(Math.abs(native[key]), 1e-12);
    t.diagnostic(`${what} ${key}: page ${web[key]}, native ${native[key]}, relative difference ${relative.toExponential(1)}`);
    assert.ok(relative <= 1e-3 || Math.abs(web[key] - native[key]) <= 1e-6,
      `${what} ${key}: page ${web[key]} vs native ${native[key]} (relative ${relative})`);
  }
}

async function agree(t, nativeData, pageData, heldOutPairs, pageExtra = {}) {
  const native = nativeRun(nativeData);
  const web = await pageRun(pageData, pageExtra);
  const checkpointing = /with gradient checkpointing/.test(web.parameters?.text);
  assert.equal(checkpointing, pageExtra.gradient_checkpointing === 'on', `parameters line: ${web.parameters?.text}`);
  const base = web.parameters?.text.match(/base weights in (\w+)/)?.[1];
  assert.equal(base, pageExtra.base_precision, `parameters line: ${web.parameters?.text}`);
  const first = native[0];
  assert.equal(web.metrics[0].step, 1);
  assert.equal(web.metrics[0].phase, first.phase);
  assertClose(t, 'step 1', web.metrics[0], first);
  const evaluation = native.find((m) => m.phase === 'eval');
  assert.ok(evaluation, 'the native run evaluated');
  assert.equal(web.evaluation.margins.length, heldOutPairs, 'held-out pairs');
  assertClose(t, 'evaluation', web.evaluation.metrics, evaluation);
}

test('with a held-out file: first step and evaluation match `dpo train` to 1e-3', { timeout: 300_000 }, async (t) => {
  await agree(t, ['--data', join(root, 'www/samples/train.jsonl'), '--eval-data', join(root, 'www/samples/heldout.jsonl')],
    { sample: 'sentiment' }, 200);
});

test('without one: both hold out the same last tenth and match `dpo train` to 1e-3', { timeout: 300_000 }, async (t) => {
  const train = join(root, 'www/samples/train.jsonl');
  await agree(t, ['--data', train], { trainFile: train }, 200);
});

test('gradient checkpointing in the page: the numbers of the whole backward pass', { timeout: 300_000 }, async (t) => {
  await agree(t, ['--data', join(root, 'www/samples/train.jsonl'), '--eval-data', join(root, 'www/samples/heldout.jsonl')],
    { sample: 'sentiment' }, 200, { gradient_checkpointing: 'on' });
});

test('LoRA on f16 base weights in the page: the numbers of `dpo train --base-precision f16`', { timeout: 300_000 }, async (t) => {
  await agree(t, ['--data', join(root, 'www/samples/train.jsonl'), '--eval-data', join(root, 'www/samples/heldout.jsonl'),
    '--lora-r', '4', '--base-precision', 'f16'], { sample: 'sentiment' }, 200, { lora_r: '4', base_precision: 'f16' });
});
