#!/usr/bin/env node
// ms/step of the tiny preset in the browser on WebGPU next to native wgpu, on this machine.
//   node scripts/bench_web.mjs [--sft-steps 4] [--steps 4] [--batch 8] [--max-length 64]
// Needs www/ built (scripts/build_web.sh) and target/release/dpo (cargo build --release).
// Reports the median `ms` of SFT steps after the first two and of DPO steps after the first
// (those compile shaders); both sides train the same workload from the same data and seed.
// SwiftShader (the browser's WebGPU here) and lavapipe (native Vulkan here) are CPU
// rasterisers: on a machine with a GPU both numbers drop by orders of magnitude. Here the
// whole comparison takes ~10 minutes (the first native run also autotunes its kernels).
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dpoBinary, launch, openPage, phaseMedians, root, serverUrl, waitForRun } from '../tests/browser/harness.mjs';

const { values: opts } = parseArgs({
  options: {
    'sft-steps': { type: 'string', default: '5' },
    steps: { type: 'string', default: '4' },
    batch: { type: 'string', default: '8' },
    'max-length': { type: 'string', default: '64' },
    preset: { type: 'string', default: 'tiny' },
  },
});
const workload = `preset ${opts.preset}, batch ${opts.batch}, max_length ${opts['max-length']}, ` +
  `${opts['sft-steps']} SFT + ${opts.steps} DPO steps`;

function native() {
  const out = join(mkdtempSync(join(tmpdir(), 'dpo-bench-')), 'run');
  const run = spawnSync(dpoBinary, ['train', '--backend', 'wgpu', '--preset', opts.preset,
    '--sft-steps', opts['sft-steps'], '--steps', opts.steps, '--batch', opts.batch,
    '--max-length', opts['max-length'], '--samples', '0', '--json', '--out', out,
    '--data', join(root, 'examples/data/train.jsonl'), '--eval-data', join(root, 'examples/data/heldout.jsonl')],
  { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`dpo train failed: ${run.stderr}`);
  const device = (run.stdout + run.stderr).split('\n').find((line) => line.startsWith('backend:')) ?? '';
  const metrics = run.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
  return { ...phaseMedians(metrics), device };
}

async function browser() {
  const server = await serverUrl();
  const chromium = await launch({ webgpu: true });
  try {
    const hash = `sample=sentiment&backend=webgpu&preset=${opts.preset}&sft_steps=${opts['sft-steps']}` +
      `&steps=${opts.steps}&batch=${opts.batch}&max_length=${opts['max-length']}&gen_tokens=1&autostart=1`;
    const { page } = await openPage(chromium, `${server.url}#${hash}`);
    // Stop as soon as the last step is in: generations and evaluation are not the benchmark.
    const total = Number(opts['sft-steps']) + Number(opts.steps);
    await page.waitForFunction((n) => window.dpoState.metrics.length >= n || window.dpoState.error,
      total, { timeout: 3_600_000, polling: 1000 });
    const run = await page.evaluate(() => window.dpoState);
    if (run.error) throw new Error(run.error);
    await page.click('#stop').catch(() => {});
    await waitForRun(page, 600_000).catch(() => {});
    return { ...phaseMedians(run.metrics), device: run.reason };
  } finally {
    await chromium.close();
    server.stop();
  }
}

console.log(`workload: ${workload}`);
const web = await browser();
const gpu = native();
const row = (name, r) => `${name.padEnd(16)}${r.sft.toFixed(0).padStart(8)}${r.dpo.toFixed(0).padStart(8)}   ${r.device}`;
console.log(`${''.padEnd(16)}${'SFT ms'.padStart(8)}${'DPO ms'.padStart(8)}   (median per step)`);
console.log(row('browser WebGPU', web));
console.log(row('native wgpu', gpu));
console.log(`${'ratio'.padEnd(16)}${(web.sft / gpu.sft).toFixed(2).padStart(7)}x${(web.dpo / gpu.dpo).toFixed(2).padStart(7)}x   browser / native`);
