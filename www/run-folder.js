// A run folder written by `dpo train --out DIR`, read in the browser so that a CLI run is
// looked at with the page's own charts: its metrics.jsonl (one metrics object per step, the
// names metric-names.js lists, and an `eval` line with the held-out evaluation at the end),
// and train_config.json and run_inputs.json for a caption. No DOM here: run-viewer.js draws it.
import { METRIC as M, signed } from './metric-names.js';
import { baseOf, dirOf } from './hf-folder.js';

export const METRICS_FILE = 'metrics.jsonl';
const CONFIG_FILE = 'train_config.json';
const INPUTS_FILE = 'run_inputs.json';
const PHASES = ['sft', 'dpo', 'eval'];
// What a DPO step must carry for its charts: a file without them is from another program.
const DPO_KEYS = [M.chosen, M.rejected, M.margins, M.accuracies];

// The runs among picked or dropped files ([{path, file}], as hf-folder.js's inputEntries and
// dropEntries give them): every folder holding a metrics.jsonl is one (so a picked parent such
// as runs/ gives each run in it), loose files are one named ''. Returns [{name, files}], files
// by name; throws when there is no metrics.jsonl at all.
export function findRuns(entries) {
  const dirs = [...new Set(entries.filter((e) => baseOf(e.path) === METRICS_FILE).map((e) => dirOf(e.path)))].sort();
  if (dirs.length === 0) {
    const folder = entries[0]?.path.includes('/') ? `The folder “${entries[0].path.split('/')[0]}” holds` : 'These files hold';
    throw new Error(`${folder} no ${METRICS_FILE}: pick the run folder that \`dpo train --out DIR\` wrote ` +
      '(metrics.jsonl, train_config.json, sft/, final/).');
  }
  return dirs.map((dir) => ({
    name: baseOf(dir),
    files: Object.fromEntries(entries.filter((e) => dirOf(e.path) === dir).map((e) => [baseOf(e.path), e.file])),
  }));
}

// One run's contents: {name, metrics: the SFT and DPO steps in step order, evaluation: the
// held-out metrics or null, config, inputs (null when absent or unreadable), notes: what
// the caption should mention}. Throws on a metrics.jsonl the charts cannot trust, naming the
// file and line.
export async function readRun({ name, files }) {
  const where = name ? `${name}/${METRICS_FILE}` : METRICS_FILE;
  const { metrics, evaluation, notes } = parseMetrics(await files[METRICS_FILE].text(), where);
  const json = async (file) => {
    if (!files[file]) return null;
    try {
      return JSON.parse(await files[file].text());
    } catch (error) {
      notes.push(`${file} is not JSON (${error.message}): its settings are not shown`);
      return null;
    }
  };
  return { name, metrics, evaluation, config: await json(CONFIG_FILE), inputs: await json(INPUTS_FILE), notes };
}

// metrics.jsonl's lines as metrics objects. Every line must be one, with an integer step, a
// phase, a loss and, on a DPO step, the reward metrics (a value may be null: serde writes a
// NaN so, and the charts leave a gap).
// Two exceptions: blank lines, and a last line without its newline that is not JSON, which
// is a step being written while the file was read (a run still going).
export function parseMetrics(text, where = METRICS_FILE) {
  const lines = text.split('\n');
  const steps = new Map(); // a repeated step (a log resumed by hand): the later line wins
  const errors = [];
  const notes = [];
  let evaluation = null;
  let repeated = 0;
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const unfinished = i === lines.length - 1;
    let m;
    try {
      m = JSON.parse(line);
    } catch (error) {
      if (unfinished) notes.push(`${METRICS_FILE}'s last line is unfinished (a run still writing?): left out`);
      else errors.push(`line ${i + 1}: not JSON (${error.message})`);
      return;
    }
    const problem = lineProblem(m);
    if (problem) return errors.push(`line ${i + 1}: ${problem}`);
    if (m[M.phase] === 'eval') evaluation = m;
    else {
      if (steps.has(m[M.step])) repeated++;
      steps.set(m[M.step], m);
    }
  });
  if (errors.length) {
    const more = errors.length > 3 ? `\n… and ${errors.length - 3} more bad line${errors.length === 4 ? '' : 's'}` : '';
    throw new Error(`${where}, ${errors.slice(0, 3).join(`\n${where}, `)}${more}`);
  }
  if (steps.size === 0) throw new Error(`${where} holds no training steps`);
  if (repeated) notes.push(`${repeated} step${repeated === 1 ? ' was' : 's were'} logged twice; the later line is drawn`);
  return { metrics: [...steps.values()].sort((a, b) => a[M.step] - b[M.step]), evaluation, notes };
}

function lineProblem(m) {
  if (m === null || typeof m !== 'object' || Array.isArray(m)) return 'not a metrics object';
  if (!Number.isInteger(m[M.step]) || m[M.step] < 0) return `“${M.step}” is ${JSON.stringify(m[M.step])}, not a step number`;
  if (!PHASES.includes(m[M.phase])) return `“${M.phase}” is ${JSON.stringify(m[M.phase])}, not ${PHASES.join(', ')}`;
  const numeric = (key) => m[key] === null || typeof m[key] === 'number';
  if (!numeric(M.loss)) return `“${M.loss}” is ${JSON.stringify(m[M.loss])}, not a number`;
  if (m[M.phase] === 'dpo') {
    const bad = DPO_KEYS.find((key) => !numeric(key));
    if (bad) return m[bad] === undefined ? `a DPO step without “${bad}”` : `“${bad}” is ${JSON.stringify(m[bad])}, not a number`;
  }
  return null;
}

const fixed = (v, digits) => (typeof v === 'number' ? v.toFixed(digits) : '—');

// The run in one line: what trained (preset or model folder, loss, β, steps, batch, seed,
// LoRA, backend where the files say), and the held-out result.
export function caption(run) {
  const c = run.config ?? {};
  const parts = [];
  const model = run.inputs?.model;
  if (model) parts.push(`model ${baseOf(String(model).replace(/\/+$/, ''))}`);
  else if (c.preset) parts.push(c.preset);
  const loss = c.loss ?? {};
  if (loss.loss_type?.length) {
    const weights = loss.loss_weights?.length ? ` (${loss.loss_weights.join(', ')})` : '';
    parts.push(`${loss.loss_type.join(' + ')}${weights}`);
  }
  if (loss.beta != null) parts.push(`β ${loss.beta}`);
  const phase = (name) => run.metrics.filter((m) => m[M.phase] === name).length;
  const [sft, dpo] = [phase('sft'), phase('dpo')];
  const done = `${sft} SFT + ${dpo} DPO steps`;
  // A run stopped early (or still going) says how far it got of what was planned.
  const unfinished = c.steps != null && sft + dpo !== (c.sft_steps ?? 0) + c.steps;
  parts.push(unfinished ? `${done} of ${c.sft_steps ?? 0} + ${c.steps}` : done);
  if (c.batch != null) parts.push(`batch ${c.batch}`);
  if (c.seed != null) parts.push(`seed ${c.seed}`);
  if (c.lora) parts.push(`LoRA r ${c.lora.r ?? '?'}`);
  const backend = c.backend ?? run.inputs?.backend;
  if (backend) parts.push(`on ${backend}`);
  const e = run.evaluation;
  if (e) {
    const margin = typeof e[M.margins] === 'number' ? signed(e[M.margins]) : '—';
    parts.push(`held-out: accuracy ${fixed(e[M.accuracies], 2)}, margin ${margin}, loss ${fixed(e[M.loss], 4)}`);
  }
  return parts.join(' · ');
}
