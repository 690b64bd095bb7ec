#!/usr/bin/env node
// ms/step of a preset (tiny by default) in the browser next to the native build, on this
// machine, one backend at a time:
//   node scripts/bench_web.mjs [--backend webgpu|cpu] [--preset tiny] [--sft-steps 5]
//                              [--steps 4] [--batch 8] [--max-length 64]
// webgpu (default): the page on WebGPU against native wgpu. cpu: the page's CPU-only module
// with threads (the page cross-origin isolated, one thread per core the browser reports) and
// on one thread (not isolated), against the native CPU backend (rayon on every core).
// Needs www/ built (scripts/build_web.sh) and target/release/dpo (cargo build --release).
// Reports the median `ms` of SFT steps after the first two and of DPO steps after the first
// (those compile shaders); both sides train the same workload from the same data and seed.
// SwiftShader (the browser's WebGPU here) and lavapipe (native Vulkan here) are CPU
// rasterisers: on a machine with a GPU both numbers drop by orders of magnitude. Here the
// WebGPU comparison takes ~10 minutes (the first native run also autotunes its kernels).
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
    backend: { type: 'string', default: 'webgpu' },
  },
});
if (!['webgpu', 'cpu'].includes(opts.backend)) throw new Error(`--backend: webgpu or cpu, not ${opts.backend}`);
const workload = `preset ${opts.preset}, batch ${opts.batch}, max_length ${opts['max-length']}, ` +
  `${opts['sft-steps']} SFT + ${opts.steps} DPO steps`;

function native(backend) {
  const out = join(mkdtempSync(join(tmpdir(), 'dpo-bench-')), 'run');
  const run = spawnSync(dpoBinary, ['train', '--backend', backend, '--preset', opts.preset,
    '--sft-steps', opts['sft-steps'], '--steps', opts.steps, '--batch', opts.batch,
    '--max-length', opts['max-length'], '--samples', '0', '--json', '--out', out,
    '--data', join(root, 'examples/data/train.jsonl'), '--eval-data', join(root, 'examples/data/heldout.jsonl')],
  { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (run.status !== 0) throw new Error(`dpo train failed: ${run.stderr}`);
  const device = (run.stdout + run.stderr).split('\n').find((line) => line.startsWith('backend:')) ?? '';
  const metrics = run.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line));
  return { ...phaseMedians(metrics), device };
}

async function browser(backend, isolated = true) {
  const server = await serverUrl({ isolated });
  const chromium = await launch({ webgpu: backend === 'webgpu' });
  try {
    const hash = `sample=sentiment&backend=${backend}&preset=${opts.preset}&sft_steps=${opts['sft-steps']}` +
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
    return { ...phaseMedians(run.metrics), device: run.reason, threads: run.threads };
  } finally {
    await chromium.close();
    server.stop();
  }
}

const row = (name, r) => `${name.padEnd(22)}${r.sft.toFixed(0).padStart(8)}${r.dpo.toFixed(0).padStart(8)}   ${r.device}`;
const ratio = (name, a, b, what) =>
  `${name.padEnd(22)}${(a.sft / b.sft).toFixed(2).padStart(7)}x${(a.dpo / b.dpo).toFixed(2).padStart(7)}x   ${what}`;

console.log(`workload: ${workload}`);
console.log(`${''.padEnd(22)}${'SFT ms'.padStart(8)}${'DPO ms'.padStart(8)}   (median per step)`);
if (opts.backend === 'webgpu') {
  const web = await browser('webgpu');
  const gpu = native('wgpu');
  console.log(row('browser WebGPU', web));
  console.log(row('native wgpu', gpu));
  console.log(ratio('ratio', web, gpu, 'browser / native'));
} else {
  const threaded = await browser('cpu', true);
  const single = await browser('cpu', false);
  const cpu = native('cpu');
  console.log(row(`browser CPU ${threaded.threads} threads`, threaded));
  console.log(row(`browser CPU ${single.threads} thread`, single));
  console.log(row('native cpu', cpu));
  console.log(ratio('ratio threads', threaded, cpu, 'browser with threads / native'));
  console.log(ratio('ratio one thread', single, threaded, 'browser on one thread / with threads'));
}
