// The page's list of the tab's saved runs (run-store.js; the worker saves them, checkpointer.js
// says when): each with how far it got, when, and Resume and Remove. After a reload, a crash
// or a closed tab the newest one is offered first. Finished runs are not listed: the worker
// removes them, as there is nothing left to resume.
import { listRuns, removeRun } from './run-store.js';

// The start message's `save`: a checkpoint every `every` steps (a number, settings.js's
// `checkpoint_every`; 0: only at the end of each phase, pause and stop), and a name for the list.
export function saveOptions(every, { settings }, { data, model }) {
  const { preset, loss } = settings;
  const name = [data, model || `new ${preset} model`, `${loss.loss_type.join('+')} β ${loss.beta}`].join(' · ');
  return { every: Math.max(0, Math.floor(every)), name };
}

const when = (time) => new Date(time).toLocaleString();
const button = (text, className, id) => Object.assign(document.createElement('button'),
  { type: 'button', textContent: text, className, value: id });

export class SavedRuns {
  #listed = 0; // the newest listing asked for: an older one that answers late is dropped
  #drawn = ''; // what the list shows: redrawn only when that changes, not on every step

  // `root`: the section (its `.offer` paragraph and `ul`); `resume(id)`: continues a run.
  constructor(root, client, resume) {
    Object.assign(this, { root, client, runs: [] });
    root.addEventListener('click', async ({ target }) => {
      if (target.matches('button.resume')) resume(target.value);
      if (target.matches('button.remove')) {
        target.disabled = true;
        await removeRun(target.value).catch((error) => console.warn(`removing a saved run: ${error.message}`));
        this.refresh();
      }
    });
    for (const type of ['saved', 'error', 'done']) client.addEventListener(type, () => this.refresh());
    client.addEventListener('change', () => this.#draw());
    this.refresh();
  }

  async refresh() {
    const listing = ++this.#listed;
    // Without an origin-private file system (an old browser) there is nothing to list.
    const runs = await listRuns().catch(() => []);
    if (listing !== this.#listed) return;
    this.runs = runs;
    this.#draw();
  }

  #draw() {
    const { client, runs } = this;
    const current = client.running ? client.state.saved?.id : null;
    const idle = client.ready && !client.running;
    const problem = client.state.saved?.problem;
    const drawing = JSON.stringify({ current, idle, runs, problem });
    if (drawing === this.#drawn) return;
    this.#drawn = drawing;
    this.root.hidden = runs.length === 0 && !problem;
    const warning = this.root.querySelector('.problem');
    warning.hidden = !problem;
    warning.textContent = problem ? `Saving: ${problem}` : '';
    const offer = this.root.querySelector('.offer');
    const newest = runs[0];
    offer.hidden = !(idle && newest);
    if (newest) {
      offer.replaceChildren(`“${newest.name}” was saved at step ${newest.step} of ${newest.totalSteps} (${when(newest.saved)}). `,
        button('Resume it', 'resume', newest.id));
    }
    this.root.querySelector('ul').replaceChildren(...runs.map((run) => {
      const item = document.createElement('li');
      const state = run.id === current ? 'training now' : `step ${run.step} of ${run.totalSteps}`;
      item.append(Object.assign(document.createElement('strong'), { textContent: run.name }),
        ` · ${state} · saved ${when(run.saved)} `);
      const resume = button('Resume', 'resume', run.id);
      const remove = button('Remove', 'remove', run.id);
      resume.disabled = !idle;
      remove.disabled = run.id === current;
      item.append(resume, remove);
      return item;
    }));
  }
}
