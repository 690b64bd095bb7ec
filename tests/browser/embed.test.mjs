// The embedding example (embed.html): two <dpo-trainer> elements, β 0.05 and 0.5, trained at
// once on the CPU backend (micro preset, 40 + 60 steps, as the page sets them) — one started from the
// keyboard, one through the JS API — and both plots hold the runs' real numbers and draw them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openPage, screenshot, serverUrl } from './harness.mjs';

// Every dpo-* event, in order, as {type, id, detail summary}: recorded from the first script on.
function recordEvents() {
  window.embedEvents = [];
  for (const type of ['dpo-start', 'dpo-progress', 'dpo-done', 'dpo-error']) {
    document.addEventListener(type, (event) => window.embedEvents.push({
      type, id: event.target.id, step: event.detail.metrics?.step ?? null,
      stopped: event.detail.stopped ?? null, message: event.detail.message ?? null,
    }));
  }
}

// The focused element, looking inside shadow roots.
const focused = (page) => page.evaluate(() => {
  let el = document.activeElement;
  const host = el?.id ?? null;
  while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
  const style = el ? getComputedStyle(el) : null;
  return { host, name: el?.getAttribute('name'), outline: style?.outlineStyle, outlineWidth: style?.outlineWidth };
});

// What one trainer ran and drew: metrics, the plots' own data, and how many canvas pixels
// carry each series' colour (drawn lines, not an empty canvas).
const inspect = (page, id) => page.evaluate(async (id) => {
  const el = document.getElementById(id);
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
  const pixels = (chart, hex) => {
    const canvas = el.shadowRoot.querySelector(`[data-chart="${chart}"] canvas`);
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    let count = 0;
    for (let i = 0; i < data.length; i += 4) {
      if (Math.abs(data[i] - r) < 24 && Math.abs(data[i + 1] - g) < 24 && Math.abs(data[i + 2] - b) < 24 && data[i + 3] > 200) count++;
    }
    return count;
  };
  return {
    backend: el.backend,
    metrics: el.metrics,
    rewards: el.charts.drawn('rewards'),
    margins: el.charts.drawn('margins'),
    pixels: { chosen: pixels('rewards', '#1a7f37'), rejected: pixels('rewards', '#cf222e'), margin: pixels('margins', '#0969da') },
    result: el.shadowRoot.querySelector('.result').textContent,
  };
}, id);

