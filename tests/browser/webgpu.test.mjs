// The whole path on WebGPU (SwiftShader here): train from the URL hash, watch the charts,
// export the zip, and load the exported folder with the native `dpo eval`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { dpoBinary, foreignRequests, launch, openPage, root, screenshot, serverUrl, waitForRun } from './harness.mjs';

// SwiftShader is ~10x slower than lavapipe (a tiny DPO step of 4 pairs takes ~10 s, a
// held-out pair ~1.5 s): a short run with high learning rates and no warmup, evaluated on
// 24 held-out pairs. Seed and rates were picked (natively, on the CPU backend) so that the
// margin grows steadily and is clearly positive at the end, not by luck of one batch.
const SETUP = 'sample=sentiment&backend=webgpu&preset=tiny&seed=6&sft_steps=6&steps=6&batch=4' +
  '&max_length=32&sft_lr=0.003&lr=0.005&warmup_steps=1&gen_tokens=6&eval_limit=24&autostart=1';

test('trains on WebGPU, charts it, exports a folder the CLI loads', { timeout: 900_000 }, async () => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: true });
  try {
    const url = `${server.url}#${SETUP}`;
    const { page, requests, consoleLines } = await openPage(browser, url);
    const run = await waitForRun(page, 840_000);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.equal(run.backend, 'webgpu');
    assert.match(await page.textContent('#backend'), /^Training on WebGPU — /);

    const sft = run.metrics.filter((m) => m.phase === 'sft');
    const dpo = run.metrics.filter((m) => m.phase === 'dpo');
    assert.equal(sft.length, 6);
    assert.equal(dpo.length, 6);
    assert.ok(sft.at(-1).loss < sft[0].loss, `SFT loss did not fall: ${sft[0].loss} -> ${sft.at(-1).loss}`);
    assert.ok(dpo.at(-1)['rewards/margins'] > 0, `final margin ${dpo.at(-1)['rewards/margins']}`);
    assert.ok(run.evaluation, 'no evaluation');
    assert.equal(run.evaluation.margins.length, 24);
    assert.ok(run.evaluation.metrics['rewards/margins'] > 0, `held-out margin ${run.evaluation.metrics['rewards/margins']}`);
    assert.equal(run.generations.before.length, 4);
    assert.equal(run.generations.after.length, 4);
    // Every chart holds what it should: all steps, the DPO steps, the histogram's bins.
    assert.deepEqual(
      { loss: run.points.loss, rewards: run.points.rewards, margins: run.points.margins, accuracy: run.points.accuracy },
      { loss: 12, rewards: 6, margins: 6, accuracy: 6 });
    assert.ok(run.points.histogram > 0, 'the histogram is empty');
    await screenshot(page, 'webgpu.png');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    assert.equal(download.suggestedFilename(), 'dpo-model.zip');
    const zip = unzipSync(new Uint8Array(readFileSync(await download.path())));
    const dir = mkdtempSync(join(tmpdir(), 'dpo-export-'));
    for (const [name, bytes] of Object.entries(zip)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), bytes);
    }
    const names = Object.keys(zip).sort();
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json']) {
      assert.ok(names.includes(`dpo-model/${file}`), `${file} missing from the zip: ${names}`);
    }
    const evaluated = spawnSync(dpoBinary, ['eval', '--model', join(dir, 'dpo-model'), '--data',
      join(root, 'examples/data/heldout.jsonl'), '--json'], { encoding: 'utf8' });
    assert.equal(evaluated.status, 0, `dpo eval failed: ${evaluated.stderr}`);
    const metrics = JSON.parse(evaluated.stdout);
    assert.ok(Number.isFinite(metrics.loss), evaluated.stdout);

    assert.deepEqual(foreignRequests(requests, url), [], 'the page requested another origin');
  } finally {
    await browser.close();
    server.stop();
  }
});
