// Whether a model fits the WebGPU adapter's buffer limits, checked before training starts.
// A buffer past `maxStorageBufferBindingSize` or `maxBufferSize` (1 GiB on SwiftShader, as
// little as 128 MiB on some laptops) cannot be bound: the wasm would fail deep inside a step
// with a validation error that says nothing about the model. Estimating the largest buffers
// here lets the page refuse up front, naming the buffer, its size and the limit.
// LoRA adapters change none of these: the frozen weights stay whole on the device, the
// activations and logits are as large, and the adapters' own tensors are small. Nor does a
// half-precision base (base_precision): the embedding stays f32, and each linear weight is
// cast to an f32 buffer of its full size as a product uses it.
// No DOM: the worker imports this, and so can a plain Node test.
import { modelSizes } from './hf-folder.js';

const F32 = 4; // every tensor the trainer builds is f32

// The library's numbers, from the wasm module's `facts()` (the worker sets them once the
// module is loaded): `presets`, each preset's shape (a fresh model's vocabulary is the
// preset's target or less, so these are upper bounds), `max_chunk_logits`, the most logits
// (floats) the language-model head computes at once, whatever the vocabulary, and
// `attention_block_scores`, the most attention scores one block of query rows holds.
let facts = null;
export function setFacts(value) {
  facts = value;
}
const library = () => {
  if (!facts) throw new Error('gpu-limits.js: setFacts(facts()) first');
  return facts;
};

// {vocab, width, heads, inner, from} of the model a run trains: the picked folder's
// config.json (bytes) when there is one, else the preset named in `settings`. null when the
// sizes cannot be read (the wasm then reports what is wrong with the config).
export function modelShape(settings, configBytes) {
  if (configBytes) {
    let sizes;
    try {
      sizes = modelSizes(JSON.parse(new TextDecoder().decode(configBytes)));
    } catch {
      return null;
    }
    const { vocab, width, heads, inner } = sizes;
    return [vocab, width, heads, inner].every(Number.isInteger) ? { vocab, width, heads, inner, from: 'model' } : null;
  }
  const preset = library().presets[settings.preset ?? 'tiny'];
  return preset ? { ...preset, inner: 4 * preset.width, from: 'preset' } : null;
}

// The largest buffers one step allocates, largest first: [{what, bytes, cause}], where cause
// is 'model' (it grows with the model) or 'batch' (with batch x max length).
export function largestBuffers({ vocab, width, heads, inner }, { batch = 16, max_length: length = 128 } = {}) {
  // A DPO step runs chosen and rejected together: 2 x batch sequences (evaluation and the
  // reference pass take the whole batch, gradient accumulation or not).
  const sequences = 2 * batch;
  const rows = sequences * length; // every position may be scored
  const chunkRows = Math.min(rows, Math.max(1, Math.floor(library().max_chunk_logits / vocab)));
  const blockRows = Math.min(length, Math.max(1, Math.floor(library().attention_block_scores / (sequences * heads * length))));
  const buffers = [
    // Training every weight, also the size of its gradient and of each AdamW moment.
    { what: `the token embedding (${vocab} tokens × ${width})`, bytes: vocab * width * F32, cause: 'model' },
    { what: `one MLP weight (${width} × ${inner})`, bytes: width * inner * F32, cause: 'model' },
    { what: `a chunk of logits (${chunkRows} positions × ${vocab} tokens)`, bytes: chunkRows * vocab * F32, cause: 'batch' },
    // Attention scores one block of query rows at a time (at least one row).
    { what: `a block of attention scores (${sequences} sequences × ${heads} heads × ${blockRows} × ${length} positions)`,
      bytes: sequences * heads * blockRows * length * F32, cause: 'batch' },
    { what: `the MLP activation tensor (${rows} positions × ${inner})`, bytes: rows * inner * F32, cause: 'batch' },
  ];
  return buffers.sort((a, b) => b.bytes - a.bytes);
}

// Why the model does not fit `limits` (a GPUSupportedLimits), or null when it does:
// {message, buffer, limit, smaller (what to try instead)}. Names the largest buffer over a
// limit, its size, and the tightest limit it breaks; the model's own buffers first, since no
// smaller batch can help those.
export function limitProblem(shape, settings, limits) {
  const bounds = ['maxStorageBufferBindingSize', 'maxBufferSize']
    .map((name) => ({ name, value: Number(limits?.[name]) }))
    .filter(({ value }) => Number.isFinite(value) && value > 0)
    .sort((a, b) => a.value - b.value);
  const buffers = largestBuffers(shape, settings);
  for (const buffer of [...buffers.filter((b) => b.cause === 'model'), ...buffers.filter((b) => b.cause !== 'model')]) {
    const limit = bounds.find(({ value }) => buffer.bytes > value);
    if (!limit) continue;
    const smaller = buffer.cause === 'model'
      ? (shape.from === 'model' ? 'a smaller model' : 'a smaller preset')
      : 'a smaller batch or max length';
    // Adapters are the usual remedy for a model too large to train: say that they are none here.
    const adapters = settings?.lora ? '; LoRA adapters do not make it smaller' : '';
    return { buffer, limit, smaller,
      message: `${buffer.what} needs ${formatBytes(buffer.bytes)} but this GPU's ${limit.name} is ${formatBytes(limit.value)}${adapters}` };
  }
  return null;
}

// 1073741824 -> "1 GiB", 1288490189 -> "1.2 GiB": binary units, as GPU limits are.
export function formatBytes(bytes) {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const text = unit === 0 ? String(value) : value.toFixed(1).replace(/\.0$/, '');
  return `${text} ${units[unit]}`;
}
