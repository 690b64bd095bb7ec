// The full trainer page: settings (mirrored in the URL hash), data loading and checking, and
// the views of a run. The worker protocol lives in trainer-client.js, the settings in
// settings.js, the shipped samples in samples.js, the model choice (a preset or a Hugging Face
// folder) in model-picker.js; this module only wires them to the page.
// All training happens in the worker; this thread only draws, so the page never freezes.
import { Charts } from './charts.js';
import { METRIC as M, signed } from './metric-names.js';
import { TrainerClient } from './trainer-client.js';
import { defaults, settingValue, startMessage } from './settings.js';
import { fetchDataset, readFile, samples } from './samples.js';
import { ModelPicker, onDrop } from './model-picker.js';
import { SavedRuns, saveOptions } from './saved-runs.js';
import { RunViewer } from './run-viewer.js';
import { zipSync } from './vendor/fflate.js';

const $ = (selector) => document.querySelector(selector);
const form = $('#settings');
const charts = new Charts($('#charts'));
const client = new TrainerClient();
const picker = new ModelPicker(form, $('#model'));
new RunViewer($('#run-viewer'), charts); // run folders on the same charts, overlaid

// Test hooks: the run as data, and how many points each chart has drawn.
const state = (window.dpoState = client.state);
window.dpoCharts = charts;

let trained = false;
let autostart = false;
let lastProgress = '';
let startedAt = 0;
let starting = false; // reading a model folder's files before the start message goes out
let runModel = ''; // what the current run starts from, for the backend line ('': a preset)
let backendLine = ''; // which backend and why, from the worker's `backend` message

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

form.addEventListener('input', writeHash);
window.addEventListener('hashchange', () => {
  const sample = readHash();
  if (sample && sample !== $('#sample').value) loadSample(sample);
});

// ---- data ----

async function setFile(slot, file) {
  const pairs = await readFile(file);
  $('#sample').value = '';
  writeHash();
  check({ ...client.data, [slot]: pairs });
}

async function loadSample(name) {
  if (!samples[name]) return showError(`unknown sample "${name}"`);
  $('#sample').value = name;
  writeHash();
  try {
    check(await fetchDataset(name));
  } catch (error) {
    showError(error.message);
  }
}

function check(data) {
  $('#data-status').replaceChildren(status('Checking…'));
  client.load(data);
}

