// A Hugging Face folder picked on the full page: the committed tiny Llama (tests/fixtures/hf/llama)
// trains on the CPU backend, exports a zip that is the same Llama layout, and the native CLI
// loads that export. Broken folders are explained (missing file, pickle weights, a config the
// wasm refuses) and a second pick works without reloading.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { unzipSync } from 'fflate';
import { dpoBinary, launch, openPage, root, screenshot, serverUrl, trainAgain } from './harness.mjs';

const fixtures = join(root, 'tests/fixtures/hf');
const llama = join(fixtures, 'llama');
const pairs = join(fixtures, 'pairs.jsonl');
const llamaFiles = ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json'];
// Picked natively (`dpo train --model tests/fixtures/hf/llama`, CPU): rates high enough that
// six DPO steps on the eight pairs give clearly positive margins.
const SETUP = 'backend=cpu&seed=1&batch=4&sft_steps=3&steps=6&sft_lr=0.003&lr=0.005&warmup_steps=1&gen_tokens=4';

// The pairs file as both training and held-out pairs (eight pairs: too few to hold a tenth out).
async function loadPairs(page) {
  await page.setInputFiles('#train-file', pairs);
  await page.setInputFiles('#eval-file', pairs);
  await page.waitForFunction(() => window.dpoState.checked.train && window.dpoState.checked.eval, null, { timeout: 60_000 });
}

// Waits for the picked folder's summary line and returns the model panel's text.
async function pickedFolder(page) {
  await page.waitForSelector('#model-status .summary', { timeout: 30_000 });
  return page.textContent('#model-status');
}

const train = (page) => trainAgain(page, 120_000);

const safetensorsHeader = (bytes) => {
  const length = Number(Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
  const header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, length).toString());
  delete header.__metadata__;
  return header;
};

