// <dpo-trainer>: a compact DPO trainer for any page — data choice, β, Train/Stop and live
// reward plots, training a real model in its own Web Worker (the same worker, protocol,
// settings and charts as the full page: trainer-client.js, settings.js, charts.js).
//
//   <script type="module" src="dpo-trainer.js"></script>
//   <dpo-trainer dataset="sentiment" preset="micro" steps="60" beta="0.1"></dpo-trainer>
// or from script:
//   import { mountTrainer } from './dpo-trainer.js';
//   const trainer = mountTrainer(document.body, { beta: 0.5, steps: 60 });
//
// The page must be served from the same origin as this file (browsers start module workers
// only from their own origin). The element registers no service worker. Under a
// Content-Security-Policy it needs worker-src 'self' blob: and connect-src 'self' on the page,
// and 'wasm-unsafe-eval' in the policy served with worker.js (it compiles the wasm). The CPU
// backend runs on every core only where the page is cross-origin isolated (served with
// `Cross-Origin-Opener-Policy: same-origin` and `Cross-Origin-Embedder-Policy: require-corp`),
// else on one thread; the `dpo-start` event's `threads` says which.
//
// Attributes (read when a run starts; `beta` and `dataset` also update the controls):
//   dataset     a shipped sample (sentiment, standard, implicit_prompt, conversational) or the
//               URL of a JSONL pairs file, relative to the page. Default: sentiment
//   preset      micro (default), tiny or small
//   steps       DPO steps (default 60); sft-steps: SFT steps before them (default 40)
//   beta        the loss's β (default 0.1); the β field starts from it
//   loss, lr, sft-lr, batch, seed, max-length, warmup-steps, eval-limit, backend (auto, webgpu,
//               cpu): as on the full page. Defaults: batch 8, max-length 64, eval-limit 64
//   lora-r      train rank-r LoRA adapters for DPO instead of every weight (default 0: off);
//               lora-alpha (default 8) and lora-targets (comma-separated layer names, or
//               all-linear, the default) as on the full page
//   gradient-checkpointing  on: recompute each layer in the backward pass (less memory,
//               slower steps); off (default)
//   base-precision  with lora-r: the frozen linear weights in f32 (default), f16 or bf16
//   charts      the plots, space-separated among loss, rewards, margins, accuracy, histogram.
//               Default: "rewards margins"
//   autostart   present: train as soon as the data is checked
// Events (they bubble and cross shadow roots, so a page can listen on document):
//   dpo-start     {backend, reason, threads, totalSteps}  training has begun on `backend`
//                 (threads: the CPU backend's, null on WebGPU)
//   dpo-progress  {metrics, totalSteps}          after every step (metrics.jsonl's fields)
//   dpo-done      {stopped, metrics, evaluation} metrics: every step's; evaluation: held-out
//                                                {metrics, margins} or null
//   dpo-error     {message}  after a lost GPU device or running out of memory too: the
//                            element replaces its worker, and Train / start() work again
// Methods and properties:
//   start()   trains; resolves with dpo-done's detail, rejects with the error
//   stop(), pause(), resume()
//   running, metrics (this run's steps), backend, charts (points(), drawn(name): test hooks)
import { Charts, chartCards } from './charts.js';
import { METRIC as M, signed } from './metric-names.js';
import { TrainerClient } from './trainer-client.js';
import { defaults, startMessage } from './settings.js';
import { fetchDataset, readFile, samples } from './samples.js';

// Small enough to watch finish on a laptop CPU in seconds, long enough for curves to form.
const elementDefaults = { ...defaults, preset: 'micro', sft_steps: 40, steps: 60, batch: 8, max_length: 64, eval_limit: 64 };
const OWN_FILE = ':file'; // the dataset choice that shows the file picker
const here = (path) => new URL(path, import.meta.url).href;
const backendNames = { webgpu: 'WebGPU', cpu: 'CPU (wasm)' };

const template = document.createElement('template');
template.innerHTML = `
  <link rel="stylesheet" href="${here('./vendor/uPlot.min.css')}">
  <link rel="stylesheet" href="${here('./dpo-trainer.css')}">
  <div class="controls" part="controls">
    <label>Data <select name="dataset"></select></label>
    <label class="file" hidden>Pairs file (JSONL, .jsonl.gz, Parquet) <input type="file" name="file" accept=".jsonl,.json,.txt,.gz,.parquet"></label>
    <label>β (beta) <input type="number" name="beta" min="0" step="any" inputmode="decimal"></label>
    <div class="buttons">
      <button type="button" name="start" disabled>Train</button>
      <button type="button" name="stop" disabled>Stop</button>
    </div>
  </div>
  <p class="status" part="status" role="status" aria-live="polite">Loading the trainer…</p>
  <div class="charts" part="charts"></div>
  <p class="result" part="result"></p>`;

