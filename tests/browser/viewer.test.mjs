// One viewer for both kinds of run: run folders written by the native `dpo train` open on the
// page (picked as a folder, dropped as a folder, or dropped as loose files) and are drawn by
// the live charts' own definitions, two of them overlaid; bad folders get a clear error; and
// the live charts come back, for the buttons and for a new run.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dpoBinary, launch, openPage, screenshot, serverUrl, trainAgain } from './harness.mjs';

// Two small CPU runs that differ in seed, β and where SFT ends, so that their steps only
// partly coincide: the overlay must align them by step.
const RUNS = [
  { name: 'micro-seed1-beta0.1', flags: ['--seed', '1', '--beta', '0.1', '--sft-steps', '3', '--steps', '5'] },
  { name: 'micro-seed2-beta0.3', flags: ['--seed', '2', '--beta', '0.3', '--sft-steps', '2', '--steps', '7'] },
];
const dir = mkdtempSync(join(tmpdir(), 'dpo-viewer-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function nativeRun({ name, flags }) {
  const out = join(dir, name);
  const run = spawnSync(dpoBinary, ['train', '--backend', 'cpu', '--preset', 'micro', '--batch', '4', '--samples', '0',
    ...flags, '--out', out], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return out;
}

const readMetrics = (folder) => readFileSync(join(folder, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));

// What each chart must draw from a metrics.jsonl, column by column: the loss chart every
// training step (SFT and DPO loss apart), the others the DPO steps; never the eval line.
function expected(metrics) {
  const steps = metrics.filter((m) => m.phase !== 'eval');
  const dpo = steps.filter((m) => m.phase === 'dpo');
  const column = (rows, key) => rows.map((m) => m[key]);
  return {
    loss: [column(steps, 'step'), steps.map((m) => (m.phase === 'sft' ? m.loss : null)), steps.map((m) => (m.phase === 'dpo' ? m.loss : null))],
    rewards: [column(dpo, 'step'), column(dpo, 'rewards/chosen'), column(dpo, 'rewards/rejected')],
    margins: [column(dpo, 'step'), column(dpo, 'rewards/margins')],
    accuracy: [column(dpo, 'step'), column(dpo, 'rewards/accuracies')],
  };
}

const viewed = (page) => page.evaluate(() => window.dpoCharts.viewedRuns());
const points = (page) => page.evaluate(() => window.dpoCharts.points());
const viewerError = (page) => page.evaluate(() => {
  const box = document.querySelector('#run-viewer .banner.error');
  return box.hidden ? '' : box.textContent;
});

// A real drop of a directory from the file system, through the DevTools protocol: the page
// receives a directory entry and walks it (webkitGetAsEntry), as with a folder dragged in.
async function dropFolder(page, path) {
  const box = await page.locator('#run-viewer summary').boundingBox();
  const cdp = await page.context().newCDPSession(page);
  const at = { x: box.x + 30, y: box.y + box.height / 2, data: { items: [], files: [path], dragOperationsMask: 1 } };
  for (const type of ['dragEnter', 'dragOver', 'drop']) await cdp.send('Input.dispatchDragEvent', { type, ...at });
  await cdp.detach();
}

function recordViolations() {
  window.cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) => window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));
}