test('a picked Llama folder trains, exports the same layout, and the CLI loads it', { timeout: 300_000 }, async (t) => {
  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page, consoleLines } = await openPage(browser, `${server.url}#${SETUP}`);
    await loadPairs(page);
    assert.ok(await page.isHidden('#model .drop'), 'the folder pickers show for a preset');
    await page.check('input[name="model_source"][value="folder"]');
    assert.ok(await page.isHidden('[name="preset"]'), 'the preset size shows for a folder');
    assert.ok(await page.isDisabled('#start'), 'Train is enabled before a folder is picked');
    await page.setInputFiles('#model-dir', llama);
    const shown = await pickedFolder(page);
    assert.match(shown, /Folder “llama”: llama · 2 layers · width 32 · 4 heads · vocab 300 · 64 positions/);
    for (const file of llamaFiles) assert.match(shown, new RegExp(`✓ ${file.replace('.', '\\.')}`), shown);
    assert.match(shown, /21 tensors · 34\.7 K parameters · F32/);
    // The page's default max_length (128) is more than the model's 64 positions.
    assert.match(shown, /Max length lowered from 128 to 64 tokens: the model has 64 positions/);
    assert.equal(await page.inputValue('[name="max_length"]'), '64');

    const run = await train(page);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.equal(run.backend, 'cpu');
    assert.match(await page.textContent('#backend'), /from the folder “llama” \(llama, 2 layers\)/);
    const sft = run.metrics.filter((m) => m.phase === 'sft');
    const dpo = run.metrics.filter((m) => m.phase === 'dpo');
    assert.equal(sft.length, 3);
    assert.equal(dpo.length, 6);
    t.diagnostic(`SFT loss ${sft.map((m) => m.loss.toFixed(3)).join(' ')}; DPO loss ${dpo.map((m) => m.loss.toFixed(3)).join(' ')}; ` +
      `margins ${dpo.map((m) => m['rewards/margins'].toFixed(3)).join(' ')}`);
    assert.ok(sft.at(-1).loss < sft[0].loss, `SFT loss did not fall: ${sft[0].loss} -> ${sft.at(-1).loss}`);
    // The first DPO step compares the policy with itself: loss log 2, margin 0.
    assert.ok(Math.abs(dpo[0].loss - Math.log(2)) < 1e-4, `first DPO loss ${dpo[0].loss}`);
    assert.ok(dpo.at(-1)['rewards/margins'] > 0, `final margin ${dpo.at(-1)['rewards/margins']}`);
    assert.ok(dpo.at(-1).loss < Math.log(2), `final DPO loss ${dpo.at(-1).loss}`);
    assert.ok(run.evaluation.metrics['rewards/margins'] > 0, `held-out margin ${run.evaluation.metrics['rewards/margins']}`);
    await screenshot(page, 'hf-folder.png');

    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export')]);
    const zip = unzipSync(new Uint8Array(readFileSync(await download.path())));
    assert.deepEqual(Object.keys(zip).sort(), llamaFiles.map((f) => `dpo-model/${f}`).sort());
    const dir = mkdtempSync(join(tmpdir(), 'dpo-hf-export-'));
    for (const [name, bytes] of Object.entries(zip)) {
      mkdirSync(dirname(join(dir, name)), { recursive: true });
      writeFileSync(join(dir, name), bytes);
    }
    const exported = (name) => zip[`dpo-model/${name}`];

    // config.json: the fixture's architecture, field for field.
    const want = JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8'));
    const got = JSON.parse(Buffer.from(exported('config.json')).toString());
    for (const key of ['model_type', 'architectures', 'hidden_size', 'intermediate_size', 'num_hidden_layers',
      'num_attention_heads', 'num_key_value_heads', 'head_dim', 'vocab_size', 'max_position_embeddings',
      'rms_norm_eps', 'tie_word_embeddings', 'rope_parameters', 'hidden_act']) {
      assert.deepEqual(got[key], want[key], `config.json ${key}`);
    }
    // The weights: the same tensors (lm_head too: this Llama does not tie it) and shapes, trained.
    const before = safetensorsHeader(readFileSync(join(llama, 'model.safetensors')));
    const after = safetensorsHeader(exported('model.safetensors'));
    assert.deepEqual(Object.keys(after).sort(), Object.keys(before).sort());
    assert.ok('lm_head.weight' in after);
    for (const [name, { shape }] of Object.entries(before)) assert.deepEqual(after[name].shape, shape, name);
    assert.notDeepEqual(exported('model.safetensors'), new Uint8Array(readFileSync(join(llama, 'model.safetensors'))),
      'the exported weights are the untrained ones');
    assert.deepEqual(JSON.parse(Buffer.from(exported('tokenizer_config.json')).toString()),
      JSON.parse(readFileSync(join(llama, 'tokenizer_config.json'), 'utf8')));
    assert.equal(JSON.parse(Buffer.from(exported('tokenizer.json')).toString()).model.type,
      JSON.parse(readFileSync(join(llama, 'tokenizer.json'), 'utf8')).model.type);

    assert.ok(existsSync(dpoBinary), `no native binary at ${dpoBinary}: scripts/test_browser.sh builds it`);
    const evaluated = spawnSync(dpoBinary, ['eval', '--model', join(dir, 'dpo-model'), '--data', pairs, '--json',
      '--backend', 'cpu'], { encoding: 'utf8' });
    assert.equal(evaluated.status, 0, `dpo eval failed: ${evaluated.stderr}`);
    const native = JSON.parse(evaluated.stdout);
    // The same weights give the same log-probs natively as in the page's held-out evaluation.
    const page_ = run.evaluation.metrics['logps/chosen'];
    t.diagnostic(`logps/chosen: page ${page_}, native on the export ${native['logps/chosen']}`);
    assert.ok(Math.abs(native['logps/chosen'] - page_) <= 1e-3 * Math.abs(page_), `${native['logps/chosen']} vs ${page_}`);
  } finally {
    await browser.close();
    server.stop();
  }
});

