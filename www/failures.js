// What went wrong when the wasm fails, in words a user can act on, and reporting it to the
// page once. Imported by worker.js.
//
// The wasm reports ordinary mistakes (bad settings, a broken model folder) as errors with a
// clear message. Hard failures reach the worker differently, and mostly without their cause:
// - a lost WebGPU device: wgpu notes it in the console, and reads then fail with "the device
//   is poisoned", or never finish;
// - an out-of-memory or other uncaptured WebGPU error: wgpu panics inside the device's event
//   handler, and the worker sees only "RuntimeError: unreachable";
// - any other panic: the same "unreachable", its message printed by console_error_panic_hook.
// So this module watches those sources at the JS boundary: every GPUDevice the wasm requests
// (its `lost` promise and its uncaptured errors) and console.error (panic messages).
//
// After any of them the wasm instance cannot be trusted (a panic leaves its state
// half-updated; the WebGPU device is cached for the worker's life): such a failure is
// `fatal`, and the page replaces the worker with a fresh one.

const seen = { lost: null, gpuError: null, panic: null };
let wasmMemory = null;

// The worker's way to speak to the page once failures are watched. Returns
//   post(message, transfer)  postMessage, silent after a fatal failure (the page is
//                            replacing this worker; a panic is followed by a flood of errors)
//   fail(error)              posts {type:'error', message, fatal?} for what a call threw
//   doing(activity, backend) what the worker does now, for the messages: "out of GPU memory
//                            while training step 3 of 12"
// Must run before the wasm requests its device.
export function reportFailures(postMessage) {
  const context = { activity: 'loading the wasm module', backend: null };
  let dead = false;
  const post = (message, transfer = []) => dead || postMessage(message, transfer);
  const fail = (error) => {
    const { message, fatal } = describeFailure(error, context);
    post({ type: 'error', message, ...(fatal && { fatal }) });
    if (fatal) dead = true;
  };
  // A lost device or an uncaptured GPU error is reported at once: a step may never settle.
  watch(() => fail(null));
  // A panic or a rejected promise outside the worker's handlers must still reach the page,
  // once: handled here (preventDefault), it does not reach it again as the Worker's error event.
  self.addEventListener('error', (event) => {
    event.preventDefault();
    fail(event.error ?? event.message);
  });
  self.addEventListener('unhandledrejection', (event) => {
    event.preventDefault();
    fail(event.reason);
  });
  const doing = (activity, backend = context.backend) => Object.assign(context, { activity, backend });
  return { post, fail, doing };
}

function watch(onFailure) {
  const error = console.error.bind(console);
  console.error = (...args) => {
    const text = args.map(String).join(' ');
    if (text.startsWith('panicked at')) seen.panic ??= panicMessage(text); // the first is the cause
    error(...args);
  };
  const request = self.GPUAdapter?.prototype.requestDevice;
  if (!request) return;
  self.GPUAdapter.prototype.requestDevice = async function requestDevice(...args) {
    const device = await request.apply(this, args);
    device.lost.then((info) => {
      seen.lost ??= info;
      onFailure();
    });
    // Added before wgpu sets its own handler, so this runs first, before wgpu's panic.
    device.addEventListener('uncapturederror', ({ error: gpuError }) => {
      seen.gpuError ??= gpuError;
      onFailure();
    });
    return device;
  };
}

// The wasm instance's memory (init()'s exports.memory), to tell an exhausted heap.
export const setWasmMemory = (memory) => { wasmMemory = memory; };

// console_error_panic_hook prints "panicked at FILE:LINE:COL:\nMESSAGE\n\nStack:\n...".
function panicMessage(text) {
  const body = text.replace(/^panicked at [^\n]*\n/, '').split('\n\nStack:')[0];
  return body.split('\n')[0].trim() || body.trim();
}

export const describe = (error) => {
  if (error instanceof Error) return error.message || String(error);
  return typeof error === 'string' ? error : String(error ?? 'unknown error');
};
const looksLikeMemory = (text) =>
  /out of memory|outofmemory|failed to allocate|allocation\b.*\bfail|too large/i.test(text);
const GIB = 2 ** 30;

// {message, fatal} for `error` (what a call threw or rejected with; null when the watch
// itself noticed the failure). `context`: {activity: what the worker was doing, e.g.
// "training step 3 of 12", backend: 'webgpu' | 'cpu' | null}.
function describeFailure(error, { activity, backend }) {
  const during = `while ${activity}`;
  const again = 'press Train to start again';
  if (seen.lost) {
    const { reason } = seen.lost;
    const message = seen.lost.message?.replace(/\.$/, ''); // "Device was destroyed."
    return { fatal: true, message: `the GPU device was lost (reason ${reason}${message ? `: ${message}` : ''}) ${during}: ${again}` };
  }
  const text = describe(error);
  if (seen.gpuError) {
    const gpuText = seen.gpuError.message || seen.gpuError.constructor?.name || 'unknown';
    if ((self.GPUOutOfMemoryError && seen.gpuError instanceof self.GPUOutOfMemoryError) || looksLikeMemory(gpuText)) {
      return outOfMemory('GPU memory', during);
    }
    return { fatal: true, message: `WebGPU reported an error ${during} (${gpuText}): ${again}` };
  }
  // A read on a lost device before the lost promise settled.
  if (/device is poisoned|device (was )?lost/i.test(text)) return { fatal: true, message: `the GPU device was lost (reason unknown) ${during}: ${again}` };
  const trapped = error instanceof WebAssembly.RuntimeError || /RuntimeError/.test(text);
  if (!seen.panic && !trapped) return { fatal: false, message: text };
  const cause = seen.panic ?? text;
  if (looksLikeMemory(cause)) return outOfMemory(backend === 'cpu' ? 'memory' : 'GPU memory', during);
  // Rust aborts on a failed allocation without a panic message: a trap with the wasm memory
  // near its 4 GiB ceiling is that.
  const heap = wasmMemory?.buffer.byteLength ?? 0;
  if (!seen.panic && heap >= 3 * GIB) return outOfMemory(`memory (the wasm heap reached ${(heap / GIB).toFixed(1)} of 4 GiB)`, during);
  return { fatal: true, message: `the trainer crashed ${during} (${cause}): ${again}` };
}

function outOfMemory(what, during) {
  const cpu = what.startsWith('GPU') ? ', or the CPU backend' : '';
  return { fatal: true, message: `out of ${what} ${during}: try a smaller preset or batch${cpu}, then press Train again` };
}
