// The metrics object's field names the page reads, by role: the names of metrics.jsonl,
// which the library defines (`Metrics::NAMES`, reported by the wasm module's `facts()`). The
// worker refuses to start when one of these is not among the library's, so a renamed metric
// fails loudly instead of leaving a chart empty.
export const METRIC = {
  step: 'step',
  phase: 'phase',
  loss: 'loss',
  chosen: 'rewards/chosen',
  rejected: 'rewards/rejected',
  margins: 'rewards/margins',
  accuracies: 'rewards/accuracies',
  ms: 'ms',
};

// A metric as the page writes it: sign always shown, three decimals (a true minus sign).
export const signed = (v) => (v >= 0 ? '+' : '−') + Math.abs(v).toFixed(3);

// The page's names missing from the library's list (empty when they agree).
export function unknownMetrics(libraryNames) {
  return Object.values(METRIC).filter((name) => !libraryNames.includes(name));
}
