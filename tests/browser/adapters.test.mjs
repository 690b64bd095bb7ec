// LoRA adapters on the full page (CPU backend): a new micro model trains every weight in SFT
// and adapters in DPO; a picked Hugging Face folder trains adapters on every linear layer in
// both phases. The status line counts the trained parameters, the export is PEFT's adapter
// folder (with the merged model), and the native CLI loads both: the adapter on the picked
// folder and the merged model give the page's held-out log-probs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { dpoBinary, launch, openPage, root, screenshot, serverUrl, trainAgain, waitForRun } from './harness.mjs';

const llama = join(root, 'tests/fixtures/hf/llama');
const pairs = join(root, 'tests/fixtures/hf/pairs.jsonl');
const heldout = join(root, 'examples/data/heldout.jsonl');
const ADAPTER_FILES = ['adapter_config.json', 'adapter_model.safetensors'];
const MODEL_FILES = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];

const count = (n) => n.toLocaleString('en-US');
const paths = (folder, files) => files.map((file) => `${folder}/${file}`);

// The safetensors header's tensors: {name: {dtype, shape, data_offsets}}.
function tensors(bytes) {
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const header = JSON.parse(view.subarray(8, 8 + Number(view.readBigUInt64LE(0))).toString());
  delete header.__metadata__;
  return header;
}
const parameters = (bytes) => Object.values(tensors(bytes)).reduce((sum, { shape }) => sum + shape.reduce((a, b) => a * b, 1), 0);

// Clicks Export and returns the zip's name and files, also written out under a temporary folder.
async function exportZip(page) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
  const files = unzipSync(new Uint8Array(readFileSync(await download.path())));
  const dir = mkdtempSync(join(tmpdir(), 'dpo-adapter-export-'));
  for (const [name, bytes] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), bytes);
  }
  return { name: download.suggestedFilename(), files, dir };
}

const json = (bytes) => JSON.parse(Buffer.from(bytes).toString());

// Every text the backend line shows, recorded from the first script on (SFT is over in moments).
function recordBackendLines() {
  window.backendLines = [];
  document.addEventListener('DOMContentLoaded', () => {
    const line = document.querySelector('#backend');
    new MutationObserver(() => window.backendLines.push(line.textContent)).observe(line, { childList: true });
  });
}

// `dpo eval --json` on the CPU backend: its metrics, after checking that it succeeded.
function nativeEval(args) {
  const evaluated = spawnSync(dpoBinary, ['eval', ...args, '--json', '--backend', 'cpu'], { encoding: 'utf8' });
  assert.equal(evaluated.status, 0, `dpo eval ${args.join(' ')} failed: ${evaluated.stderr}`);
  const metrics = JSON.parse(evaluated.stdout);
  assert.ok(Number.isFinite(metrics.loss), evaluated.stdout);
  return metrics;
}

function assertClose(t, what, native, page) {
  t.diagnostic(`${what}: native ${native}, page ${page}`);
  assert.ok(Math.abs(native - page) <= 1e-3 * Math.abs(page), `${what}: native ${native} vs page ${page}`);
}

test('a new model: SFT trains every weight, DPO rank-4 adapters; the export holds both folders', { timeout: 300_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const setup = 'sample=sentiment&backend=cpu&preset=micro&sft_steps=5&steps=5&batch=4&max_length=48' +
      '&warmup_steps=1&gen_tokens=4&eval_limit=8&lora_r=4&autostart=1';
    const { page, consoleLines } = await openPage(browser, `${server.url}#${setup}`,
      { prepare: (p) => p.addInitScript(recordBackendLines) });
    const run = await waitForRun(page, 240_000);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.deepEqual(run.metrics.map((m) => m.phase), [...Array(5).fill('sft'), ...Array(5).fill('dpo')]);
    assert.ok(run.evaluation, 'no evaluation');
    const { trained, all } = run.parameters;
    assert.ok(trained > 0 && trained < all, `parameters ${trained} of ${all}`);
    // During SFT the line says every weight trains and that adapters come; then how many train.
    const lines = await page.evaluate(() => window.backendLines);
    assert.ok(lines.some((l) => / · training all [\d,]+ parameters \(LoRA r 4 adapters go on when DPO starts\)$/.test(l)), lines.join('\n'));
    assert.match(lines.at(-1), new RegExp(` · LoRA r 4: training ${count(trained)} of ${count(all)} parameters$`));
    assert.equal(await page.textContent('#export'), 'Export adapter (.zip)');
    assert.ok(await page.isHidden('#export-merged-option'), 'a new model offers an export without its base');
    assert.match(await page.textContent('#export-hint'), /dpo-model\/: that SFT model with the adapter merged in/);
    await screenshot(page, 'adapters-preset.png');

    const zip = await exportZip(page);
    assert.equal(zip.name, 'dpo-adapter.zip');
    assert.deepEqual(Object.keys(zip.files).sort(), [...paths('dpo-adapter', ADAPTER_FILES), ...paths('dpo-model', MODEL_FILES)].sort());
    const config = json(zip.files['dpo-adapter/adapter_config.json']);
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.r, 4);
    assert.deepEqual(config.target_modules, ['c_attn', 'c_fc', 'c_proj'], 'all-linear, as PEFT saves it');
    assert.equal(parameters(zip.files['dpo-adapter/adapter_model.safetensors']), trained);
    // The merged model is a plain GPT-2 folder: no adapter tensors.
    const merged = Object.keys(tensors(zip.files['dpo-model/model.safetensors']));
    assert.deepEqual(merged.filter((name) => name.includes('lora')), []);

    assert.ok(existsSync(dpoBinary), `no native binary at ${dpoBinary}: scripts/test_browser.sh builds it`);
    nativeEval(['--model', join(zip.dir, 'dpo-model'), '--data', heldout]);
  } finally {
    await browser.close();
    server.stop();
  }
});

