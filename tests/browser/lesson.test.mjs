// The lesson page (lesson.html): the live worked example, the reward-vs-KL chart drawn from a
// data file, and the site on a phone-sized screen and from the keyboard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, openPage, root, screenshot, serverUrl } from './harness.mjs';

// The worked example's arithmetic, written again here so the page is checked against an
// independent implementation: mean over pairs of each loss of h = chosen - rejected log-ratio.
const expectedLoss = ({ pc, pr, rc, rr }, beta, loss) => {
  const each = pc.map((_, i) => {
    const h = (pc[i] - rc[i]) - (pr[i] - rr[i]);
    if (loss === 'hinge') return Math.max(0, 1 - beta * h);
    if (loss === 'ipo') return (h - 1 / (2 * beta)) ** 2;
    return -Math.log(1 / (1 + Math.exp(-beta * h)));
  });
  return (each.reduce((a, b) => a + b, 0) / each.length).toFixed(4);
};

const withPage = async (path, options, body) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page, consoleLines } = await openPage(browser, `${server.url}${path}`, { serviceWorkers: 'block', ...options });
    await body(page, consoleLines);
  } finally {
    await browser.close();
    server.stop();
  }
};

test('the worked example prints 0.6262 and follows its inputs', { timeout: 60_000 }, () =>
  withPage('lesson.html', {}, async (page) => {
    const mean = () => page.textContent('#we-mean-loss');
    const outputs = (key) => page.$$eval(`#worked-example output[data-out="${key}"]`, (els) => els.map((e) => e.value));
    const values = { pc: [-50, -45, -55, -48], pr: [-52, -48, -58, -46], rc: [-51, -46, -56, -49], rr: [-51, -46, -56, -49] };

    assert.equal(await mean(), '0.6262');
    assert.equal(expectedLoss(values, 0.1, 'sigmoid'), '0.6262');
    assert.deepEqual(await outputs('chosenReward'), ['0.1', '0.1', '0.1', '0.1']);
    assert.deepEqual(await outputs('rejectedReward'), ['-0.1', '-0.2', '-0.2', '0.3']);

    // From the keyboard: ArrowUp on a number field steps it by one (pair 1's policy chosen: -50 -> -49).
    await page.getByLabel('Pair 1: policy, chosen log-probability').focus();
    await page.keyboard.press('ArrowUp');
    values.pc[0] = -49;
    assert.equal(await mean(), expectedLoss(values, 0.1, 'sigmoid'));
    assert.notEqual(await mean(), '0.6262');
    assert.equal((await outputs('chosenReward'))[0], '0.2');

    await page.getByLabel('Pair 4: policy, rejected log-probability').fill('-50');
    values.pr[3] = -50;
    assert.equal(await mean(), expectedLoss(values, 0.1, 'sigmoid'));
    await page.locator('#worked-example input[name="beta"]').fill('0.5');
    assert.equal(await mean(), expectedLoss(values, 0.5, 'sigmoid'));
    for (const loss of ['hinge', 'ipo']) {
      await page.locator('#worked-example select[name="loss"]').selectOption(loss);
      assert.equal(await mean(), expectedLoss(values, 0.5, loss), loss);
    }
    // An empty field gives no number rather than a wrong one.
    await page.getByLabel('Pair 2: reference, rejected log-probability').fill('');
    assert.equal(await mean(), '—');
  }));

