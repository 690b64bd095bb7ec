// The offline copy of the site: every page, module, the worker, the wasm, the vendored
// libraries and the shipped data, cached when the service worker installs (offline.js
// registers it). Network first: online, a rebuilt wasm is picked up at once (serve.mjs sends
// no-cache for the same reason) and refreshes the copy; the cache answers only when the
// network does not.
const CACHE = 'dpo-offline-v1';

// Relative to this file. A new page or module must be listed here to work offline before it
// was ever fetched online (tests/browser/offline.test.mjs checks that the list is complete).
const FILES = [
  './', 'index.html', 'lesson.html', 'embed.html',
  'style.css', 'lesson.css', 'dpo-trainer.css',
  'app.js', 'charts.js', 'checkpointer.js', 'dpo-math.js', 'dpo-trainer.js', 'embed.js', 'failures.js', 'gpu-limits.js', 'hf-folder.js',
  'lesson.js', 'metric-names.js', 'model-picker.js', 'offline.js', 'reward-kl.js', 'run-folder.js', 'run-store.js', 'run-viewer.js',
  'samples.js', 'saved-runs.js', 'settings.js', 'trainer-client.js', 'worked-example.js', 'worker.js',
  'library.js', 'pkg/dpo.js', 'pkg/dpo_bg.wasm',
  'pkg-cpu/dpo.js', 'pkg-cpu/dpo_bg.wasm', 'pkg-cpu/snippets/wasm-bindgen-rayon/src/workerHelpers.no-bundler.js',
  'vendor/uPlot.esm.js', 'vendor/uPlot.min.css', 'vendor/fflate.js',
  'samples/train.jsonl', 'samples/heldout.jsonl', 'samples/standard.jsonl',
  'samples/implicit_prompt.jsonl', 'samples/conversational.jsonl', 'samples/reward_kl.json',
];

// The WebGPU build (7 MB gzipped) is copied ahead only where WebGPU can run: a device without
// it trains on pkg-cpu/ and never loads pkg/ (a file fetched online is cached all the same).
const WEBGPU_BUILD = new Set(['pkg/dpo.js', 'pkg/dpo_bg.wasm']);

self.addEventListener('install', (event) => {
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    const webgpu = await self.navigator.gpu?.requestAdapter().catch(() => null);
    const files = webgpu ? FILES : FILES.filter((file) => !WEBGPU_BUILD.has(file));
    // One file at a time and forgiving: a file this build lacks (reward_kl.json before the
    // native experiment has run) must not keep the rest from being cached.
    await Promise.all(files.map((file) =>
      cache.add(file).catch((error) => console.warn(`offline copy: ${file} not cached (${error.message})`))));
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) if (name !== CACHE) await caches.delete(name);
    // Control the pages that are already open, so their next requests are cached too.
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET' || new URL(request.url).origin !== self.location.origin) return;
  event.respondWith(networkFirst(event, request));
});

async function networkFirst(event, request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) event.waitUntil(cache.put(request, response.clone()));
    return response;
  } catch (error) {
    const cached = await cache.match(request, { ignoreSearch: true });
    if (cached) return cached;
    throw error;
  }
}
