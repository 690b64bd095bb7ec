// The page: settings (mirrored in the URL hash), data loading and checking, and the views of
// a run. All training happens in worker.js; this thread only draws, so the page never freezes.
import { Charts } from './charts.js';
import { zipSync } from './vendor/fflate.js';

// The page's defaults: TrainConfig's, with fewer steps so that a run fits in a tab's session.
const defaults = {
  preset: 'tiny', backend: 'auto', sft_steps: 200, steps: 100, loss: 'sigmoid', beta: 0.1,
  lr: 1e-4, batch: 16, seed: 42, sft_lr: 1e-3, max_length: 128, warmup_steps: 10, gen_tokens: 24,
  eval_limit: 0,
};
const textFields = new Set(['preset', 'backend', 'loss']);
const samples = {
  sentiment: { train: 'train.jsonl', eval: 'heldout.jsonl' },
  // The format examples have 6 pairs: too few to hold a tenth out, so they evaluate on themselves.
  standard: { train: 'standard.jsonl', eval: 'standard.jsonl' },
  implicit_prompt: { train: 'implicit_prompt.jsonl', eval: 'implicit_prompt.jsonl' },
  conversational: { train: 'conversational.jsonl', eval: 'conversational.jsonl' },
};

const $ = (selector) => document.querySelector(selector);
const form = $('#settings');
const charts = new Charts($('#charts'));
const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });

// Test hooks: the run as data, and how many points each chart has drawn.
const state = (window.dpoState = {
  metrics: [], backend: null, reason: null, evaluation: null,
  generations: { before: null, after: null }, done: false, error: null, checked: {}, exported: null,
});
window.dpoCharts = charts;

let data = { train: null, eval: null };
let workerReady = false;
let running = false;
let trained = false;
let paused = false;
let autostart = false;
let lastProgress = '';
let startedAt = 0;

// ---- settings <-> form <-> URL hash ----

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  for (const [name, fallback] of Object.entries(defaults)) {
    form.elements[name].value = params.get(name) ?? fallback;
  }
  autostart = params.get('autostart') === '1';
  return params.get('sample');
}

function writeHash() {
  const params = new URLSearchParams();
  for (const [name, fallback] of Object.entries(defaults)) {
    const value = form.elements[name].value;
    if (value !== '' && value !== String(fallback)) params.set(name, value);
  }
  if ($('#sample').value) params.set('sample', $('#sample').value);
  const hash = params.toString();
  history.replaceState(null, '', hash ? `#${hash}` : location.pathname + location.search);
}

function value(name) {
  const raw = form.elements[name].value;
  if (textFields.has(name)) return raw;
  const number = Number(raw === '' ? defaults[name] : raw);
  if (!Number.isFinite(number)) throw new Error(`${name}: not a number`);
  return number;
}

// The `settings` object of the worker's start message: TrainConfig's field names.
function settings() {
  const names = ['preset', 'seed', 'sft_steps', 'steps', 'batch', 'lr', 'sft_lr', 'max_length', 'warmup_steps'];
  const out = Object.fromEntries(names.map((name) => [name, value(name)]));
  out.loss = { loss_type: [value('loss')], beta: value('beta') };
  return out;
}

form.addEventListener('input', writeHash);
window.addEventListener('hashchange', () => {
  const sample = readHash();
  if (sample && sample !== $('#sample').value) loadSample(sample);
});

// ---- data ----

