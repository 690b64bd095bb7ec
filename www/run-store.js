// The tab's saved runs, kept in the origin-private file system (OPFS) so that a reload, a crash
// or a closed tab costs at most the steps since the last checkpoint. The worker writes them
// (checkpointer.js says when); the page lists and removes them (saved-runs.js).
//
//   runs/<id>/inputs/         what the run is: its pair files (`train`, `eval`) and, in the
//                             manifest, its spec {name, created, settings, backend, report,
//                             trainName, evalName?, model, totalSteps, every}
//   runs/<id>/model/          the Hugging Face folder it started from (none: a fresh preset)
//   runs/<id>/reference/      DPO's reference, exported once at the `frozen` event
//   runs/<id>/step-000012/    a checkpoint: WebTrainer.checkpoint()'s files, and metrics.json
//                             (every step's metrics so far, so the charts come back too)
//
// Whole or not at all, as the native run folder's checkpoints: a folder counts only once its
// manifest.json, written last (after every other file is flushed and closed), lists each of
// its files with a size they still have. A new checkpoint goes beside the previous one, which
// is removed only once the new one is whole, manifest first, so that a half-removed folder is
// never taken for whole. A worker killed mid-write leaves the previous checkpoint as it was;
// the next checkpoint clears the half-written one.
//
// Writing uses synchronous access handles, which exist only in workers: the page only reads.

const MANIFEST = 'manifest.json';
const METRICS = 'metrics.json';
const STEP = 'step-';
const stepFolder = (step) => `${STEP}${String(step).padStart(6, '0')}`;
const encode = (value) => new TextEncoder().encode(JSON.stringify(value));

// Removing what is already gone is no failure.
const unlessMissing = (error) => {
  if (error.name !== 'NotFoundError') throw error;
};

const runs = async () => (await navigator.storage.getDirectory()).getDirectoryHandle('runs', { create: true });

async function names(dir) {
  const out = [];
  for await (const name of dir.keys()) out.push(name);
  return out;
}

// `parent`'s subfolder `name`, or null when there is none.
async function folder(parent, name) {
  return parent.getDirectoryHandle(name).catch((error) => {
    if (error.name === 'NotFoundError' || error.name === 'TypeMismatchError') return null;
    throw error;
  });
}

// The manifest of `dir` when the folder is whole, else null.
async function wholeManifest(dir) {
  try {
    const manifest = JSON.parse(await (await (await dir.getFileHandle(MANIFEST)).getFile()).text());
    for (const [name, size] of Object.entries(manifest.files)) {
      if ((await (await dir.getFileHandle(name)).getFile()).size !== size) return null;
    }
    return manifest;
  } catch {
    return null; // no manifest, a file missing, or a manifest cut short
  }
}

// The files a manifest lists, {name: Uint8Array}.
async function readFiles(dir, manifest) {
  const files = {};
  for (const name of Object.keys(manifest.files)) {
    files[name] = new Uint8Array(await (await (await dir.getFileHandle(name)).getFile()).arrayBuffer());
  }
  return files;
}

// A whole folder's files, or null.
async function readWhole(parent, name) {
  const dir = await folder(parent, name);
  const manifest = dir && await wholeManifest(dir);
  return manifest && readFiles(dir, manifest);
}

async function writeFile(dir, name, bytes) {
  const access = await (await dir.getFileHandle(name, { create: true })).createSyncAccessHandle();
  try {
    access.truncate(0);
    access.write(bytes, { at: 0 });
    access.flush();
  } finally {
    access.close();
  }
}

// Removes a folder, its manifest first: interrupted, what is left is not whole.
async function removeFolder(parent, name) {
  const dir = await folder(parent, name);
  if (!dir) return;
  await dir.removeEntry(MANIFEST).catch(unlessMissing); // a folder cut short has none
  await parent.removeEntry(name, { recursive: true });
}

// Writes `files` ({name: Uint8Array}) as `parent`'s folder `name`, replacing any, then the
// manifest with `extra` fields.
async function writeFolder(parent, name, files, extra = {}) {
  await removeFolder(parent, name);
  const dir = await parent.getDirectoryHandle(name, { create: true });
  const sizes = {};
  for (const [file, bytes] of Object.entries(files)) {
    await writeFile(dir, file, bytes);
    sizes[file] = bytes.byteLength;
  }
  await writeFile(dir, MANIFEST, encode({ ...extra, files: sizes }));
}