test('two embedded trainers train side by side and draw their rewards', { timeout: 150_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const started = Date.now();
    const { page, consoleLines } = await openPage(browser, `${server.url}embed.html`, {
      serviceWorkers: 'block', prepare: (p) => p.addInitScript(recordEvents) });
    const trainButton = (id) => page.locator(`#${id}`).getByRole('button', { name: 'Train' });
    for (const id of ['low', 'high']) await trainButton(id).waitFor({ state: 'visible' });
    await page.waitForFunction(() => [...document.querySelectorAll('dpo-trainer')]
      .every((el) => !el.shadowRoot.querySelector('[name="start"]').disabled), null, { timeout: 60_000 });

    // The first trainer from the keyboard: Tab to its Train button, which shows its focus ring.
    let at;
    for (let i = 0; i < 20; i++) {
      await page.keyboard.press('Tab');
      at = await focused(page);
      if (at.host === 'low' && at.name === 'start') break;
    }
    assert.deepEqual([at.host, at.name], ['low', 'start'], 'Tab never reached the first Train button');
    assert.notEqual(at.outline, 'none', 'the focused Train button has no visible outline');
    await page.keyboard.press('Enter');
    // The second through the documented JS API.
    await page.evaluate(() => { window.highRun = document.getElementById('high').start(); });

    await page.waitForFunction(() => window.embedEvents.filter((e) => e.type === 'dpo-done' || e.type === 'dpo-error').length >= 2,
      null, { timeout: 120_000, polling: 500 });
    t.diagnostic(`both runs took ${((Date.now() - started) / 1000).toFixed(1)} s including page load`);
    const events = await page.evaluate(() => window.embedEvents);
    assert.deepEqual(events.filter((e) => e.type === 'dpo-error'), [], consoleLines.join('\n'));
    const apiResult = await page.evaluate(async () => (await window.highRun).metrics.length);

    const runs = { low: await inspect(page, 'low'), high: await inspect(page, 'high') };
    for (const [id, run] of Object.entries(runs)) {
      const own = events.filter((e) => e.id === id);
      assert.equal(run.backend, 'cpu', `${id}: backend`);
      const sft = run.metrics.filter((m) => m.phase === 'sft');
      const dpo = run.metrics.filter((m) => m.phase === 'dpo');
      // As the page asks: sft-steps="40" steps="60".
      assert.deepEqual([sft.length, dpo.length], [40, 60], `${id}: steps`);
      assert.equal(own.filter((e) => e.type === 'dpo-start').length, 1, `${id}: dpo-start`);
      assert.deepEqual(own.filter((e) => e.type === 'dpo-progress').map((e) => e.step), run.metrics.map((m) => m.step), `${id}: dpo-progress`);
      assert.deepEqual(own.filter((e) => e.type === 'dpo-done').map((e) => e.stopped), [false], `${id}: dpo-done`);
      // Policy = frozen reference at the first DPO step: the loss is log 2, whatever β.
      assert.ok(Math.abs(dpo[0].loss - Math.LN2) < 1e-3, `${id}: first DPO loss ${dpo[0].loss}`);
      // The plots hold exactly the run's DPO numbers...
      assert.deepEqual(run.rewards, [dpo.map((m) => m.step), dpo.map((m) => m['rewards/chosen']), dpo.map((m) => m['rewards/rejected'])], `${id}: rewards plot`);
      assert.deepEqual(run.margins, [dpo.map((m) => m.step), dpo.map((m) => m['rewards/margins'])], `${id}: margins plot`);
      assert.ok(new Set(dpo.map((m) => m['rewards/margins'].toFixed(6))).size > 10, `${id}: the margins barely change`);
      // ... and the canvases show them.
      for (const [series, count] of Object.entries(run.pixels)) assert.ok(count > 100, `${id}: ${series} line has ${count} pixels`);
      assert.match(run.result, /^Held-out \(64 pairs\): accuracy \d\.\d\d, margin [+−]\d/);
      t.diagnostic(`${id}: final margin ${dpo.at(-1)['rewards/margins'].toFixed(4)}, ${run.result}, pixels ${JSON.stringify(run.pixels)}`);
    }
    assert.equal(apiResult, runs.high.metrics.length, 'start() resolved with another run');
    // Same seed and data: identical SFT; then β alone makes the DPO runs differ.
    assert.deepEqual(runs.low.metrics.filter((m) => m.phase === 'sft').map((m) => m.loss),
      runs.high.metrics.filter((m) => m.phase === 'sft').map((m) => m.loss));
    assert.notEqual(runs.low.metrics.at(-1)['rewards/chosen'], runs.high.metrics.at(-1)['rewards/chosen']);
    // The page's own dpo-progress listener saw both.
    assert.match(await page.textContent('#compare'), /β = 0\.05: margin .*β = 0\.5: margin|β = 0\.5: margin .*β = 0\.05: margin/);
    await screenshot(page, 'embed.png');
  } finally {
    await browser.close();
    server.stop();
  }
});

test('mountTrainer puts a configured trainer on a page', { timeout: 60_000 }, async () => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await openPage(browser, `${server.url}embed.html`, { serviceWorkers: 'block' });
    const mounted = await page.evaluate(async () => {
      const { mountTrainer } = await import('./dpo-trainer.js');
      const el = mountTrainer(document.body, { sftSteps: 3, beta: 0.25, dataset: 'standard', autostart: false });
      return { tag: el.tagName, sft: el.getAttribute('sft-steps'), beta: el.shadowRoot.querySelector('[name="beta"]').value,
        dataset: el.shadowRoot.querySelector('[name="dataset"]').value, autostart: el.hasAttribute('autostart') };
    });
    assert.deepEqual(mounted, { tag: 'DPO-TRAINER', sft: '3', beta: '0.25', dataset: 'standard', autostart: false });
  } finally {
    await browser.close();
    server.stop();
  }
});