test('a picked Llama folder: adapters on every linear layer, exported for the CLI', { timeout: 300_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const setup = 'backend=cpu&seed=1&batch=4&sft_steps=2&steps=5&warmup_steps=1&gen_tokens=4&lora_r=4&lora_targets=all-linear';
    const { page, consoleLines } = await openPage(browser, `${server.url}#${setup}`);
    await page.setInputFiles('#train-file', pairs);
    await page.setInputFiles('#eval-file', pairs);
    await page.waitForFunction(() => window.dpoState.checked.train && window.dpoState.checked.eval, null, { timeout: 60_000 });
    await page.check('input[name="model_source"][value="folder"]');
    await page.setInputFiles('#model-dir', llama);
    await page.waitForSelector('#model-status .summary', { timeout: 30_000 });
    assert.equal(await page.inputValue('[name="lora_targets"]'), 'all-linear');

    const run = await trainAgain(page, 240_000);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.equal(run.metrics.length, 7);

    // r x (inputs + outputs) of each of the seven linear layers of each block.
    const c = JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8'));
    const [h, i, q, kv] = [c.hidden_size, c.intermediate_size, c.num_attention_heads * c.head_dim, c.num_key_value_heads * c.head_dim];
    const linear = [[h, q], [h, kv], [h, kv], [q, h], [h, i], [h, i], [i, h]].reduce((sum, [a, b]) => sum + a + b, 0);
    const trained = c.num_hidden_layers * 4 * linear;
    const all = parameters(readFileSync(join(llama, 'model.safetensors'))) + trained;
    assert.deepEqual({ trained: run.parameters.trained, all: run.parameters.all }, { trained, all });
    assert.match(await page.textContent('#backend'),
      new RegExp(`from the folder “llama” \\(llama, 2 layers\\) · LoRA r 4: training ${count(trained)} of ${count(all)} parameters$`));

    // The adapter alone by default (its base is the picked folder); the merged model on request.
    assert.ok(await page.isVisible('#export-merged-option'));
    const adapterOnly = await exportZip(page);
    assert.equal(adapterOnly.name, 'dpo-adapter.zip');
    assert.deepEqual(Object.keys(adapterOnly.files).sort(), paths('dpo-adapter', ADAPTER_FILES));
    const config = json(adapterOnly.files['dpo-adapter/adapter_config.json']);
    assert.equal(config.peft_type, 'LORA');
    assert.equal(config.r, 4);
    await page.check('#export-merged');
    const both = await exportZip(page);
    assert.deepEqual(Object.keys(both.files).sort(), [...paths('dpo-adapter', ADAPTER_FILES), ...paths('dpo-model', MODEL_FILES)].sort());
    assert.deepEqual(both.files['dpo-adapter/adapter_model.safetensors'], adapterOnly.files['dpo-adapter/adapter_model.safetensors']);

    assert.ok(existsSync(dpoBinary), `no native binary at ${dpoBinary}: scripts/test_browser.sh builds it`);
    // The adapter on the picked folder, against that folder: trained, so the margin moved.
    const adapted = nativeEval(['--model', llama, '--adapter', join(adapterOnly.dir, 'dpo-adapter'), '--data', pairs]);
    assert.notEqual(adapted['rewards/margins'], 0);
    // The policy's log-probs as the page evaluated them, through the adapter and merged.
    const page_ = run.evaluation.metrics['logps/chosen'];
    assertClose(t, 'logps/chosen with --adapter', adapted['logps/chosen'], page_);
    const merged = nativeEval(['--model', join(both.dir, 'dpo-model'), '--data', pairs]);
    assertClose(t, 'logps/chosen of the merged model', merged['logps/chosen'], page_);

    // PEFT expands only the string "all-linear" (a list holding it matches no layer); its own
    // exports list the layers' names.
    const targets = config.target_modules;
    const layers = ['down_proj', 'gate_proj', 'k_proj', 'o_proj', 'q_proj', 'up_proj', 'v_proj'];
    assert.ok(targets === 'all-linear' || JSON.stringify([...targets].sort()) === JSON.stringify(layers),
      `target_modules ${JSON.stringify(targets)}: PEFT would not find these layers`);
  } finally {
    await browser.close();
    server.stop();
  }
});

test('on WebGPU (SwiftShader): adapters train and export', { timeout: 300_000 }, async () => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: true });
  try {
    const setup = 'sample=sentiment&backend=webgpu&preset=micro&sft_steps=1&steps=2&batch=2&max_length=32' +
      '&warmup_steps=1&gen_tokens=2&eval_limit=2&lora_r=2&autostart=1';
    const { page, consoleLines } = await openPage(browser, `${server.url}#${setup}`);
    const run = await waitForRun(page, 240_000);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.equal(run.backend, 'webgpu');
    assert.deepEqual(run.metrics.map((m) => m.phase), ['sft', 'dpo', 'dpo']);
    for (const m of run.metrics) assert.ok(Number.isFinite(m.loss) && Number.isFinite(m.grad_norm), JSON.stringify(m));
    assert.ok(run.parameters.trained < run.parameters.all, JSON.stringify(run.parameters));
    const zip = await exportZip(page);
    assert.equal(parameters(zip.files['dpo-adapter/adapter_model.safetensors']), run.parameters.trained);
    assert.equal(json(zip.files['dpo-adapter/adapter_config.json']).r, 2);
  } finally {
    await browser.close();
    server.stop();
  }
});