test('run folders from `dpo train`: drawn point for point, two overlaid, bad ones refused', { timeout: 180_000 }, async (t) => {
  const folders = RUNS.map(nativeRun);
  const files = folders.map(readMetrics);
  const want = files.map(expected);
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page, consoleLines } = await openPage(browser, server.url, { viewport: { width: 1600, height: 1000 },
      prepare: (p) => p.addInitScript(recordViolations) });
    const names = ['loss', 'rewards', 'margins', 'accuracy'];

    // One run, picked as a folder: every chart holds the file's values, point for point.
    await page.setInputFiles('#run-dir', folders[0]);
    await page.waitForFunction(() => window.dpoCharts.viewedRuns()?.length === 1, null, { timeout: 10_000 });
    assert.equal(await viewerError(page), '');
    assert.deepEqual(await points(page), { loss: 8, rewards: 5, margins: 5, accuracy: 5, histogram: 0 });
    for (const name of names) {
      assert.deepEqual(await page.evaluate((n) => window.dpoCharts.drawn(n), name), want[0][name], `${name}: drawn vs metrics.jsonl`);
    }
    assert.ok(await page.isHidden('[data-chart="histogram"]'), 'a run folder has no per-pair margins to draw');
    const evaluation = files[0].find((m) => m.phase === 'eval');
    assert.ok(evaluation, 'the native run wrote its held-out evaluation');
    const first = await page.textContent('#run-viewer .viewed-runs li');
    for (const part of [RUNS[0].name, 'micro', 'sigmoid', 'β 0.1', '3 SFT + 5 DPO steps', 'batch 4', 'seed 1', 'on cpu (flex)',
      `held-out: accuracy ${evaluation['rewards/accuracies'].toFixed(2)}`]) {
      assert.ok(first.includes(part), `the caption lacks "${part}": ${first}`);
    }

    // The second run, dropped as a folder: both on the same charts, aligned by step, each run's
    // drawn rows exactly its file's, told apart by legend label and dash.
    await dropFolder(page, folders[1]);
    await page.waitForFunction(() => window.dpoCharts.viewedRuns()?.length === 2, null, { timeout: 10_000 });
    const runs = await viewed(page);
    assert.deepEqual(runs.map((r) => r.name), RUNS.map((r) => r.name));
    runs.forEach((run, i) => {
      for (const name of names) {
        assert.deepEqual(run.charts[name].drawn, want[i][name], `${run.name} ${name}: drawn vs metrics.jsonl`);
        assert.ok(run.charts[name].labels.every((label) => label.endsWith(` · ${run.name}`)), run.charts[name].labels.join());
      }
    });
    t.diagnostic(`drawn per run: ${runs.map((r) => `${r.name} ${names.map((n) => `${n} ${r.charts[n].drawn[0].length}`).join(', ')}`).join('; ')}`);
    // Steps 1-9 for the loss; DPO from step 3 (second run) or 4 (first) to 9 for the others.
    assert.deepEqual(await points(page), { loss: 9, rewards: 7, margins: 7, accuracy: 7, histogram: 0 });
    const legend = await page.textContent('[data-chart="rewards"] .u-legend');
    for (const run of RUNS) assert.ok(legend.includes(`chosen · ${run.name}`) && legend.includes(`rejected · ${run.name}`), legend);
    const markers = await page.$$eval('[data-chart="margins"] .u-marker', (els) => els.map((el) => el.style.borderStyle).filter(Boolean));
    assert.deepEqual(markers, ['solid', 'dashed']);
    assert.equal(await page.locator('#run-viewer .viewed-runs li').count(), 2);
    await screenshot(page, 'viewer-overlay.png');

    // Bad input: a folder without metrics.jsonl, and a corrupt line; the error names the
    // folder, the file and the line, and the two runs stay drawn.
    const empty = join(dir, 'no-metrics');
    mkdirSync(empty);
    copyFileSync(join(folders[0], 'train_config.json'), join(empty, 'train_config.json'));
    await page.setInputFiles('#run-dir', empty);
    await page.waitForFunction(() => !document.querySelector('#run-viewer .banner.error').hidden, null, { timeout: 10_000 });
    assert.match(await viewerError(page), /The folder “no-metrics” holds no metrics\.jsonl: pick the run folder/);
    assert.equal((await viewed(page)).length, 2);

    const corrupt = join(dir, 'corrupt');
    mkdirSync(corrupt);
    const lines = readFileSync(join(folders[0], 'metrics.jsonl'), 'utf8').split('\n');
    lines[4] = lines[4].slice(0, 40); // a line cut short in the middle of the file
    writeFileSync(join(corrupt, 'metrics.jsonl'), lines.join('\n'));
    // A third run would fit (three can be overlaid): the refusal is the file's.
    await page.setInputFiles('#run-dir', corrupt);
    await page.waitForFunction(() => /corrupt/.test(document.querySelector('#run-viewer .banner.error').textContent), null, { timeout: 10_000 });
    assert.match(await viewerError(page), /^corrupt\/metrics\.jsonl, line 5: not JSON/);
    assert.equal((await viewed(page)).length, 2);
    await screenshot(page, 'viewer-error.png');

    // Back to live charts: nothing viewed, the live (empty) charts with their own labels.
    await page.click('#run-viewer button.live');
    assert.equal(await viewed(page), null);
    assert.deepEqual(await points(page), { loss: 0, rewards: 0, margins: 0, accuracy: 0, histogram: 0 });
    assert.equal(await page.locator('#run-viewer .viewed-runs li').count(), 0);
    assert.equal(await page.evaluate(() => window.dpoCharts.plots.loss.series[1].label), 'SFT loss');

    // Just the two files dropped (no folder): one run, drawn the same.
    await page.evaluate((texts) => {
      const transfer = new DataTransfer();
      for (const [name, text] of Object.entries(texts)) transfer.items.add(new File([text], name));
      document.querySelector('#run-viewer').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, Object.fromEntries(['metrics.jsonl', 'train_config.json'].map((f) => [f, readFileSync(join(folders[1], f), 'utf8')])));
    await page.waitForFunction(() => window.dpoCharts.viewedRuns()?.length === 1, null, { timeout: 10_000 });
    const [loose] = await viewed(page);
    assert.equal(loose.name, 'run 1');
    for (const name of names) assert.deepEqual(loose.charts[name].drawn, want[1][name], `loose files ${name}`);
    assert.match(await page.textContent('#run-viewer .viewed-runs li'), /β 0\.3 · 2 SFT \+ 7 DPO steps/);

    assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'CSP violations');
    assert.deepEqual(consoleLines.filter((line) => /^(error|pageerror)/.test(line)), []);
  } finally {
    await browser.close();
    server.stop();
  }
});

test('a new run in the tab takes the charts back from viewed runs, and draws live as before', { timeout: 180_000 }, async () => {
  const folder = nativeRun({ name: 'before-live', flags: ['--seed', '3', '--sft-steps', '1', '--steps', '2'] });
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const setup = 'sample=sentiment&backend=cpu&preset=micro&sft_steps=2&steps=3&batch=2&max_length=32&gen_tokens=2&eval_limit=4';
    const { page, consoleLines } = await openPage(browser, `${server.url}#${setup}`);
    await page.setInputFiles('#run-dir', folder);
    await page.waitForFunction(() => window.dpoCharts.viewedRuns()?.length === 1, null, { timeout: 10_000 });
    const run = await trainAgain(page, 150_000);
    assert.equal(run.error, null, consoleLines.join('\n'));
    assert.equal(await viewed(page), null);
    assert.equal(await page.locator('#run-viewer .viewed-runs li').count(), 0);
    const { histogram, ...lines } = run.points;
    assert.deepEqual(lines, { loss: 5, rewards: 3, margins: 3, accuracy: 3 });
    assert.ok(histogram > 0, 'the held-out histogram is drawn');
    assert.deepEqual(await page.evaluate(() => window.dpoCharts.drawn('margins')[1]), run.metrics.filter((m) => m.phase === 'dpo').map((m) => m['rewards/margins']));
  } finally {
    await browser.close();
    server.stop();
  }
});