export class DpoTrainer extends HTMLElement {
  static observedAttributes = ['beta', 'dataset'];

  #client = null;
  #run = null; // the pending start() promise
  #settle = null; // its {resolve, reject}
  #fetching = Promise.resolve(); // the dataset being fetched
  #startedAt = 0;

  constructor() {
    super();
    this.attachShadow({ mode: 'open' }).append(template.content.cloneNode(true));
    const $ = (name) => this.shadowRoot.querySelector(`[name="${name}"]`);
    this.ui = { dataset: $('dataset'), file: $('file'), beta: $('beta'), start: $('start'), stop: $('stop'),
      status: this.shadowRoot.querySelector('.status'), result: this.shadowRoot.querySelector('.result') };
    this.ui.start.addEventListener('click', () => this.start().catch(() => {}));
    this.ui.stop.addEventListener('click', () => this.stop());
    this.ui.dataset.addEventListener('change', () => this.#chooseDataset(this.ui.dataset.value));
    this.ui.file.addEventListener('change', async () => {
      const file = this.ui.file.files[0];
      if (file) this.#load(readFile(file).then((train) => ({ train })));
    });
  }

  connectedCallback() {
    if (this.#client) return;
    const names = (this.getAttribute('charts') ?? 'rewards margins').split(/\s+/).filter(Boolean);
    const box = this.shadowRoot.querySelector('.charts');
    box.replaceChildren(...chartCards(names));
    this.charts = new Charts(box, { height: 150 });
    this.ui.beta.value = this.getAttribute('beta') ?? elementDefaults.beta;
    this.#client = new TrainerClient();
    this.#listen(this.#client);
    this.#chooseDataset(this.getAttribute('dataset') ?? 'sentiment');
  }

  // A removed element stops its worker; moving it (removed, then added in the same task) does not.
  disconnectedCallback() {
    queueMicrotask(() => {
      if (this.isConnected || !this.#client) return;
      this.#client.terminate();
      this.#client = null;
      this.#settle?.reject(new Error('the trainer was removed from the page'));
    });
  }

  attributeChangedCallback(name, old, value) {
    if (!this.#client || value === null || old === value) return;
    if (name === 'beta') this.ui.beta.value = value;
    if (name === 'dataset') this.#chooseDataset(value);
  }

  get running() { return Boolean(this.#client?.running); }
  get metrics() { return this.#client?.state.metrics ?? []; }
  get backend() { return this.#client?.state.backend ?? null; }

  start() {
    this.#run ??= this.#train().finally(() => { this.#run = null; });
    return this.#run;
  }
  stop() { this.#client?.stop(); }
  pause() { this.#client?.pause(); }
  resume() { this.#client?.resume(); }

  async #train() {
    const client = this.#client;
    if (!client) throw new Error('the trainer is not on a page');
    let message;
    try {
      await this.#dataChecked(client);
      const raw = Object.fromEntries(Object.keys(elementDefaults).map((name) =>
        [name, this.getAttribute(name.replaceAll('_', '-')) ?? undefined]));
      raw.beta = this.ui.beta.value;
      message = startMessage(raw, { base: elementDefaults, prompts: 0 });
    } catch (error) {
      if (!error.reported) this.#fail(error.message);
      throw error;
    }
    this.charts.reset();
    this.ui.result.textContent = '';
    this.#startedAt = performance.now();
    const done = new Promise((resolve, reject) => { this.#settle = { resolve, reject }; });
    client.start(message);
    return done;
  }

  // Resolves once every loaded file is checked and valid; throws what is wrong otherwise.
  async #dataChecked(client) {
    await this.#fetching;
    const checked = () => ['train', 'eval'].every((slot) => !client.data[slot] || client.state.checked[slot]);
    while (!checked()) {
      const event = await new Promise((resolve) => {
        const once = (e) => { client.removeEventListener('checked', once); client.removeEventListener('error', once); resolve(e); };
        client.addEventListener('checked', once);
        client.addEventListener('error', once);
      });
      // The worker's error is on screen already (#fail): do not report it twice.
      if (event.type === 'error') throw Object.assign(new Error(event.detail.message), { reported: true });
    }
    if (!client.data.train) throw new Error('choose pairs to train on first');
    if (!client.dataReady) throw new Error(`the pairs are not valid: ${this.ui.status.textContent}`);
  }

  #chooseDataset(choice) {
    const select = this.ui.dataset;
    const options = Object.entries(samples).map(([value, { label }]) => new Option(label, value));
    if (choice !== OWN_FILE && !samples[choice]) options.push(new Option(decodeURIComponent(choice.split('/').pop()), choice));
    options.push(new Option('your own file…', OWN_FILE));
    select.replaceChildren(...options);
    select.value = choice;
    this.shadowRoot.querySelector('.file').hidden = choice !== OWN_FILE;
    if (choice !== OWN_FILE) this.#load(fetchDataset(choice));
  }

  #load(pending) {
    this.#say('Loading pairs…');
    this.#fetching = pending.then((data) => {
      if (!this.#client) return;
      this.#say('Checking pairs…');
      this.#client.load(data);
    }, (error) => {
      this.#fail(error.message);
      throw Object.assign(error, { reported: true });
    });
    this.#fetching.catch(() => {}); // on screen already; a start() meets it again
  }

  #listen(client) {
    const on = (type, handler) => client.addEventListener(type, ({ detail }) => handler(detail));
    on('checked', () => {
      const lines = Object.values(client.state.checked).map((c) =>
        c.bad === 0 && c.pairs > 0 ? `✓ ${c.name}: ${c.pairs} pairs` : `✗ ${c.name}: ${c.bad ? `${c.bad} bad lines, first: ${c.errors[0]?.text}` : 'no pairs'}`);
      this.#say(lines.join(' · '));
      if (this.hasAttribute('autostart') && client.dataReady && !this.#run && !client.state.metrics.length) this.start().catch(() => {});
    });
    on('status', ({ text }) => this.#say(text));
    on('backend', ({ backend, reason, threads, totalSteps }) => {
      this.#say(`Training on ${backendNames[backend]} (${reason})`);
      this.#emit('dpo-start', { backend, reason, threads, totalSteps });
    });
    on('metrics', ({ metrics: m }) => {
      this.charts.add(m);
      const total = client.state.totalSteps;
      const parts = [`Step ${m.step}/${total}`, m.phase.toUpperCase(), `loss ${m.loss.toFixed(4)}`];
      if (m.phase === 'dpo') parts.push(`margin ${signed(m[M.margins])}`);
      this.#say(parts.join(' · '));
      this.#emit('dpo-progress', { metrics: m, totalSteps: total });
    });
    on('evaluation', ({ metrics, margins }) => {
      this.charts.histogram(margins);
      this.ui.result.textContent = `Held-out (${margins.length} pairs): accuracy ${metrics[M.accuracies].toFixed(2)}, ` +
        `margin ${signed(metrics[M.margins])}`;
    });
    on('done', ({ stopped }) => {
      const seconds = ((performance.now() - this.#startedAt) / 1000).toFixed(0);
      this.#say(`${stopped ? 'Stopped' : 'Done'} after ${client.state.metrics.length} steps, ${seconds} s, on ${backendNames[client.state.backend] ?? '—'}`);
      const detail = { stopped: Boolean(stopped), metrics: client.state.metrics, evaluation: client.state.evaluation };
      this.#emit('dpo-done', detail);
      this.#settle?.resolve(detail);
      this.#settle = null;
    });
    on('error', ({ message }) => this.#fail(message));
    client.addEventListener('change', () => {
      this.ui.start.disabled = client.running || !client.ready || !client.dataReady;
      this.ui.stop.disabled = !client.running;
    });
  }

  #fail(message) {
    this.#say(`Error: ${message}`);
    this.ui.status.classList.add('error');
    this.#emit('dpo-error', { message });
    this.#settle?.reject(new Error(message));
    this.#settle = null;
  }

  #say(text) {
    this.ui.status.classList.remove('error');
    this.ui.status.textContent = text;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true, composed: true }));
  }
}

if (!customElements.get('dpo-trainer')) customElements.define('dpo-trainer', DpoTrainer);

// The one-call embedding: a <dpo-trainer> with `options` as attributes (camelCase or the
// attribute names: { sftSteps: 20 } or { 'sft-steps': 20 }), appended to `parent`.
export function mountTrainer(parent, options = {}) {
  const element = document.createElement('dpo-trainer');
  for (const [key, value] of Object.entries(options)) {
    const name = key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`).replaceAll('_', '-');
    if (value === true) element.setAttribute(name, '');
    else if (value !== false && value != null) element.setAttribute(name, String(value));
  }
  parent.append(element);
  return element;
}
