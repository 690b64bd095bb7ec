// The training worker: owns the wasm module and one WebTrainer, so that no training work
// ever runs on the page's thread (burn's CPU backend is synchronous in wasm and would freeze
// the page). Started by trainer-client.js (for the full page and every <dpo-trainer>) as
// `new Worker('worker.js', {type: 'module'})`.
//
// Messages in (page -> worker):
//   {type:'load', train:{name, bytes}, eval?:{name, bytes}, quiet?:true}   check and keep the
//       pair files (quiet: report only bad ones; a fresh worker taking over checked files)
//   {type:'start', settings, backend:'auto'|'webgpu'|'cpu', report?:{prompts, max_new_tokens,
//    eval_pairs}, model?:{'config.json': Uint8Array, 'model.safetensors', 'tokenizer.json',
//    'tokenizer_config.json'?, 'chat_template.jinja'?}}
//       settings: a partial TrainConfig (preset, seed, sft_steps, steps, batch, lr, sft_lr,
//       max_length, warmup_steps, loss:{loss_type:[..], beta}, lora?:{r, alpha?, targets?});
//       unknown fields are an error.
//       lora: train LoRA adapters (a fresh preset model: on the SFT model, for DPO only)
//       report: held-out prompts sampled before and after DPO, and how many held-out pairs
//       are evaluated at the end (null: all); without a held-out file the library holds out
//       the last tenth of the training pairs
//       model: a Hugging Face folder's files (buffers transferred) to start from instead of
//       a fresh `preset` model; its errors name the file, e.g. "model/config.json: ..."
//   {type:'pause'} {type:'resume'} {type:'stop'}  take effect between steps
//   {type:'export', merged?:true}                  the current policy: an HF model folder, or
//       once adapters are on, the adapter folder (PEFT's), with `merged` also the model with
//       the adapters merged in
// Messages out (worker -> page):
//   {type:'ready'}                                 the wasm module is initialised
//   {type:'checked', slot:'train'|'eval', name, pairs, bad, errors:[{line, field, message, text}]}
//   {type:'status', text}                          what the worker is doing (trial runs, ...)
//   {type:'backend', backend:'webgpu'|'cpu', reason, totalSteps}
//   {type:'parameters', trained, all, text}        how many parameters the optimizer trains,
//       in words in `text`; after `backend`, and again when adapters go on (a fresh preset
//       model's first DPO step)
// The run itself is the library's driver (WebTrainer.next): these three are its events, as
// it reports them.
//   {type:'metrics', metrics}                      after every step (names as in metrics.jsonl)
//   {type:'generations', when:'before'|'after', items:[{prompt, text, reward}]}
//       before: the SFT model, right before the first DPO step; after: the final model;
//       the same held-out prompts and sampling seeds both times
//   {type:'evaluation', metrics, margins}          held-out metrics and per-pair margins
//   {type:'done', stopped?:true}
//   {type:'exported', model?:{name: Uint8Array}, adapter?:{name: Uint8Array}}
//       the folders' files (buffers transferred): an HF model folder, a PEFT adapter folder
//   {type:'error', message, fatal?:true}           any failure; the run (if any) has ended.
//       fatal: the worker is unusable (a lost GPU device, out of memory, a panic: see
//       failures.js) and says nothing more; the page must start a fresh one
//
// Before training on WebGPU the model's largest buffers are checked against the adapter's
// limits (gpu-limits.js): `webgpu` refuses a model that cannot fit, `auto` takes the CPU.

import init, { WebTrainer, checkPairs, facts } from './pkg/dpo.js';
import { describe, reportFailures, setWasmMemory } from './failures.js';
import { limitProblem, modelShape, setFacts } from './gpu-limits.js';
import { unknownMetrics } from './metric-names.js';

const { post, fail, doing } = reportFailures((message, transfer) => self.postMessage(message, transfer));

const ready = init().then((wasm) => {
  setWasmMemory(wasm.memory);
  const library = facts();
  setFacts(library);
  const unknown = unknownMetrics(library.metrics);
  if (unknown.length) throw new Error(`the page reads metrics the library does not report: ${unknown.join(', ')}`);
  doing('waiting for a run');
  post({ type: 'ready' });
});
ready.catch((error) => fail(`the wasm module did not load: ${describe(error)}`));

let files = { train: null, eval: null, invalid: true };
let loading = Promise.resolve(); // the latest `load`: a `start` right behind it waits for it
let trainer = null; // the latest run's trainer, kept after the run so that export works
let run = null; // {stopped, paused, wake, finished}

// WebTrainer methods take &mut self across awaits: two overlapping calls (an export during a
// WebGPU step) would make wasm-bindgen throw. Every trainer call goes through this queue.
let queue = Promise.resolve();
function exclusive(task) {
  const result = queue.then(task);
  queue = result.catch(() => {});
  return result;
}