async function setFile(slot, file) {
  data[slot] = { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
  $('#sample').value = '';
  writeHash();
  check();
}

async function loadSample(name) {
  const sample = samples[name];
  if (!sample) return showError(`unknown sample "${name}"`);
  $('#sample').value = name;
  writeHash();
  try {
    const fetchFile = async (file) => {
      const response = await fetch(`samples/${file}`);
      if (!response.ok) throw new Error(`samples/${file}: HTTP ${response.status} (run scripts/build_web.sh)`);
      return { name: file, bytes: new Uint8Array(await response.arrayBuffer()) };
    };
    data = { train: await fetchFile(sample.train), eval: await fetchFile(sample.eval) };
    check();
  } catch (error) {
    showError(error.message);
  }
}

function check() {
  state.checked = {};
  $('#data-status').replaceChildren(status('Checking…'));
  worker.postMessage({ type: 'load', train: data.train, eval: data.eval ?? undefined });
  updateButtons();
}

const isValid = (slot) => !data[slot] || (state.checked[slot] && state.checked[slot].bad === 0 && state.checked[slot].pairs > 0);
const dataReady = () => data.train && state.checked.train && isValid('train') && isValid('eval') &&
  (!data.eval || state.checked.eval);

function showChecked() {
  const items = ['train', 'eval'].filter((slot) => state.checked[slot]).map((slot) => {
    const c = state.checked[slot];
    const role = slot === 'train' ? 'training' : 'held-out';
    if (c.bad === 0 && c.pairs > 0) return status(`✓ ${c.name}: ${c.pairs} ${role} pairs`, 'ok');
    const box = status(c.bad === 0 ? `✗ ${c.name}: no pairs` : `✗ ${c.name}: ${c.bad} bad line${c.bad === 1 ? '' : 's'} — fix them to train`, 'bad');
    const list = document.createElement('ul');
    list.className = 'line-errors';
    for (const e of c.errors) {
      const item = document.createElement('li');
      const where = document.createElement('strong');
      where.textContent = e.line > 0 ? `line ${e.line}` : 'file';
      const field = e.field && e.field !== '-' ? ` field “${e.field}”:` : '';
      item.append(where, `${field} ${e.message}`);
      list.append(item);
    }
    if (c.bad > c.errors.length) list.append(Object.assign(document.createElement('li'), { textContent: `… and ${c.bad - c.errors.length} more` }));
    box.append(list);
    return box;
  });
  $('#data-status').replaceChildren(...items);
}

function status(text, kind = '') {
  return Object.assign(document.createElement('div'), { className: `check ${kind}`, textContent: text });
}

for (const slot of ['train', 'eval']) {
  $(`#${slot}-file`).addEventListener('change', (event) => {
    const file = event.target.files[0];
    if (file) setFile(slot, file);
  });
}
$('#sample').addEventListener('change', (event) => event.target.value && loadSample(event.target.value));

const drop = $('#drop');
drop.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  // A file named like held-out data goes to the held-out slot, any other to training.
  for (const file of event.dataTransfer.files) {
    setFile(/held|eval|test|valid/i.test(file.name) ? 'eval' : 'train', file);
  }
});

// ---- a run ----

function startTraining() {
  let message;
  try {
    message = { type: 'start', settings: settings(), backend: value('backend'),
      generation: { prompts: 4, max_new_tokens: value('gen_tokens') }, eval_limit: value('eval_limit') };
  } catch (error) {
    return showError(error.message);
  }
  Object.assign(state, { metrics: [], backend: null, reason: null, evaluation: null,
    generations: { before: null, after: null }, done: false, error: null, exported: null });
  charts.reset();
  $('#generations tbody').replaceChildren();
  $('#error').hidden = true;
  $('#evaluation').textContent = '';
  $('#backend').textContent = 'Starting…';
  running = true;
  paused = false;
  lastProgress = '';
  startedAt = performance.now();
  worker.postMessage(message);
  updateButtons();
}

const backendNames = { webgpu: 'WebGPU', cpu: 'the CPU (wasm)' };
const signed = (v) => (v >= 0 ? '+' : '−') + Math.abs(v).toFixed(3);

function onMetrics(m) {
  state.metrics.push(m);
  charts.add(m);
  const parts = [`Step ${m.step} / ${state.totalSteps ?? '?'}`, m.phase.toUpperCase(), `loss ${m.loss.toFixed(4)}`];
  if (m.phase === 'dpo') parts.push(`margin ${signed(m['rewards/margins'])}`, `accuracy ${m['rewards/accuracies'].toFixed(2)}`);
  if (m.ms != null) parts.push(`${m.ms.toFixed(0)} ms/step`);
  lastProgress = parts.join(' · ');
  $('#progress').textContent = lastProgress;
}