test('the reward-vs-KL chart draws every beta of every loss, and says where the data came from', { timeout: 60_000 }, () => {
  const fixture = readFileSync(join(root, 'tests/browser/fixtures/reward_kl.json'), 'utf8');
  const prepare = (page) => page.route('**/samples/reward_kl.json', (route) =>
    route.fulfill({ status: 200, contentType: 'application/json', body: fixture }));
  return withPage('lesson.html', { prepare }, async (page, consoleLines) => {
    const drawn = await page.evaluate(async () => {
      const chart = await window.dpoRewardKl;
      await new Promise((resolve) => requestAnimationFrame(resolve));
      const canvas = document.querySelector('#reward-kl canvas');
      const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
      let blue = 0; // sigmoid's colour, #0969da
      for (let i = 0; i < data.length; i += 4) if (Math.abs(data[i] - 9) < 20 && Math.abs(data[i + 1] - 105) < 20 && Math.abs(data[i + 2] - 218) < 20) blue++;
      return { error: chart.error ?? null, labels: chart.labels, series: chart.plot.series.map((s) => s.label), blue };
    });
    assert.equal(drawn.error, null, consoleLines.join('\n'));
    const data = JSON.parse(fixture);
    assert.deepEqual(drawn.series, ['KL', 'sigmoid', 'ipo', 'hinge', 'SFT (reference)']);
    // One β label per run, at its last scored step (the fixture's sigmoid β=0.05 run has two).
    const runs = new Set(data.points.map((p) => `${p.loss} β=${p.beta}`));
    const expected = [...runs, 'SFT (reference) SFT'].sort();
    assert.deepEqual(drawn.labels.map((l) => `${l.series} ${l.text}`).sort(), expected);
    assert.ok(drawn.blue > 50, `the sigmoid frontier has ${drawn.blue} pixels`);
    const source = await page.textContent('#reward-kl .source');
    assert.match(source, /docs\/reward_kl\.json/);
    assert.ok(source.includes(data.task), source);
    assert.match(source, /64 completions/);
    assert.equal(await page.locator('#reward-kl .table tbody tr').count(), data.points.length + 1);
    await screenshot(page, 'lesson.png');
  });
});

test('without usable reward_kl.json the chart says why and draws nothing', { timeout: 60_000 }, async () => {
  const cases = [
    [{ status: 404, body: 'not found' }, 'missing', /No reward-vs-KL data in this build/],
    [{ status: 200, contentType: 'application/json', body: '{"task": "t", "sft": {"reward": 1}, "points": []}' },
      'sft.samples is not a number', /could not be read .*sft\.samples is not a number/],
  ];
  for (const [response, error, shown] of cases) {
    const prepare = (page) => page.route('**/samples/reward_kl.json', (route) => route.fulfill(response));
    await withPage('lesson.html', { prepare }, async (page) => {
      assert.equal(await page.evaluate(async () => (await window.dpoRewardKl).error), error);
      assert.match(await page.textContent('#reward-kl .source'), shown);
      assert.equal(await page.locator('#reward-kl canvas').count(), 0);
    });
  }
});

test('every page fits a 390x844 phone and every control has a name', { timeout: 90_000 }, async () => {
  for (const path of ['lesson.html', 'embed.html', 'index.html']) {
    await withPage(path, { viewport: { width: 390, height: 844 } }, async (page) => {
      await page.waitForTimeout(500); // layout settles once the charts have sized themselves
      const report = await page.evaluate(() => {
        const controls = [];
        const walk = (scope) => {
          for (const el of scope.querySelectorAll('input, select, button, textarea')) {
            if (el.closest('[hidden]') || el.type === 'hidden') continue;
            const name = el.getAttribute('aria-label') || el.closest('label')?.textContent.trim() ||
              (el.id && scope.querySelector(`label[for="${el.id}"]`)?.textContent.trim()) || (el.tagName === 'BUTTON' && el.textContent.trim());
            controls.push({ tag: el.tagName, name: name || null });
          }
          for (const host of scope.querySelectorAll('*')) if (host.shadowRoot) walk(host.shadowRoot);
        };
        walk(document);
        const trainers = [...document.querySelectorAll('dpo-trainer')].map((el) => el.getBoundingClientRect());
        return { width: document.documentElement.scrollWidth, controls, trainers: trainers.map((r) => ({ top: r.top, bottom: r.bottom, right: r.right })) };
      });
      assert.ok(report.width <= 390, `${path} is ${report.width} px wide on a 390 px screen`);
      assert.deepEqual(report.controls.filter((c) => !c.name), [], `${path}: controls without a name`);
      for (const r of report.trainers) assert.ok(r.right <= 390, `${path}: a trainer overflows (${r.right})`);
      if (path === 'embed.html') assert.ok(report.trainers[1].top >= report.trainers[0].bottom, 'the trainers are not stacked');
      await screenshot(page, `phone-${path.replace('.html', '')}.png`);
    });
  }
});
