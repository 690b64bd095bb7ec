// Run settings as flat names (the page's form fields, the element's attributes, the URL hash)
// and how they become the worker's `start` message. One place, so the page and every
// <dpo-trainer> send exactly the same thing for the same settings.

// TrainConfig's defaults, with fewer steps so that a run fits in a tab's session. A blank
// default is left out of the message: the library picks it (lora_alpha: 8; lora_targets:
// all-linear). lora_r 0: no adapters. checkpoint_every: the full page's saved runs
// (saved-runs.js); startMessage leaves it out, and an element saves no run.
export const defaults = {
  preset: 'tiny', backend: 'auto', sft_steps: 200, steps: 100, loss: 'sigmoid', beta: 0.1,
  lr: 1e-4, batch: 16, seed: 42, sft_lr: 1e-3, max_length: 128, warmup_steps: 10, gen_tokens: 24,
  eval_limit: 0, lora_r: 0, lora_alpha: '', lora_targets: '', checkpoint_every: 25,
  gradient_checkpointing: 'off', base_precision: 'f32',
};
const textFields = new Set(['preset', 'backend', 'loss', 'lora_targets', 'gradient_checkpointing', 'base_precision']);

// The settings that go to TrainConfig; the rest steer the worker (backend, generations, evaluation).
const configFields = ['preset', 'seed', 'sft_steps', 'steps', 'batch', 'lr', 'sft_lr', 'max_length', 'warmup_steps'];

// One setting from `raw` (name -> string or number): missing or empty takes `base`'s;
// undefined when blank there too (the library's default). Throws on a value that is not a
// number, naming the field.
export function settingValue(raw, name, base = defaults) {
  const given = raw[name];
  const text = given === undefined || given === null || given === '' ? base[name] : given;
  if (text === '') return undefined;
  if (textFields.has(name)) return String(text);
  const number = Number(text);
  if (!Number.isFinite(number)) throw new Error(`${name}: not a number (${given})`);
  return number;
}

export function startMessage(raw, { base = defaults, prompts = 4 } = {}) {
  const value = (name) => settingValue(raw, name, base);
  const settings = {};
  for (const name of configFields) {
    const given = value(name);
    if (given !== undefined) settings[name] = given;
  }
  settings.loss = { loss_type: [value('loss')], beta: value('beta') };
  const checkpointing = value('gradient_checkpointing');
  if (!['on', 'off'].includes(checkpointing)) throw new Error(`gradient_checkpointing: on or off (${checkpointing})`);
  if (checkpointing === 'on') settings.gradient_checkpointing = true;
  // f16/bf16: the library checks it against the device and requires adapters, naming the field.
  const basePrecision = value('base_precision');
  if (basePrecision !== 'f32') settings.base_precision = basePrecision;
  const rank = value('lora_r');
  if (rank > 0) {
    const targets = (value('lora_targets') ?? '').split(',').map((t) => t.trim()).filter(Boolean);
    const alpha = value('lora_alpha');
    // Left out, alpha and targets take the library's defaults (8; all-linear).
    settings.lora = { r: rank, ...(alpha === undefined ? {} : { alpha }), ...(targets.length ? { targets } : {}) };
  }
  // The run's report (the library's `Report`): eval_limit 0 evaluates every held-out pair.
  const report = { prompts, max_new_tokens: value('gen_tokens'), eval_pairs: value('eval_limit') || null };
  return { settings, backend: value('backend'), report };
}