// On the CPU backend a step's promise resolves without ever leaving the microtask queue, so
// pause/stop messages would wait for the whole run. A MessageChannel round trip lets queued
// messages in without setTimeout's 4 ms clamp.
const channel = new MessageChannel();
const wakers = [];
channel.port1.onmessage = () => wakers.shift()?.();
const yieldToEvents = () =>
  new Promise((resolve) => {
    wakers.push(resolve);
    channel.port2.postMessage(null);
  });

self.onmessage = async ({ data }) => {
  try {
    switch (data?.type) {
      case 'load': return await (loading = load(data));
      case 'start': return await start(data);
      case 'pause': if (run) run.paused = true; return;
      case 'resume': return wake(false);
      case 'stop': return wake(true);
      case 'export': return await exportModel(data);
      default: throw new Error(`unknown message type: ${data?.type}`);
    }
  } catch (error) {
    fail(error);
  }
};

function wake(stop) {
  if (!run) return;
  if (stop) run.stopped = true;
  run.paused = false;
  run.wake?.();
}

async function load({ train, eval: heldOut, quiet = false }) {
  await ready;
  files = { train: null, eval: null, invalid: false };
  for (const [slot, file] of [['train', train], ['eval', heldOut]]) {
    if (!file) continue;
    const bytes = file.bytes instanceof Uint8Array ? file.bytes : new Uint8Array(file.bytes);
    doing('checking the pairs');
    const checked = checkPairs(file.name, bytes);
    if (!quiet || checked.bad > 0) post({ type: 'checked', slot, name: file.name, ...checked });
    if (checked.bad > 0 || checked.pairs === 0) files.invalid = true;
    else files[slot] = { name: file.name, bytes };
  }
}

async function start({ settings, backend = 'auto', report, model }) {
  if (run) {
    wake(true);
    await run.finished;
  }
  await ready;
  await loading.catch(() => {}); // its own failure was reported
  if (!files.train || files.invalid) throw new Error('load valid pair files before training');
  const current = { stopped: false, paused: false, wake: null };
  run = current;
  current.finished = train(current, settings, backend, report, model)
    .catch(fail)
    .finally(() => {
      if (run === current) run = null;
      doing('waiting for a run');
    });
  await current.finished;
}

let modelFiles; // the current run's model folder, or undefined for a fresh preset model
// create copies the model's bytes, so the trial trainers of `auto` and the run share them.
const createTrainer = (backend, settings, report) => {
  doing(`building the model on ${backend === 'cpu' ? 'the CPU' : 'WebGPU'}`, backend);
  return WebTrainer.create(backend, { settings, report, train: files.train, heldout: files.eval, model: modelFiles });
};

// What the driver's next unit of work is, in words.
const STATUS = {
  generate: ({ when }) => `generating text with the ${when === 'before' ? 'SFT' : 'final'} model`,
  freeze: () => 'freezing the reference model',
  evaluate: () => 'evaluating on the held-out pairs',
};
// The driver's events the page hears about; `frozen` and `trained` are the native run
// folder's cues (it saves sft/ and final/ there).
const FORWARDED = new Set(['metrics', 'generations', 'evaluation']);

async function train(current, settings, requested, report, model) {
  modelFiles = model;
  if (model) post({ type: 'status', text: 'Loading the model folder…' });
  const chosen = await chooseBackend(current, settings, requested, report).finally(() => {
    modelFiles = undefined; // the trainer holds its own copy: let a large model's bytes go
  });
  if (!chosen) return post({ type: 'done', stopped: true });
  if (trainer) {
    const old = trainer;
    trainer = null;
    await exclusive(() => old.free());
  }
  trainer = chosen.trainer;
  const totalSteps = trainer.totalSteps;
  post({ type: 'backend', backend: chosen.backend, reason: chosen.reason, totalSteps });

  const reportParameters = parameterReporter(settings.lora);
  reportParameters();
  let steps = 0;
  for (;;) {
    await yieldToEvents();
    while (current.paused && !current.stopped) {
      await new Promise((resolve) => (current.wake = resolve));
    }
    if (current.stopped) return post({ type: 'done', stopped: true });
    const next = trainer.upcoming;
    if (next.work === 'done') break;
    if (next.work === 'step') doing(`training step ${steps + 1} of ${totalSteps}`);
    else if (STATUS[next.work]) {
      const text = STATUS[next.work](next);
      doing(text);
      post({ type: 'status', text: `${text[0].toUpperCase()}${text.slice(1)}…` });
    }
    const event = await exclusive(() => trainer.next());
    if (event?.type === 'metrics') steps = event.metrics.step;
    if (event && FORWARDED.has(event.type)) post(event);
    reportParameters();
  }
  post({ type: 'done' });
}

