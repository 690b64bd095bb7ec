// When the worker saves a run (run-store.js), as `dpo train --save-every` does: a checkpoint
// every `every` steps and at the end of each phase, and here also at pause and at stop (the
// moments a tab is likely to be closed); DPO's reference once, when the run fixes it. A run
// that finishes is removed: nothing is left to resume, and a tab's storage is not a place to
// pile up finished models (export them).
//
// Saving never ends a run: when the browser cannot save (no origin-private file system, the
// storage quota used up), the run goes on unsaved and the page is told why. Nothing more is
// written then, so what was saved stays a consistent checkpoint to resume.
import { SavedRun } from './run-store.js';

export class Checkpointer {
  // `job.save`: {every, name}, to save a new run; `job.saved`: a resumed run's SavedRun, with
  // `job.metrics`, its steps so far. `call(method)` runs a WebTrainer method in the worker's
  // queue; `post` tells the page. Null when the run is not saved.
  static async start(job, backend, totalSteps, call, post) {
    if (!job.saved && !job.save) return null;
    const keeper = new Checkpointer(job.saved, [...(job.metrics ?? [])], call, post);
    if (!keeper.saved) {
      const { settings, report, inputs, save: { every, name } } = job;
      await keeper.#safely(async () => {
        keeper.saved = await SavedRun.create({ name, settings, backend, report, every, totalSteps }, inputs);
      });
    }
    keeper.#tell();
    return keeper;
  }

  constructor(saved, metrics, call, post) {
    Object.assign(this, { saved, metrics, call, post, problem: null });
  }

  // After each of the driver's events, with what it does next (WebTrainer.upcoming).
  async after(event, upcoming) {
    if (this.problem) return;
    if (event?.type === 'metrics') {
      this.metrics.push(event.metrics);
      const { step, phase } = event.metrics;
      const { every } = this.saved.spec;
      if ((every > 0 && step % every === 0) || upcoming.phase !== phase) await this.save();
    } else if (event?.type === 'frozen' && event.from_policy) {
      // A resumed run fixes the saved one again (from_policy false): nothing new to save.
      await this.#safely(async () => this.saved.saveReference(await this.call((trainer) => trainer.export())));
    }
  }

  // A checkpoint of the steps done, unless the newest one holds them already.
  async save() {
    const step = this.metrics.at(-1)?.step ?? 0;
    if (this.problem || step === this.saved.step) return;
    await this.#safely(async () => {
      const files = await this.call((trainer) => trainer.checkpoint());
      await this.saved.checkpoint(step, files, this.metrics);
    });
    this.#tell();
  }

  async finished() {
    if (!this.saved) return;
    this.problem = null; // whatever stopped the saving, a finished run's copy is of no use
    await this.#safely(async () => {
      await this.saved.remove();
      this.saved.step = null;
    });
    this.#tell();
  }

  // Runs a write unless one has failed; a failure stops all saving for this run.
  async #safely(write) {
    if (this.problem) return;
    try {
      await write();
    } catch (error) {
      this.problem = `this run is no longer saved (${error.name}: ${error.message}): a reload would lose what it did since`;
      console.warn(this.problem);
    }
  }

  // {type: 'saved', id, step, problem}: the newest checkpoint's step (0: none yet; null: the
  // finished run was removed), and why saving stopped, if it did.
  #tell() {
    const { saved, problem } = this;
    this.post({ type: 'saved', id: saved?.id ?? null, step: saved?.step ?? null, problem });
  }
}
