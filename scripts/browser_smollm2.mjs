#!/usr/bin/env node
// The largest model the page has trained: a Llama of SmolLM2-135M's shape (30 layers, width
// 576, vocabulary 49152: 135M parameters, a 540 MB folder), picked as a Hugging Face folder,
// trains LoRA adapters on WebGPU in headless Chromium (SwiftShader here) with gradient
// checkpointing; the exported adapter is then scored by the native CLI (`dpo eval --adapter`),
// which must give the page's held-out numbers. Prints seconds per step.
//   python scripts/gen_reference.py smollm2-shape /tmp/smollm2-shape    # random weights, once
//   node scripts/browser_smollm2.mjs --model /tmp/smollm2-shape [--steps 3] [--batch 1]
//        [--max-length 32] [--lora-r 16] [--backend webgpu|cpu]
// Needs www/ built (scripts/build_web.sh) and the release `dpo` (cargo build --release).
// The pairs are tests/fixtures/hf/pairs.jsonl, in the folder's tokenizer's vocabulary.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { unzipSync } from 'fflate';
import { dpoBinary, launch, openPage, root, serverUrl, waitForRun } from '../tests/browser/harness.mjs';

const { values: opts } = parseArgs({
  options: {
    model: { type: 'string' },
    steps: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1' },
    'max-length': { type: 'string', default: '32' },
    'lora-r': { type: 'string', default: '16' },
    backend: { type: 'string', default: 'webgpu' },
  },
});
if (!opts.model) throw new Error('--model DIR: a folder from `gen_reference.py smollm2-shape DIR`');
const pairs = join(root, 'tests/fixtures/hf/pairs.jsonl');
const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1e3).toFixed(0)} s`;

const server = await serverUrl();
const browser = await launch({ webgpu: opts.backend === 'webgpu' });
try {
  const hash = new URLSearchParams({
    backend: opts.backend, sft_steps: '0', steps: opts.steps, batch: opts.batch, max_length: opts['max-length'],
    lora_r: opts['lora-r'], lora_alpha: String(2 * Number(opts['lora-r'])), gradient_checkpointing: 'on',
    warmup_steps: '0', gen_tokens: '1', eval_limit: '0', checkpoint_every: '0',
  });
  const { page, consoleLines } = await openPage(browser, `${server.url}#${hash}`);
  await page.setInputFiles('#train-file', pairs);
  await page.setInputFiles('#eval-file', pairs);
  await page.waitForFunction(() => window.dpoState.checked.train && window.dpoState.checked.eval, null, { timeout: 60_000 });
  await page.check('input[name="model_source"][value="folder"]');
  await page.setInputFiles('#model-dir', opts.model);
  await page.waitForSelector('#model-status .summary', { timeout: 600_000 });
  console.log(`[${elapsed()}] ${(await page.textContent('#model-status .summary')).trim()}`);
  await page.waitForFunction(() => !document.querySelector('#start').disabled, null, { timeout: 600_000 });
  await page.click('#start');
  // Each step's line, and the status line when it changes, as they come: a cut-off run still
  // shows how far it got.
  let shown = 0;
  let status = '';
  const poll = setInterval(async () => {
    const now = await page.evaluate(() => [...document.querySelectorAll('#backend, #progress')].map((e) => e.textContent).join(' | '))
      .catch(() => status);
    if (now !== status) console.log(`[${elapsed()}] ${(status = now)}`);
    const metrics = await page.evaluate(() => window.dpoState.metrics).catch(() => []);
    for (const m of metrics.slice(shown)) {
      console.log(`[${elapsed()}] ${m.phase} step ${m.step}: loss ${m.loss.toFixed(4)}, ${(m.ms / 1e3).toFixed(1)} s`);
    }
    shown = Math.max(shown, metrics.length);
  }, 5000);
  const run = await waitForRun(page, 6 * 3_600_000);
  clearInterval(poll);
  if (run.error) throw new Error(`the run failed: ${run.error}\n${consoleLines.join('\n')}`);
  console.log(`[${elapsed()}] ${run.backend}: ${run.reason}; ${run.parameters?.text}`);
  const dpo = run.metrics.filter((m) => m.phase === 'dpo');
  const seconds = dpo.map((m) => (m.ms / 1e3).toFixed(1));
  console.log(`DPO steps: ${dpo.length}; seconds per step: ${seconds.join(', ')}`);

  // The export: PEFT's adapter folder, which the native CLI scores on the same base.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const dir = mkdtempSync(join(tmpdir(), 'dpo-smollm2-export-'));
  for (const [name, bytes] of Object.entries(unzipSync(new Uint8Array(readFileSync(await download.path()))))) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
  const adapter = join(dir, 'dpo-adapter');
  const native = spawnSync(dpoBinary, ['eval', '--model', opts.model, '--adapter', adapter, '--data', pairs,
    '--json', '--backend', 'cpu'], { encoding: 'utf8' });
  if (native.status !== 0) throw new Error(`dpo eval --adapter ${adapter}: ${native.stderr}`);
  const nativeMetrics = JSON.parse(native.stdout);
  const page_ = run.evaluation.metrics;
  console.log(`held-out logps/chosen: page ${page_['logps/chosen']}, native on the export ${nativeMetrics['logps/chosen']}`);
  const relative = Math.abs(page_['logps/chosen'] - nativeMetrics['logps/chosen']) / Math.abs(nativeMetrics['logps/chosen']);
  if (!(relative <= 1e-3)) throw new Error(`the export scores differently natively (relative ${relative})`);
  console.log(`[${elapsed()}] the exported adapter (${adapter}) loads natively and scores as in the page`);
} finally {
  await browser.close();
  server.stop();
}