function showChecked() {
  const items = ['train', 'eval'].filter((slot) => state.checked[slot]).map((slot) => {
    const c = state.checked[slot];
    const role = slot === 'train' ? 'training' : 'held-out';
    if (c.bad === 0 && c.pairs > 0) return status(`✓ ${c.name}: ${c.pairs} ${role} pairs`, 'ok');
    const unit = c.errors[0]?.unit ?? 'line'; // a Parquet file's are rows
    const box = status(c.bad === 0 ? `✗ ${c.name}: no pairs` : `✗ ${c.name}: ${c.bad} bad ${unit}${c.bad === 1 ? '' : 's'} — fix them to train`, 'bad');
    const list = document.createElement('ul');
    list.className = 'line-errors';
    for (const e of c.errors) {
      const item = document.createElement('li');
      const where = document.createElement('strong');
      where.textContent = e.line > 0 ? `${e.unit} ${e.line}` : 'file';
      const field = e.field && e.field !== '-' ? ` ${e.unit === 'row' ? 'column' : 'field'} “${e.field}”:` : '';
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

onDrop($('#drop'), (transfer) => {
  // A file named like held-out data goes to the held-out slot, any other to training.
  for (const file of transfer.files) {
    setFile(/held|eval|test|valid/i.test(file.name) ? 'eval' : 'train', file);
  }
});

// ---- a run ----

async function startTraining() {
  let message;
  let checkpointEvery;
  starting = true;
  updateButtons();
  try {
    // First: it may lower max_length to what the folder's model can hold.
    const model = await picker.startFiles();
    const raw = Object.fromEntries(Object.keys(defaults).map((name) => [name, form.elements[name].value]));
    message = startMessage(raw);
    checkpointEvery = settingValue(raw, 'checkpoint_every');
    if (model) message.model = model;
  } catch (error) {
    return showError(error.message);
  } finally {
    starting = false;
    updateButtons();
  }
  newRun(picker.usesFolder ? picker.label : '');
  message.save = saveOptions(checkpointEvery, message, { data: client.data.train.name, model: runModel });
  client.start(message);
}

// Clears the previous run's views; `model`: what the new run starts from ('': a preset).
function newRun(model) {
  runModel = model;
  charts.reset();
  $('#generations tbody').replaceChildren();
  $('#error').hidden = true;
  $('#evaluation').textContent = '';
  $('#backend').textContent = 'Starting…';
  lastProgress = '';
  startedAt = performance.now();
}

// A saved run goes on where it left off; `resumed` brings back its charts.
new SavedRuns($('#saved-runs'), client, (id) => {
  newRun('');
  client.resumeRun(id);
});

const backendNames = { webgpu: 'WebGPU', cpu: 'the CPU (wasm)' };

function onMetrics(m) {
  charts.add(m);
  const parts = [`Step ${m.step} / ${state.totalSteps ?? '?'}`, m.phase.toUpperCase(), `loss ${m.loss.toFixed(4)}`];
  if (m.phase === 'dpo') parts.push(`margin ${signed(m[M.margins])}`, `accuracy ${m[M.accuracies].toFixed(2)}`);
  if (m.ms != null) parts.push(`${m.ms.toFixed(0)} ms/step`);
  lastProgress = parts.join(' · ');
  $('#progress').textContent = lastProgress;
}

function onGenerations({ when, items }) {
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
  charts.histogram(margins);
  $('#evaluation').textContent = `Held-out (${margins.length} pairs): accuracy ${metrics[M.accuracies].toFixed(2)} · ` +
    `margin ${signed(metrics[M.margins])} · chosen ${signed(metrics[M.chosen])} · ` +
    `rejected ${signed(metrics[M.rejected])} · loss ${metrics.loss.toFixed(4)}`;
}

// The export hint of an adapter run, by what the run started from. A new model's adapter
// sits on this run's SFT model, which exists outside the tab only merged into dpo-model/.
const exportHints = {
  preset: 'dpo-adapter/: the LoRA adapter (PEFT\'s files), on this run\'s SFT model. ' +
    'dpo-model/: that SFT model with the adapter merged in, a Hugging Face folder that dpo eval --model loads.',
  folder: 'dpo-adapter/: the LoRA adapter (PEFT\'s files) for the picked model folder: ' +
    'dpo eval --model FOLDER --adapter dpo-adapter. With the merged model: also dpo-model/, the model with ' +
    'the adapter merged in.',
};

// Once adapters are on, the optimizer trains fewer parameters than the model has.
const adapterRun = () => trained && state.parameters !== null && state.parameters.trained < state.parameters.all;

function download({ model, adapter }) {
  // One directory per folder inside the zip: unzipping gives folders that `dpo eval --model`
  // (and `--adapter`) load.
  const folders = Object.entries({ 'dpo-model': model, 'dpo-adapter': adapter }).filter(([, files]) => files);
  const zip = zipSync(Object.fromEntries(folders.flatMap(([folder, files]) =>
    Object.entries(files).map(([name, bytes]) => [`${folder}/${name}`, bytes]))));
  const url = URL.createObjectURL(new Blob([zip], { type: 'application/zip' }));
  const link = Object.assign(document.createElement('a'), { href: url, download: adapter ? 'dpo-adapter.zip' : 'dpo-model.zip' });
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function showError(message) {
  state.error = message;
  const box = $('#error');
  box.textContent = message;
  box.hidden = false;
}

const on = (type, handler) => client.addEventListener(type, ({ detail }) => handler(detail));
on('checked', () => {
  showChecked();
  if (autostart && client.dataReady && picker.ready) {
    autostart = false;
    startTraining();
  }
});
on('status', ({ text }) => { $('#progress').textContent = text; });
// The backend line, then how many parameters train (that can change when DPO starts).
const showBackend = () => { $('#backend').textContent = [backendLine, state.parameters?.text].filter(Boolean).join(' · '); };
on('backend', ({ backend, reason }) => {
  backendLine = `Training on ${backendNames[backend]} — ${reason}${runModel ? ` · from the ${runModel}` : ''}` +
    (state.resumedFrom === null ? '' : ` · resumed after step ${state.resumedFrom}`);
  showBackend();
  trained = true;
});
on('parameters', showBackend);
on('metrics', ({ metrics }) => onMetrics(metrics));
on('resumed', ({ metrics }) => metrics.forEach(onMetrics));
on('generations', onGenerations);
on('evaluation', onEvaluation);
on('done', ({ stopped }) => {
  $('#progress').textContent = [lastProgress, stopped ? 'stopped' :
    `done in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`].filter(Boolean).join(' · ');
});
on('exported', download);
on('error', ({ message, fatal }) => {
  showError(message);
  if (fatal) trained = false; // the fresh worker that took over has no model to export
  // "Starting…" and "Loading the model folder…" would stay up after a failed start.
  if (!state.backend) $('#backend').textContent = 'The run did not start: see the error below.';
  $('#progress').textContent = lastProgress;
});
client.addEventListener('change', updateButtons);
picker.addEventListener('change', updateButtons);
// The error box spoke of the previous folder; a new pick starts clean.
picker.addEventListener('picked', () => { $('#error').hidden = true; });

function updateButtons() {
  $('#start').disabled = starting || client.running || !client.ready || !client.dataReady || !picker.ready;
  $('#pause').disabled = !client.running;
  $('#pause').textContent = client.paused ? 'Resume' : 'Pause';
  $('#stop').disabled = !client.running;
  $('#export').disabled = !trained;
  const adapter = adapterRun();
  $('#export').textContent = adapter ? 'Export adapter (.zip)' : 'Export model (.zip)';
  $('#export-merged-option').hidden = !(adapter && runModel);
  $('#export-hint').hidden = !adapter;
  $('#export-hint').textContent = exportHints[runModel ? 'folder' : 'preset'];
}

form.addEventListener('submit', (event) => {
  event.preventDefault();
  startTraining();
});
$('#pause').addEventListener('click', () => (client.paused ? client.resume() : client.pause()));
$('#stop').addEventListener('click', () => client.stop());
// A new model's adapter comes with the merged model always: its base, the SFT model, is in no other file.
$('#export').addEventListener('click', () => client.exportModel({ merged: !runModel || $('#export-merged').checked }));

// Say up front when WebGPU is missing, not only once a run has started.
(navigator.gpu?.requestAdapter() ?? Promise.resolve(null))
  .catch(() => null)
  .then((adapter) => { $('#webgpu-missing').hidden = Boolean(adapter); });

const sample = readHash();
if (sample) loadSample(sample);
updateButtons();
