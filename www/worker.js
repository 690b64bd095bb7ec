// The training worker: owns the wasm modules (library.js) and one WebTrainer, so that no
// training work ever runs on the page's thread (burn's CPU backend is synchronous in wasm and
// would freeze the page). Started by trainer-client.js (for the full page and every
// <dpo-trainer>) as `new Worker('worker.js', {type: 'module'})`.
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
//       save: {every, name}: keep the run in the tab's saved runs (run-store.js), with a
//       checkpoint every `every` steps (0: none), at the end of each phase, at pause and stop
//   {type:'start', resume: id}                     continue a saved run where its newest
//       checkpoint left off, with its settings, data and backend (`resumed` first)
//   {type:'pause'} {type:'resume'} {type:'stop'}  take effect between steps
//   {type:'export', merged?:true}                  the current policy: an HF model folder, or
//       once adapters are on, the adapter folder (PEFT's), with `merged` also the model with
//       the adapters merged in
// Messages out (worker -> page):
//   {type:'ready'}                                 the wasm module is initialised
//   {type:'checked', slot:'train'|'eval', name, pairs, bad, errors:[{line, field, message, text}]}
//   {type:'status', text}                          what the worker is doing (trial runs, ...)
//   {type:'backend', backend:'webgpu'|'cpu', reason, threads, totalSteps}   threads: the CPU
//       backend's (null on WebGPU); the reason says them in words
//   {type:'resumed', id, step, metrics}            a saved run continues after `step`;
//       metrics: those of the steps it had done
//   {type:'saved', id, step, problem}              the run is saved (step: its newest
//       checkpoint's, 0 before the first; null: it finished and was removed); problem: why
//       saving stopped (the run goes on unsaved)
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

import { cpuLibrary, firstLibrary, moduleFor } from './library.js';
import { describe, reportFailures } from './failures.js';
import { limitProblem, modelShape, setFacts } from './gpu-limits.js';
import { unknownMetrics } from './metric-names.js';
import { Checkpointer } from './checkpointer.js';
import { SavedRun } from './run-store.js';

const { post, fail, doing } = reportFailures((message, transfer) => self.postMessage(message, transfer));

const ready = firstLibrary().then(({ module }) => {
  const library = module.facts();
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
    const checked = (await firstLibrary()).module.checkPairs(file.name, bytes);
    if (!quiet || checked.bad > 0) post({ type: 'checked', slot, name: file.name, ...checked });
    if (checked.bad > 0 || checked.pairs === 0) files.invalid = true;
    else files[slot] = { name: file.name, bytes };
  }
}

async function start({ settings, backend = 'auto', report, model, save, resume }) {
  if (run) {
    wake(true);
    await run.finished;
  }
  await ready;
  await loading.catch(() => {}); // its own failure was reported
  const job = resume ? await resumeJob(resume)
    : { settings, backend, report, save, inputs: { train: files.train, heldout: files.eval, model } };
  if (!job.inputs.train || (!resume && files.invalid)) throw new Error('load valid pair files before training');
  const current = { stopped: false, paused: false, wake: null };
  run = current;
  current.finished = train(current, job)
    .catch(fail)
    .finally(() => {
      if (run === current) run = null;
      doing('waiting for a run');
    });
  await current.finished;
}

// A saved run (run-store.js) as a job: its own settings, inputs and backend (the one it
// trained on, so that it goes on as it would have), and where it left off.
async function resumeJob(id) {
  doing('reading a saved run');
  const { run: saved, inputs, resume, metrics } = await SavedRun.open(id);
  const { settings, backend, report } = saved.spec;
  post({ type: 'resumed', id, step: saved.step, metrics });
  return { settings, backend, report, inputs: { ...inputs, resume }, saved, metrics };
}

// The current run's {train, heldout, model?, resume?} while its trainer is built. create
// copies the bytes, so the trial trainers of `auto` and the run share them.
let inputs;
const createTrainer = async (backend, settings, report) => {
  const { WebTrainer } = await moduleFor(backend);
  doing(`building the model on ${backend === 'cpu' ? 'the CPU' : 'WebGPU'}`, backend);
  return WebTrainer.create(backend, { settings, report, ...inputs });
};

// What the driver's next unit of work is, in words.
const STATUS = {
  generate: ({ when }) => `generating text with the ${when === 'before' ? 'SFT' : 'final'} model`,
  freeze: () => 'freezing the reference model',
  evaluate: () => 'evaluating on the held-out pairs',
};
// The driver's events the page hears about; `frozen` and `trained` are cues for saving (the
// native run folder's sft/ and final/; here the saved run's reference, checkpointer.js).
const FORWARDED = new Set(['metrics', 'generations', 'evaluation']);

async function train(current, job) {
  const { settings, backend: requested, report } = job;
  inputs = job.inputs;
  if (inputs.model) post({ type: 'status', text: 'Loading the model folder…' });
  const chosen = await chooseBackend(current, settings, requested, report).finally(() => {
    inputs = undefined; // the trainer holds its own copy
  });
  if (!chosen) return post({ type: 'done', stopped: true });
  if (trainer) {
    const old = trainer;
    trainer = null;
    await exclusive(() => old.free());
  }
  trainer = chosen.trainer;
  const totalSteps = trainer.totalSteps;
  // The CPU backend's threads (library.js), said with the reason.
  const { threads, note } = chosen.backend === 'cpu' ? await cpuLibrary() : { threads: null, note: null };
  post({ type: 'backend', backend: chosen.backend, reason: [chosen.reason, note].filter(Boolean).join('; '), threads, totalSteps });

  const reportParameters = parameterReporter(settings);
  reportParameters();
  // The checkpointer's trainer calls: reading the run to save it (a checkpoint, the reference).
  const call = (method) => {
    doing('saving the run');
    return exclusive(() => method(trainer));
  };
  const saving = await Checkpointer.start(job, chosen.backend, totalSteps, call, post);
  job.inputs = undefined; // saved: let a large model's bytes go
  let steps = job.metrics?.at(-1)?.step ?? 0; // a resumed run's steps done
  for (;;) {
    await yieldToEvents();
    if (current.paused && !current.stopped) await saving?.save();
    while (current.paused && !current.stopped) {
      await new Promise((resolve) => (current.wake = resolve));
    }
    if (current.stopped) {
      await saving?.save();
      return post({ type: 'done', stopped: true });
    }
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
    await saving?.after(event, trainer.upcoming);
    reportParameters();
  }
  await saving?.finished();
  post({ type: 'done' });
}

// Posts the trainer's parameter counts when they differ from the last ones posted: adapters
// on a fresh preset model go on at the first DPO step.
function parameterReporter({ lora, gradient_checkpointing: checkpointing, base_precision: base }) {
  let last = '';
  return () => {
    const [trained, all] = trainer.paramCounts;
    if (`${trained}/${all}` === last) return;
    last = `${trained}/${all}`;
    const count = (n) => n.toLocaleString('en-US');
    const text = trained < all ? `LoRA r ${lora.r}: training ${count(trained)} of ${count(all)} parameters`
      : `training all ${count(all)} parameters${lora ? ` (LoRA r ${lora.r} adapters go on when DPO starts)` : ''}`;
    const extras = [base && `base weights in ${base}`, checkpointing && 'with gradient checkpointing'].filter(Boolean);
    post({ type: 'parameters', trained, all, text: [text, ...extras].join(', ') });
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
  const shape = modelShape(settings, inputs.model?.['config.json']);
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