test('a folder the trainer refuses is explained, and another pick then trains', { timeout: 300_000 }, async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'dpo-hf-broken-'));
  const bert = join(work, 'bert');
  mkdirSync(bert);
  for (const file of llamaFiles) copyFileSync(join(llama, file), join(bert, file));
  const config = JSON.parse(readFileSync(join(llama, 'config.json'), 'utf8'));
  writeFileSync(join(bert, 'config.json'), JSON.stringify({ ...config, model_type: 'bert' }));

  const server = await serverUrl();
  const browser = await launch({ webgpu: false });
  try {
    const { page, consoleLines } = await openPage(browser, `${server.url}#${SETUP.replace('sft_steps=3&steps=6', 'sft_steps=1&steps=1')}`);
    await loadPairs(page);

    // Dropped files with pickle weights only: the page says to convert, and Train stays off.
    await page.evaluate((texts) => {
      const transfer = new DataTransfer();
      for (const [name, text] of Object.entries(texts)) transfer.items.add(new File([text], name));
      document.querySelector('#model .drop').dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }, { 'config.json': JSON.stringify(config), 'tokenizer.json': readFileSync(join(llama, 'tokenizer.json'), 'utf8'),
      'pytorch_model.bin': 'not really a pickle' });
    const pickle = await pickedFolder(page);
    assert.match(pickle, /✗ model\.safetensors/);
    assert.match(pickle, /Only pytorch_model\.bin is here.*safetensors.*safe_serialization=True/);
    assert.ok(await page.isDisabled('#start'), 'Train is enabled without model.safetensors');

    // A config the wasm refuses: its error, naming the file and the field, in the error area.
    await page.setInputFiles('#model-dir', bert);
    assert.match(await pickedFolder(page), /model_type "bert" is not a family this trainer loads/);
    const refused = await train(page);
    assert.match(refused.error ?? '', /config\.json.*model_type/, `no config error: ${refused.error}\n${consoleLines.join('\n')}`);
    assert.ok(await page.isVisible('#error'));
    assert.match(await page.textContent('#error'), /model\/config\.json: field `model_type`: `bert` is not supported/);
    await screenshot(page, 'hf-folder-refused.png');

    // Weights that do not fit the config: the wasm names the tensor.
    const wide = join(work, 'wide');
    mkdirSync(wide);
    for (const file of llamaFiles) copyFileSync(join(llama, file), join(wide, file));
    writeFileSync(join(wide, 'config.json'), JSON.stringify({ ...config, intermediate_size: 64 }));
    await page.setInputFiles('#model-dir', wide);
    assert.match(await pickedFolder(page), /✓ Folder “wide”/);
    const mismatch = await train(page);
    assert.match(mismatch.error ?? '', /model\.safetensors: tensor `[\w.]+` has shape/, `no shape error: ${mismatch.error}`);
    assert.equal(await page.textContent('#error'), mismatch.error);
    t.diagnostic(`shown: ${refused.error} | ${mismatch.error}`);

    // Another pick, this time of the files themselves: the error goes, and it trains.
    await page.setInputFiles('#model-files', llamaFiles.map((f) => join(llama, f)));
    assert.match(await pickedFolder(page), /✓ The picked files: llama · 2 layers/);
    assert.ok(await page.isHidden('#error'), 'the old error is still shown');
    const run = await train(page);
    assert.equal(run.error, null, `the run failed: ${run.error}\n${consoleLines.join('\n')}`);
    assert.deepEqual(run.metrics.map((m) => m.phase), ['sft', 'dpo']);

    // A GPT-2 folder reads its own config keys; back to a preset, max_length is given back.
    await page.setInputFiles('#model-dir', join(fixtures, 'gpt2'));
    assert.match(await pickedFolder(page), /✓ Folder “gpt2”: gpt2 · 2 layers · width 32 · 4 heads · vocab 300 · 64 positions/);
    await page.check('input[name="model_source"][value="preset"]');
    assert.equal(await page.inputValue('[name="max_length"]'), '128');
    assert.ok(await page.isHidden('#model .drop'));
  } finally {
    await browser.close();
    server.stop();
  }
});
