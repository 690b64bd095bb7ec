// The page's run viewer: run folders written by `dpo train` (picked, or dropped as folders or
// as their loose metrics.jsonl and train_config.json) drawn on the page's own charts, up to
// three overlaid, each captioned with its settings and held-out result. Reading the folders
// is run-folder.js's; drawing them is charts.js's (`view`); this module is the panel.
import { dropEntries, inputEntries } from './hf-folder.js';
import { el, onDrop } from './model-picker.js';
import { MAX_RUNS, runLines } from './charts.js';
import { caption, findRuns, readRun } from './run-folder.js';


export class RunViewer {
  runs = []; // readRun's results, with unique names (the legend tells runs apart by them)
  #queue = Promise.resolve(); // picks are read one after another, in the order made

  constructor(root, charts) {
    this.root = root;
    this.charts = charts;
    this.ui = { list: root.querySelector('.viewed-runs'), error: root.querySelector('.banner.error'),
      live: root.querySelector('button.live') };
    for (const input of root.querySelectorAll('input[type=file]')) {
      input.addEventListener('change', () => {
        if (input.files.length) this.add(inputEntries(input.files));
        input.value = ''; // picking the same folder again (a run that went on) fires again
      });
    }
    // The whole panel takes drops, open or closed.
    onDrop(root, (transfer) => {
      root.open = true;
      this.add(dropEntries(transfer));
    });
    this.ui.live.addEventListener('click', () => this.clear());
    // A new training run takes the charts back (Charts.reset): the viewed runs are let go.
    charts.addEventListener('live', () => {
      this.runs = [];
      this.#render();
    });
  }

  // Adds the runs among picked or dropped entries ([{path, file}], or a promise of them).
  add(entries) {
    this.#queue = this.#queue.then(() => this.#add(entries));
    return this.#queue;
  }

  clear() {
    this.runs = [];
    this.#showError('');
    this.charts.showLive();
    this.#render();
  }

  remove(index) {
    this.runs.splice(index, 1);
    this.#draw();
  }

  async #add(entries) {
    try {
      const found = findRuns(await entries);
      if (this.runs.length + found.length > MAX_RUNS) {
        throw new Error(`At most ${MAX_RUNS} runs can be overlaid: this would make ${this.runs.length + found.length}. ` +
          'Remove one (×) first.');
      }
      for (const run of await Promise.all(found.map(readRun))) {
        run.name = this.#uniqueName(run.name || `run ${this.runs.length + 1}`);
        this.runs.push(run);
      }
      this.#showError('');
      this.root.open = true; // a pick through the closed panel's inputs: show what was read
      this.#draw();
    } catch (error) {
      this.root.open = true;
      this.#showError(error.message);
    }
  }

  #uniqueName(name) {
    const taken = new Set(this.runs.map((run) => run.name));
    let unique = name;
    for (let n = 2; taken.has(unique); n++) unique = `${name} (${n})`;
    return unique;
  }

  #draw() {
    if (this.runs.length) this.charts.view(this.runs);
    else this.charts.showLive();
    this.#render();
  }

  #render() {
    this.ui.list.replaceChildren(...this.runs.map((run, i) => {
      const item = el('li');
      // The line style of this run on the charts, as the key.
      const swatch = el('span', 'swatch');
      swatch.style.borderTopStyle = runLines[i].css;
      const remove = el('button', 'remove', '×');
      remove.type = 'button';
      remove.title = `Remove ${run.name}`;
      remove.setAttribute('aria-label', remove.title);
      remove.addEventListener('click', () => this.remove(i));
      item.append(swatch, el('strong', '', run.name), ` — ${caption(run)}`, remove);
      for (const note of run.notes) item.append(el('small', 'note', note));
      return item;
    }));
    this.ui.list.hidden = this.runs.length === 0;
    this.ui.live.disabled = this.runs.length === 0;
  }

  #showError(message) {
    this.ui.error.textContent = message;
    this.ui.error.hidden = !message;
  }
}
