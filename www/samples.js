// The shipped pair files (copied into www/samples/ by scripts/build_web.sh) and fetching pair
// files by URL. URLs resolve against this module, not the page, so that a page embedding
// <dpo-trainer> from another folder still finds them.

export const samples = {
  sentiment: { label: 'sentiment (2000 + 200 pairs)', train: 'train.jsonl', eval: 'heldout.jsonl' },
  // The format examples have 6 pairs: too few to hold a tenth out, so they evaluate on themselves.
  standard: { label: 'format: standard (6 pairs)', train: 'standard.jsonl', eval: 'standard.jsonl' },
  implicit_prompt: { label: 'format: implicit prompt (6 pairs)', train: 'implicit_prompt.jsonl', eval: 'implicit_prompt.jsonl' },
  conversational: { label: 'format: conversational (6 pairs)', train: 'conversational.jsonl', eval: 'conversational.jsonl' },
};

const folder = new URL('./samples/', import.meta.url);

// {name, bytes} of one pairs file, the shape the worker's `load` message takes.
export async function fetchPairs(url) {
  const { href, pathname } = new URL(url);
  const response = await fetch(href);
  const name = decodeURIComponent(pathname.split('/').pop() || 'pairs.jsonl');
  const hint = href.startsWith(folder.href) ? ' (run scripts/build_web.sh)' : '';
  if (!response.ok) throw new Error(`${name}: HTTP ${response.status}${hint}`);
  return { name, bytes: new Uint8Array(await response.arrayBuffer()) };
}

// A shipped sample by name, or any pairs file by URL (relative to `base`): {train, eval?}.
// Without held-out pairs the trainer holds out the last tenth of the training file.
export async function fetchDataset(nameOrUrl, base = document.baseURI) {
  const sample = samples[nameOrUrl];
  if (sample) {
    const [train, heldOut] = await Promise.all([fetchPairs(new URL(sample.train, folder)), fetchPairs(new URL(sample.eval, folder))]);
    return { train, eval: heldOut };
  }
  return { train: await fetchPairs(new URL(nameOrUrl, base)) };
}

// {name, bytes} of a File (file picker or drag-and-drop).
export async function readFile(file) {
  return { name: file.name, bytes: new Uint8Array(await file.arrayBuffer()) };
}