// Posts the trainer's parameter counts when they differ from the last ones posted: adapters
// on a fresh preset model go on at the first DPO step.
function parameterReporter(lora) {
  let last = '';
  return () => {
    const [trained, all] = trainer.paramCounts;
    if (`${trained}/${all}` === last) return;
    last = `${trained}/${all}`;
    const count = (n) => n.toLocaleString('en-US');
    const text = trained < all ? `LoRA r ${lora.r}: training ${count(trained)} of ${count(all)} parameters`
      : `training all ${count(all)} parameters${lora ? ` (LoRA r ${lora.r} adapters go on when DPO starts)` : ''}`;
    post({ type: 'parameters', trained, all, text });
  };
}

// Returns {backend, reason, trainer}, or null when stopped during the trial runs.
async function chooseBackend(current, settings, requested, report) {
  const cpu = async (reason) => ({ backend: 'cpu', reason, trainer: await createTrainer('cpu', settings, report) });
  if (requested === 'cpu') return cpu('chosen in the settings');
  const adapter = await self.navigator.gpu?.requestAdapter().catch(() => null);
  if (!adapter) {
    return cpu(requested === 'webgpu' ? 'WebGPU not available (it was requested)' : 'WebGPU not available');
  }
  const name = [adapter.info?.vendor, adapter.info?.architecture].filter(Boolean).join(' ');
  const gpu = name ? `WebGPU adapter ${name}` : 'WebGPU adapter';
  // Before any device or model exists: a buffer past the adapter's limits would fail only
  // deep inside a step, with a message about a kernel rather than the model.
  const shape = modelShape(settings, modelFiles?.['config.json']);
  const tooBig = shape && limitProblem(shape, settings, adapter.limits);
  if (tooBig) {
    if (requested === 'webgpu') {
      throw new Error(`this model does not fit the GPU: ${tooBig.message}. Choose the CPU backend, or ${tooBig.smaller}`);
    }
    return cpu(`WebGPU cannot hold this model (${tooBig.message})`);
  }
  if (requested === 'webgpu') {
    try {
      return { backend: 'webgpu', reason: `chosen in the settings (${gpu})`,
        trainer: await createTrainer('webgpu', settings, report) };
    } catch (error) {
      return cpu(`WebGPU failed to start (${describe(error)}): fell back to the CPU`);
    }
  }
  // auto: a short trial on each backend, then a fresh trainer on the faster one, so the run
  // itself is the same as with that backend chosen directly.
  post({ type: 'status', text: 'Timing a few steps on WebGPU…' });
  let gpuMs;
  try {
    gpuMs = await trialMs(current, 'webgpu', settings);
  } catch (error) {
    return cpu(`WebGPU failed (${describe(error)}): fell back to the CPU`);
  }
  if (gpuMs === null) return null;
  post({ type: 'status', text: 'Timing a few steps on the CPU…' });
  const cpuMs = await trialMs(current, 'cpu', settings);
  if (cpuMs === null) return null;
  const timings = `WebGPU ${gpuMs.toFixed(0)} ms/step, CPU ${cpuMs.toFixed(0)} ms/step in a trial`;
  if (cpuMs < gpuMs) return cpu(`faster here: ${timings} (${gpu})`);
  return { backend: 'webgpu', reason: `faster here: ${timings} (${gpu})`,
    trainer: await createTrainer('webgpu', settings, report) };
}

// Mean wall time of steps 2-3 (step 1 compiles the shaders), or null when stopped. The
// trial samples and evaluates nothing, so its first units of work are steps (after freezing
// the reference when there is no SFT phase).
async function trialMs(current, backend, settings) {
  const trial = await createTrainer(backend, settings, { prompts: 0, eval_pairs: 0 });
  try {
    const times = [];
    while (times.length < 3 && trial.upcoming.work !== 'done') {
      await yieldToEvents();
      if (current.stopped) return null;
      doing(`timing trial step ${times.length + 1} on ${backend === 'cpu' ? 'the CPU' : 'WebGPU'}`);
      const t0 = performance.now();
      const event = await trial.next();
      if (event?.type === 'metrics') times.push(performance.now() - t0);
    }
    const timed = times.length > 1 ? times.slice(1) : times;
    return timed.reduce((sum, t) => sum + t, 0) / timed.length;
  } finally {
    trial.free();
  }
}

// PEFT's file: an export that has it is an adapter folder.
const ADAPTER_CONFIG = 'adapter_config.json';

async function exportModel({ merged = false }) {
  if (!trainer) throw new Error('nothing to export yet: train a model first');
  doing('exporting the model', trainer.backend);
  const folders = await exclusive(async () => {
    const files = await trainer.export();
    if (!(ADAPTER_CONFIG in files)) return { model: files };
    return merged ? { adapter: files, model: await trainer.export(true) } : { adapter: files };
  }).finally(() => doing('waiting for a run'));
  const buffers = Object.values(folders).flatMap((files) => Object.values(files).map((bytes) => bytes.buffer));
  post({ type: 'exported', ...folders }, [...new Set(buffers)]);
}
