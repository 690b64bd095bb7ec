// The Rust library in the worker, as two builds of the same crate (scripts/build_web.sh):
//   pkg-cpu/  the CPU backend only: a fraction of the download. Built with threads: where the
//             page is cross-origin isolated (COOP + COEP headers, `crossOriginIsolated`), its
//             CPU backend runs on every core the browser reports (rayon on Web Workers sharing
//             the module's memory); elsewhere on one thread. Every CPU run trains on it.
//   pkg/      the WebGPU backend as well: every WebGPU run trains on it.
// Both take the same calls (`WebTrainer`, `checkPairs`, `facts`); trainers and checkpoints
// move between them as bytes.

import { setWasmMemory } from './failures.js';

let cpuLoad = null;
let gpuLoad = null;

// {module, memory, threads, note}: `note` says in words how many threads the CPU backend has, and why.
export function cpuLibrary() {
  cpuLoad ??= loadCpu().catch(async (error) => {
    // A browser that refuses shared memory outside cross-origin isolation cannot instantiate
    // the threaded build: the WebGPU build's CPU backend (one thread) does the same work.
    return { ...(await gpuLibrary()), threads: 1, note: `one thread (the threaded build did not load: ${error.message ?? error})` };
  });
  return cpuLoad;
}

async function loadCpu() {
  const module = await import('./pkg-cpu/dpo.js');
  const { memory } = await module.default();
  const cores = self.navigator.hardwareConcurrency ?? 1;
  if (self.crossOriginIsolated && cores > 1) await module.initThreadPool(cores);
  const threads = module.cpuThreads();
  const note = self.crossOriginIsolated
    ? `${threads} thread${threads === 1 ? '' : 's'}`
    : 'one thread (the page is not cross-origin isolated, so no threads)';
  return { module, memory, threads, note };
}

// {module, memory}
export function gpuLibrary() {
  gpuLoad ??= import('./pkg/dpo.js').then(async (module) => ({ module, memory: (await module.default()).memory }));
  return gpuLoad;
}

// The build that checks pairs and gives the library's facts before any run: the one the first
// run most likely trains on, so that a tab with WebGPU does not fetch the CPU build first and
// one without never fetches pkg/. (`auto` with WebGPU times both, so fetches both.)
let firstLoad = null;
export function firstLibrary() {
  firstLoad ??= (async () => {
    const adapter = await self.navigator.gpu?.requestAdapter().catch(() => null);
    return adapter ? gpuLibrary() : cpuLibrary();
  })();
  return firstLoad;
}

// The module that trains on `backend`, its wasm memory registered for failures.js's
// out-of-memory diagnosis.
export async function moduleFor(backend) {
  const { module, memory } = await (backend === 'cpu' ? cpuLibrary() : gpuLibrary());
  setWasmMemory(memory);
  return module;
}
