// A Hugging Face model folder picked in the browser: which of its files the trainer needs,
// what its config.json says (family and size), and its files as bytes for the worker.
// No DOM here: model-picker.js draws it. The wasm (src/io/hf.rs) is the authority on whether
// a folder loads; this module only reads enough to show the user what they picked and to
// stop early where a file the trainer needs is absent (it could not be sent at all).

export const CONFIG = 'config.json';
export const WEIGHTS = 'model.safetensors';
export const TOKENIZER = 'tokenizer.json';
export const TOKENIZER_CONFIG = 'tokenizer_config.json';
// The chat template as transformers 5 saves it; preferred to tokenizer_config.json's.
export const CHAT_TEMPLATE = 'chat_template.jinja';
const REQUIRED = [CONFIG, WEIGHTS, TOKENIZER];
export const OPTIONAL = [TOKENIZER_CONFIG, CHAT_TEMPLATE];
export const WANTED = [...REQUIRED, ...OPTIONAL];

// The config.json keys of each family the trainer loads (src/model: gpt2, and llama.rs's
// Family::NAMES, which share Llama's keys).
const llamaKeys = { layers: 'num_hidden_layers', width: 'hidden_size', heads: 'num_attention_heads',
  positions: 'max_position_embeddings', inner: 'intermediate_size' };
const families = {
  gpt2: { layers: 'n_layer', width: 'n_embd', heads: 'n_head', positions: 'n_positions', inner: 'n_inner' },
  llama: llamaKeys, mistral: llamaKeys, qwen2: llamaKeys, qwen3: llamaKeys,
};

// The same command the native CLI prints for a pickle checkpoint (src/io/hf.rs read_dir).
const convertCommand = 'python -c "from transformers import AutoModelForCausalLM as M; ' +
  "M.from_pretrained('DIR').save_pretrained('DIR', safe_serialization=True)\"";

// [{path, file}] from a file input: a folder pick gives paths like "llama/config.json", a
// multi-file pick bare names.
export const inputEntries = (fileList) =>
  [...fileList].map((file) => ({ path: file.webkitRelativePath || file.name, file }));

// [{path, file}] from a drop of files, of a folder, or both. A dropped folder arrives as one
// directory entry (its files are not in dataTransfer.files), so it is walked here. The
// entries must be taken during the drop event: the DataTransfer is emptied after it.
export function dropEntries(dataTransfer) {
  const items = [...(dataTransfer.items ?? [])].filter((item) => item.kind === 'file');
  if (!items.length || !items[0].webkitGetAsEntry) return Promise.resolve(inputEntries(dataTransfer.files));
  const taken = items.map((item) => item.webkitGetAsEntry() ?? item.getAsFile()).filter(Boolean);
  return Promise.all(taken.map((entry) => walk(entry, ''))).then((lists) => lists.flat());
}

async function walk(entry, prefix, depth = 0) {
  if (entry instanceof File) return [{ path: entry.name, file: entry }];
  const path = prefix + entry.name;
  if (entry.isFile) return [{ path, file: await new Promise((ok, fail) => entry.file(ok, fail)) }];
  if (depth > 2) return []; // a model's files sit at the top; do not crawl a whole disk
  const reader = entry.createReader();
  const children = [];
  // readEntries answers in batches (100 in Chrome) until it answers none.
  for (let batch; (batch = await new Promise((ok, fail) => reader.readEntries(ok, fail))).length;) children.push(...batch);
  const lists = await Promise.all(children.map((child) => walk(child, `${path}/`, depth + 1)));
  return lists.flat();
}

export const dirOf = (path) => path.slice(0, Math.max(path.lastIndexOf('/'), 0));
export const baseOf = (path) => path.slice(path.lastIndexOf('/') + 1);

// The model folder among the picked files: the one holding config.json nearest the top
// (a Hub repository may have subfolders such as onnx/), else the top one.
// Returns {name (the folder's, '' for loose files), files: {fileName: File}, ignored: [paths]}.
export function chooseFolder(entries) {
  const depth = (dir) => (dir ? dir.split('/').length : 0);
  const dirs = [...new Set(entries.map((e) => dirOf(e.path)))].sort((a, b) => depth(a) - depth(b));
  const withConfig = dirs.find((dir) => entries.some((e) => dirOf(e.path) === dir && baseOf(e.path) === CONFIG));
  const dir = withConfig ?? dirs[0] ?? '';
  const files = {};
  const ignored = [];
  for (const { path, file } of entries) {
    if (dirOf(path) === dir) files[baseOf(path)] = file;
    else ignored.push(path);
  }
  return { name: baseOf(dir), files, ignored };
}

