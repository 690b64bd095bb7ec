// The page side of the worker protocol (documented at the top of worker.js): one training
// worker, the run's state as data, and each worker message re-dispatched as an event of the
// same type (`detail` is the message). The full page (app.js) and every <dpo-trainer> own
// one of these, so neither speaks the protocol itself.
//
// After every message a plain `change` event follows, for views that redraw their buttons.
//
// A fatal error (a lost GPU device, out of memory, a panic: the worker's wasm can no longer be
// trusted) ends that worker: a fresh one takes over at once, with the same pair files, so the
// next start() works without reloading the page. `ready` is false until it has loaded.

const freshRun = () => ({
  metrics: [], backend: null, reason: null, threads: null, totalSteps: null, parameters: null, evaluation: null,
  generations: { before: null, after: null }, done: false, error: null, exported: null,
  // In the tab's saved runs (run-store.js): {id, step, problem} (step: the newest checkpoint's;
  // null once finished and removed; problem: why saving stopped, if it did); resumedFrom: the
  // step a resumed run went on after.
  saved: null, resumedFrom: null,
});

// An `exported` message's folders as {model?: [file names], adapter?: [file names]}.
const folderNames = (message) => Object.fromEntries(['model', 'adapter'].filter((folder) => message[folder])
  .map((folder) => [folder, Object.keys(message[folder])]));

export class TrainerClient extends EventTarget {
  constructor() {
    super();
    // One object for the client's life (tests and views keep a reference to it).
    this.state = { ...freshRun(), checked: {} };
    this.data = { train: null, eval: null };
    this.running = false;
    this.paused = false;
    this.#spawn();
  }

  #spawn() {
    this.ready = false; // the wasm module is initialised
    // Resolved against this module: embedding pages in other folders get the same worker.
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    this.worker = worker;
    // A replaced worker's last messages are dropped: the page has heard why it ended.
    worker.onmessage = ({ data }) => worker === this.worker && this.#receive(data);
    // Only what the worker cannot report itself, such as its script failing to load.
    worker.onerror = (event) => worker === this.worker &&
      this.#receive({ type: 'error', message: `the training worker failed: ${event.message ?? 'see the console'}` });
    // The files were checked by the worker this one replaces: no `checked` events again.
    if (this.data.train) worker.postMessage({ type: 'load', ...this.#files(), quiet: true });
  }

  #files() {
    return { train: this.data.train, eval: this.data.eval ?? undefined };
  }

  // Checks pair files ({name, bytes} each; eval optional); `checked` events report each one.
  load({ train, eval: heldOut = null }) {
    this.data = { train, eval: heldOut };
    this.state.checked = {};
    this.worker.postMessage({ type: 'load', ...this.#files() });
    this.#changed();
  }

  // Whether the loaded files were checked and are all valid.
  get dataReady() {
    const valid = (slot) => {
      const c = this.state.checked[slot];
      return !this.data[slot] || (c && c.bad === 0 && c.pairs > 0);
    };
    return Boolean(this.data.train) && valid('train') && valid('eval');
  }

  // `options`: what settings.js's startMessage returns, plus optionally `model` (a Hugging
  // Face folder's files, {name: Uint8Array}). Those buffers are transferred, not copied (a
  // model can be hundreds of MB): the caller must not use them afterwards.
  // `options.save` ({every, name}) keeps the run in the tab's saved runs.
  start(options) {
    const buffer = (bytes) => (ArrayBuffer.isView(bytes) ? bytes.buffer : bytes);
    this.#begin(options, [...new Set(Object.values(options.model ?? {}).map(buffer))]);
  }

  // Continues a saved run (run-store.js) where its newest checkpoint left off; `resumed`
  // brings the metrics of the steps it had done.
  resumeRun(id) {
    this.#begin({ resume: id });
  }

  #begin(options, transfer = []) {
    Object.assign(this.state, freshRun());
    this.running = true;
    this.paused = false;
    this.worker.postMessage({ type: 'start', ...options }, transfer);
    this.#changed();
  }

  pause() { this.#control(true); }
  resume() { this.#control(false); }
  stop() { this.worker.postMessage({ type: 'stop' }); }
  // merged: in an adapter run, the model with the adapters merged in too.
  exportModel({ merged = false } = {}) { this.worker.postMessage({ type: 'export', merged }); }
  terminate() { this.worker.terminate(); this.running = false; }

  #control(pause) {
    if (!this.running || this.paused === pause) return;
    this.paused = pause;
    this.worker.postMessage({ type: pause ? 'pause' : 'resume' });
    this.#changed();
  }

  #receive(message) {
    const s = this.state;
    switch (message.type) {
      case 'ready': this.ready = true; break;
      case 'checked': s.checked[message.slot] = message; break;
      case 'backend': Object.assign(s, { backend: message.backend, reason: message.reason, threads: message.threads, totalSteps: message.totalSteps }); break;
      case 'metrics': s.metrics.push(message.metrics); break;
      case 'resumed':
        s.metrics.push(...message.metrics);
        s.resumedFrom = message.step;
        break;
      case 'saved': s.saved = { id: message.id, step: message.step, problem: message.problem }; break;
      case 'generations': s.generations[message.when] = message.items; break;
      case 'evaluation': s.evaluation = { metrics: message.metrics, margins: message.margins }; break;
      case 'parameters': s.parameters = { trained: message.trained, all: message.all, text: message.text }; break;
      case 'exported': s.exported = folderNames(message); break;
      case 'done': s.done = true; this.running = false; this.paused = false; break;
      case 'error':
        s.error = message.message;
        this.running = false;
        this.paused = false;
        if (message.fatal) {
          this.worker.terminate();
          this.#spawn();
        }
        break;
    }
    this.dispatchEvent(new CustomEvent(message.type, { detail: message }));
    this.#changed();
  }

  #changed() {
    this.dispatchEvent(new Event('change'));
  }
}
