// Run settings as flat names (the page's form fields, the element's attributes, the URL hash)
// and how they become the worker's `start` message. One place, so the page and every
// <dpo-trainer> send exactly the same thing for the same settings.

// TrainConfig's defaults, with fewer steps so that a run fits in a tab's session.
export const defaults = {
  preset: 'tiny', backend: 'auto', sft_steps: 200, steps: 100, loss: 'sigmoid', beta: 0.1,
  lr: 1e-4, batch: 16, seed: 42, sft_lr: 1e-3, max_length: 128, warmup_steps: 10, gen_tokens: 24,
  eval_limit: 0,
};
const textFields = new Set(['preset', 'backend', 'loss']);

// The settings that go to TrainConfig; the rest steer the worker (backend, generations, evaluation).
const configFields = ['preset', 'seed', 'sft_steps', 'steps', 'batch', 'lr', 'sft_lr', 'max_length', 'warmup_steps'];

// `raw`: name -> string or number; missing or empty values take `base`'s. Throws on a value
// that is not a number, naming the field.
export function startMessage(raw, { base = defaults, prompts = 4 } = {}) {
  const value = (name) => {
    const given = raw[name];
    const text = given === undefined || given === null || given === '' ? base[name] : given;
    if (textFields.has(name)) return String(text);
    const number = Number(text);
    if (!Number.isFinite(number)) throw new Error(`${name}: not a number (${given})`);
    return number;
  };
  const settings = Object.fromEntries(configFields.map((name) => [name, value(name)]));
  settings.loss = { loss_type: [value('loss')], beta: value('beta') };
  // The run's report (the library's `Report`): eval_limit 0 evaluates every held-out pair.
  const report = { prompts, max_new_tokens: value('gen_tokens'), eval_pairs: value('eval_limit') || null };
  return { settings, backend: value('backend'), report };
}