// The newest whole checkpoint of a run's folder: {name, manifest, dir}, or null.
async function newestCheckpoint(runDir) {
  const steps = (await names(runDir)).filter((name) => name.startsWith(STEP)).sort().reverse();
  for (const name of steps) {
    const dir = await folder(runDir, name);
    const manifest = dir && await wholeManifest(dir);
    if (manifest) return { name, manifest, dir };
  }
  return null;
}

// Every saved run whose inputs are whole, newest first: {id, name, created, saved, step,
// totalSteps} (`saved`: when its newest checkpoint was written; step 0: none yet).
export async function listRuns() {
  const root = await runs();
  const list = [];
  for (const id of await names(root)) {
    const dir = await folder(root, id);
    const inputs = dir && await folder(dir, 'inputs');
    const spec = inputs && (await wholeManifest(inputs))?.spec;
    if (!spec) continue; // being created, or its creation was cut short
    const newest = await newestCheckpoint(dir);
    const { name, created, totalSteps } = spec;
    list.push({ id, name, created, totalSteps, step: newest?.manifest.step ?? 0, saved: newest?.manifest.saved ?? created });
  }
  return list.sort((a, b) => b.saved - a.saved);
}

export async function removeRun(id) {
  await (await runs()).removeEntry(id, { recursive: true }).catch(unlessMissing);
}

// One saved run, as the worker writes and reads it.
export class SavedRun {
  constructor(id, dir, spec, step) {
    Object.assign(this, { id, dir, spec, step });
  }

  // Saves a new run's inputs: `spec` (as in the layout above, without the file names) and
  // its pair files {name, bytes} and model folder's files.
  static async create(spec, { train, heldout, model }) {
    const id = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
    const dir = await (await runs()).getDirectoryHandle(id, { create: true });
    if (model) await writeFolder(dir, 'model', model);
    const full = { ...spec, created: Date.now(), model: Boolean(model), trainName: train.name, evalName: heldout?.name };
    // Last: a run is listed once its inputs are whole, and by then its model folder is.
    await writeFolder(dir, 'inputs', { train: train.bytes, ...(heldout ? { eval: heldout.bytes } : {}) }, { spec: full });
    return new SavedRun(id, dir, full, 0);
  }

  // A saved run to continue: the run, the inputs to rebuild it from ({train, heldout, model}
  // as WebTrainer.create takes them), `resume` ({checkpoint, reference?}; undefined before
  // the first checkpoint: the run starts over) and the metrics of the steps it holds.
  static async open(id) {
    const dir = await (await runs()).getDirectoryHandle(id);
    const inputs = await folder(dir, 'inputs');
    const manifest = inputs && await wholeManifest(inputs);
    if (!manifest) throw new Error(`the saved run ${id} is incomplete`);
    const { spec } = manifest;
    const pairs = await readFiles(inputs, manifest);
    const model = spec.model ? await readWhole(dir, 'model') : undefined;
    if (model === null) throw new Error(`the saved run ${id} lost its model folder`);
    const newest = await newestCheckpoint(dir);
    let resume;
    let metrics = [];
    if (newest) {
      const { [METRICS]: saved, ...checkpoint } = await readFiles(newest.dir, newest.manifest);
      metrics = JSON.parse(new TextDecoder().decode(saved));
      resume = { checkpoint, reference: (await readWhole(dir, 'reference')) ?? undefined };
    }
    return {
      run: new SavedRun(id, dir, spec, newest?.manifest.step ?? 0),
      inputs: {
        train: { name: spec.trainName, bytes: pairs.train },
        heldout: spec.evalName ? { name: spec.evalName, bytes: pairs.eval } : undefined,
        model,
      },
      resume,
      metrics,
    };
  }

  // Writes the checkpoint of `step` (WebTrainer.checkpoint()'s files, and `metrics`, the
  // steps so far), then removes every other: older ones and half-written leftovers.
  async checkpoint(step, files, metrics) {
    await writeFolder(this.dir, stepFolder(step), { ...files, [METRICS]: encode(metrics) }, { step, saved: Date.now() });
    this.step = step;
    for (const name of await names(this.dir)) {
      if (name.startsWith(STEP) && name !== stepFolder(step)) await removeFolder(this.dir, name);
    }
  }

  saveReference(files) {
    return writeFolder(this.dir, 'reference', files);
  }

  remove() {
    return removeRun(this.id);
  }
}
