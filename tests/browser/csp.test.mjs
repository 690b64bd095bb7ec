// The Content-Security-Policy: every page carries the same <meta> policy, scripts/serve.mjs
// sends it as a header (the worker's policy, with COOP + COEP unless DPO_ISOLATION=off), it
// allows only the site's own origin, and the
// pages work under it: a CPU run with its export on the full page, the lesson, the embedding
// example, with no violation reported. A request to another origin is refused, from the page
// and from the training worker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launch, openPage, root, serverUrl, waitForRun } from './harness.mjs';

const pages = ['index.html', 'lesson.html', 'embed.html'];
const metaPolicy = (html) => /<meta http-equiv="Content-Security-Policy" content="([^"]+)">/.exec(html)?.[1];

test('one policy, own origin only, on every page and in the server header; nothing inline', async () => {
  const policies = pages.map((page) => {
    const html = readFileSync(join(root, 'www', page), 'utf8');
    assert.doesNotMatch(html, /<script(?![^>]*\bsrc=)[^>]*>/, `${page}: an inline script`);
    assert.doesNotMatch(html, /<style|\sstyle=|\son[a-z]+=/i, `${page}: an inline style or event handler`);
    return metaPolicy(html);
  });
  const [policy] = policies;
  assert.ok(policy, 'index.html has no policy');
  assert.deepEqual(policies, pages.map(() => policy), 'the pages differ');
  const directives = Object.fromEntries(policy.split(';').map((d) => d.trim().split(/\s+/)).map(([name, ...sources]) => [name, sources]));
  assert.deepEqual(directives['default-src'], ["'self'"]);
  assert.deepEqual(directives['script-src'], ["'self'", "'wasm-unsafe-eval'"]);
  assert.deepEqual(directives['object-src'], ["'none'"]);
  assert.deepEqual(directives['base-uri'], ["'none'"]);
  // The CPU build's thread workers start from a blob: copy of their own script (same origin).
  assert.deepEqual(directives['worker-src'], ["'self'", 'blob:']);
  for (const [name, sources] of Object.entries(directives)) {
    for (const source of sources) {
      assert.ok(["'self'", "'none'", "'wasm-unsafe-eval'", 'data:'].includes(source) || name === 'worker-src',
        `${name} allows ${source}`);
    }
  }

  const server = await serverUrl();
  try {
    const isolated = process.env.DPO_ISOLATION !== 'off';
    for (const path of ['', 'worker.js', 'pkg/dpo.js', 'pkg-cpu/dpo.js', 'sw.js']) {
      const response = await fetch(`${server.url}${path}`);
      assert.equal(response.headers.get('content-security-policy'), policy, `the header of /${path}`);
      // Cross-origin isolation (threads for the CPU build) unless the server was told otherwise.
      assert.equal(response.headers.get('cross-origin-opener-policy'), isolated ? 'same-origin' : null);
      assert.equal(response.headers.get('cross-origin-embedder-policy'), isolated ? 'require-corp' : null);
    }
  } finally {
    server.stop();
  }
});

// Every violation the page reports, from the first script on.
function recordViolations() {
  window.cspViolations = [];
  document.addEventListener('securitypolicyviolation', (event) =>
    window.cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`));
}

const violations = async (page, consoleLines) => [
  ...await page.evaluate(() => window.cspViolations),
  ...consoleLines.filter((line) => /Content Security Policy|Refused to/i.test(line)),
];

test('the pages work under the policy, which refuses other origins', { timeout: 240_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  // The same server under another name: another origin.
  const foreign = server.url.replace('127.0.0.1', 'localhost');
  const open = (path) => openPage(browser, `${server.url}${path}`, { prepare: (p) => p.addInitScript(recordViolations) });
  try {
    // The full page: pairs, a CPU run with generations and evaluation, the export's download,
    // and the offline copy's service worker.
    const setup = 'sample=sentiment&backend=cpu&preset=micro&sft_steps=2&steps=2&batch=2&max_length=32&gen_tokens=4&eval_limit=4&autostart=1';
    const index = await open(`index.html#${setup}`);
    const run = await waitForRun(index.page, 120_000);
    assert.equal(run.error, null, index.consoleLines.join('\n'));
    assert.equal(run.metrics.length, 4);
    const [download] = await Promise.all([index.page.waitForEvent('download'), index.page.click('#export')]);
    assert.equal(download.suggestedFilename(), 'dpo-model.zip');
    assert.equal(await index.page.evaluate(() => navigator.serviceWorker.ready.then((r) => Boolean(r.active))), true);
    assert.deepEqual(await violations(index.page, index.consoleLines), [], 'index.html');

    // Another origin, from the page: even an opaque no-cors fetch (which needs no permission
    // from the other server) is refused, and reported as a connect-src violation.
    const pageFetch = await index.page.evaluate((url) => fetch(url, { mode: 'no-cors' }).then(() => 'fetched', (e) => e.name), `${foreign}samples/standard.jsonl`);
    assert.equal(pageFetch, 'TypeError');
    // Once per policy: served by serve.mjs, the page has both the header and the <meta>.
    const reported = await index.page.evaluate(() => window.cspViolations);
    assert.ok(reported.length > 0, 'no violation reported');
    assert.deepEqual(new Set(reported), new Set([`connect-src ${foreign}samples/standard.jsonl`]));
    // ... and from the training worker, whose policy is serve.mjs's header; its own origin works.
    const [worker] = index.page.workers().filter((w) => w.url().endsWith('/worker.js'));
    assert.ok(worker, `no training worker among ${index.page.workers().map((w) => w.url())}`);
    const fetched = (url) => worker.evaluate((u) => fetch(u, { mode: 'no-cors' }).then((r) => r.type, (e) => e.name), url);
    assert.equal(await fetched(`${foreign}samples/standard.jsonl`), 'TypeError');
    assert.equal(await fetched(`${server.url}samples/standard.jsonl`), 'basic');

    // The lesson: the worked example, the element (its worker checked the pairs), the chart.
    const lesson = await open('lesson.html');
    assert.equal(await lesson.page.textContent('#we-mean-loss'), '0.6262');
    await lesson.page.waitForFunction(() => /✓ train\.jsonl/.test(document.querySelector('dpo-trainer').shadowRoot
      .querySelector('.status').textContent), null, { timeout: 60_000 });
    await lesson.page.evaluate(() => window.dpoRewardKl);
    assert.deepEqual(await violations(lesson.page, lesson.consoleLines), [], 'lesson.html');

    // The embedding example: both elements, and the listener's source shown from embed.js.
    const embed = await open('embed.html');
    await embed.page.waitForFunction(() => [...document.querySelectorAll('dpo-trainer')]
      .every((el) => /✓ train\.jsonl/.test(el.shadowRoot.querySelector('.status').textContent)), null, { timeout: 60_000 });
    assert.match(await embed.page.textContent('#listener-source'),
      /^\/\/ Reads the last DPO margin[^]*function showMargins\(\{ target, detail: \{ metrics \} \}\) \{[^]*document\.addEventListener\('dpo-progress', showMargins\);$/);
    assert.deepEqual(await violations(embed.page, embed.consoleLines), [], 'embed.html');
    t.diagnostic('no violations on index.html, lesson.html, embed.html');
  } finally {
    await browser.close();
    server.stop();
  }
});