function onGenerations({ when, items }) {
  state.generations[when] = items;
  const body = $('#generations tbody');
  items.forEach(({ prompt, text }, i) => {
    let row = body.rows[i];
    if (!row) {
      row = body.insertRow();
      for (let c = 0; c < 3; c++) row.insertCell();
      row.cells[0].textContent = prompt;
    }
    row.cells[when === 'before' ? 1 : 2].textContent = text;
  });
}

function onEvaluation({ metrics, margins }) {
  state.evaluation = { metrics, margins };
  charts.histogram(margins);
  $('#evaluation').textContent = `Held-out (${margins.length} pairs): accuracy ${metrics['rewards/accuracies'].toFixed(2)} · ` +
    `margin ${signed(metrics['rewards/margins'])} · chosen ${signed(metrics['rewards/chosen'])} · ` +
    `rejected ${signed(metrics['rewards/rejected'])} · loss ${metrics.loss.toFixed(4)}`;
}

function download({ files }) {
  state.exported = Object.keys(files);
  // One folder inside the zip: unzipping gives a directory that `dpo eval --model` loads.
  const zip = zipSync(Object.fromEntries(Object.entries(files).map(([name, bytes]) => [`dpo-model/${name}`, bytes])));
  const url = URL.createObjectURL(new Blob([zip], { type: 'application/zip' }));
  const link = Object.assign(document.createElement('a'), { href: url, download: 'dpo-model.zip' });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function showError(message) {
  state.error = message;
  const box = $('#error');
  box.textContent = message;
  box.hidden = false;
}

worker.onmessage = ({ data: message }) => {
  switch (message.type) {
    case 'ready':
      workerReady = true;
      break;
    case 'checked':
      state.checked[message.slot] = message;
      showChecked();
      if (autostart && dataReady()) {
        autostart = false;
        startTraining();
      }
      break;
    case 'status':
      $('#progress').textContent = message.text;
      break;
    case 'backend':
      Object.assign(state, { backend: message.backend, reason: message.reason, totalSteps: message.totalSteps });
      $('#backend').textContent = `Training on ${backendNames[message.backend]} — ${message.reason}`;
      trained = true;
      break;
    case 'metrics': onMetrics(message.metrics); break;
    case 'generations': onGenerations(message); break;
    case 'evaluation': onEvaluation(message); break;
    case 'done':
      running = false;
      state.done = true;
      $('#progress').textContent = [lastProgress, message.stopped ? 'stopped' :
        `done in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`].filter(Boolean).join(' · ');
      break;
    case 'exported': download(message); break;
    case 'error':
      running = false;
      showError(message.message);
      break;
  }
  updateButtons();
};
worker.onerror = (event) => {
  running = false;
  showError(`the training worker failed: ${event.message ?? 'see the console'}`);
  updateButtons();
};

function updateButtons() {
  $('#start').disabled = running || !workerReady || !dataReady();
  $('#pause').disabled = !running;
  $('#pause').textContent = paused ? 'Resume' : 'Pause';
  $('#stop').disabled = !running;
  $('#export').disabled = !trained;
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  startTraining();
});
$('#pause').addEventListener('click', () => {
  paused = !paused;
  worker.postMessage({ type: paused ? 'pause' : 'resume' });
  updateButtons();
});
$('#stop').addEventListener('click', () => worker.postMessage({ type: 'stop' }));
$('#export').addEventListener('click', () => worker.postMessage({ type: 'export' }));

// Say up front when WebGPU is missing, not only once a run has started.
(navigator.gpu?.requestAdapter() ?? Promise.resolve(null))
  .catch(() => null)
  .then((adapter) => { $('#webgpu-missing').hidden = Boolean(adapter); });

const sample = readHash();
if (sample) loadSample(sample);
updateButtons();