// What the folder holds and says: {name, present: [{name, size}], problems: [text] (training
// cannot start), warnings: [text] (the trainer will most likely refuse it), config:
// {modelType, family, layers, width, heads, vocab, positions} | null, weights:
// {tensors, parameters, dtypes} | null, ignored}.
export async function inspectFolder({ name, files, ignored }) {
  const present = WANTED.filter((f) => files[f]).map((f) => ({ name: f, size: files[f].size }));
  const problems = [];
  const warnings = [];
  if (!files[CONFIG]) problems.push(`${CONFIG} is missing: pick the model's folder itself (the one with ${CONFIG} in it).`);
  if (!files[WEIGHTS]) {
    if (files['pytorch_model.bin']) {
      problems.push(`Only pytorch_model.bin is here: this trainer reads ${WEIGHTS}, not pickle checkpoints ` +
        `(they can run code). Convert it once: ${convertCommand}`);
    } else if (files['model.safetensors.index.json']) {
      problems.push(`The weights are split into shards (model.safetensors.index.json): this trainer reads one ` +
        `${WEIGHTS}. Re-save them unsplit with save_pretrained(DIR, max_shard_size="100GB").`);
    } else {
      problems.push(`${WEIGHTS} is missing.`);
    }
  }
  if (!files[TOKENIZER]) {
    problems.push(`${TOKENIZER} is missing (a slow tokenizer's files are not read): ` +
      'AutoTokenizer.from_pretrained(DIR).save_pretrained(DIR) writes it.');
  }
  const config = files[CONFIG] ? await readConfig(files[CONFIG], warnings) : null;
  const weights = files[WEIGHTS] ? await readSafetensorsHeader(files[WEIGHTS], warnings) : null;
  return { name, present, problems, warnings, config, weights, ignored };
}

async function readConfig(file, warnings) {
  let json;
  try {
    json = JSON.parse(await file.text());
  } catch (error) {
    warnings.push(`${CONFIG} is not valid JSON (${error.message}).`);
    return null;
  }
  const config = modelSizes(json);
  if (!config.family) {
    warnings.push(`${CONFIG}: model_type ${JSON.stringify(config.modelType ?? null)} is not a family this trainer ` +
      `loads (${Object.keys(families).join(', ')}).`);
  }
  return config;
}

// The sizes a parsed config.json gives: {modelType, family (null when not one the trainer
// loads), layers, width, heads, vocab, positions, inner (the MLP width)}. Also read by
// gpu-limits.js, to check a folder model against the GPU's buffer limits.
export function modelSizes(json) {
  const modelType = json.model_type;
  const keys = families[modelType];
  // An unknown family still shows its sizes where it uses one of the known key names.
  const read = (what) => (keys ? json[keys[what]] : Object.values(families).map((k) => json[k[what]]).find((v) => v != null));
  const width = read('width');
  // GPT-2 leaves n_inner null for 4 x width (src/model/config.rs inner_dim).
  const inner = read('inner') ?? (modelType === 'gpt2' && Number.isInteger(width) ? 4 * width : undefined);
  return { modelType, family: keys ? modelType : null, layers: read('layers'), width,
    heads: read('heads'), vocab: json.vocab_size, positions: read('positions'), inner };
}

// safetensors starts with an 8-byte little-endian header length and a JSON header of
// {name: {dtype, shape, data_offsets}}: enough to count parameters without reading weights.
async function readSafetensorsHeader(file, warnings) {
  try {
    const length = Number(new DataView(await file.slice(0, 8).arrayBuffer()).getBigUint64(0, true));
    if (!(length > 1 && 8 + length <= file.size)) throw new Error('no header');
    const header = JSON.parse(await file.slice(8, 8 + length).text());
    const tensors = Object.entries(header).filter(([name]) => name !== '__metadata__');
    const parameters = tensors.reduce((sum, [, t]) => sum + t.shape.reduce((a, b) => a * b, 1), 0);
    return { tensors: tensors.length, parameters, dtypes: [...new Set(tensors.map(([, t]) => t.dtype))] };
  } catch {
    warnings.push(`${WEIGHTS} is not a safetensors file.`);
    return null;
  }
}

// The folder's files for WebTrainer.create: {fileName: Uint8Array}, read afresh at each
// start because the worker takes the buffers over (transferred, not copied).
export async function readFolder({ files }) {
  const read = async (name) => [name, new Uint8Array(await files[name].arrayBuffer())];
  return Object.fromEntries(await Promise.all(WANTED.filter((name) => files[name]).map(read)));
}

// "1.2 M" and the like, for sizes and parameter counts.
export function compact(n, unit = '') {
  const [scale, suffix] = n >= 1e9 ? [1e9, ' G'] : n >= 1e6 ? [1e6, ' M'] : n >= 1e3 ? [1e3, ' K'] : [1, ' '];
  return `${(n / scale).toFixed(scale === 1 ? 0 : 1)}${suffix}${unit}`.trim();
}
