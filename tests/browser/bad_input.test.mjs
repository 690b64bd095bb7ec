// A bad pairs file given through the file picker: its bad lines are listed by number and
// nothing trains, even with autostart in the URL.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { launch, openPage, serverUrl } from './harness.mjs';

const lines = [
  '{"prompt": "Review of the hotel:", "chosen": " lovely and calm.", "rejected": " noisy and dirty."}',
  '{"prompt": "Review of the cafe:", "chosen": " great coffee.", ',
  '{"prompt": "Review of the park:", "chosen": " green and quiet.", "rejected": " crowded."}',
  '{"prompt": "Review of the bike:", "chosen": " smooth ride."}',
  '{"prompt": "Review of the book:", "chosen": " gripping.", "rejected": " dull."}',
];

test('lists bad lines by number and does not train', { timeout: 120_000 }, async () => {
  const file = join(mkdtempSync(join(tmpdir(), 'dpo-bad-')), 'bad.jsonl');
  writeFileSync(file, lines.join('\n') + '\n');
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await openPage(browser, `${server.url}#preset=micro&steps=2&sft_steps=2&autostart=1`);
    await page.setInputFiles('#train-file', file);
    await page.waitForFunction(() => window.dpoState.checked.train, null, { timeout: 60_000 });
    const checked = await page.evaluate(() => window.dpoState.checked.train);
    assert.equal(checked.bad, 2);
    assert.deepEqual(checked.errors.map((e) => e.line), [2, 4]);
    assert.equal(checked.errors[1].field, 'rejected');
    const shown = await page.textContent('#data-status');
    assert.match(shown, /line 2/);
    assert.match(shown, /line 4.*rejected/);
    assert.ok(await page.isDisabled('#start'), 'Train is enabled with a bad file');
    await page.waitForTimeout(2000);
    const state = await page.evaluate(() => ({ metrics: window.dpoState.metrics.length, backend: window.dpoState.backend }));
    assert.deepEqual(state, { metrics: 0, backend: null });
  } finally {
    await browser.close();
    server.stop();
  }
});
