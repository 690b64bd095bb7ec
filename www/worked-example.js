// The lesson's worked example: four pairs of log-probabilities in editable fields, β and the
// loss type, and everything DPO derives from them recomputed on every keystroke.
import { batch, losses } from './dpo-math.js';

// The introduction's example: the policy is a little surer than the reference of three chosen
// answers and unsurer of three rejected ones; pair 4 goes the wrong way.
const example = {
  policyChosen: [-50, -45, -55, -48],
  policyRejected: [-52, -48, -58, -46],
  refChosen: [-51, -46, -56, -49],
  refRejected: [-51, -46, -56, -49],
};
// log π_model(y_answer), as heading nodes.
const sub = (text) => Object.assign(document.createElement('sub'), { textContent: text });
const logp = (model, answer) => () => ['log π', sub(model), '(y', sub(answer), ')'];
const columns = [
  ['policyChosen', 'policy, chosen', logp('θ', 'w')],
  ['policyRejected', 'policy, rejected', logp('θ', 'l')],
  ['refChosen', 'reference, chosen', logp('ref', 'w')],
  ['refRejected', 'reference, rejected', logp('ref', 'l')],
];
const outputs = [
  ['chosenReward', 'reward, chosen'],
  ['rejectedReward', 'reward, rejected'],
  ['margin', 'margin'],
  ['loss', 'loss'],
];

// Short numbers: 0.1, not 0.10000000149 (float noise) nor 0.1000.
const short = (x) => (Number.isFinite(x) ? String(Number(x.toFixed(4))) : '—');

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};
const header = (...cells) => el('thead', {}, el('tr', {}, ...cells.map((c) => el('th', { scope: 'col' }, ...[c].flat()))));

export function workedExample(root) {
  const count = example.policyChosen.length;
  const inputs = columns.map(([key, words]) => example[key].map((value, i) => {
    const input = el('input', { type: 'number', step: 'any', value: String(value), name: `${key}-${i}` });
    input.setAttribute('aria-label', `Pair ${i + 1}: ${words} log-probability`);
    return input;
  }));
  const beta = el('input', { type: 'number', step: 'any', min: '0', value: '0.1', name: 'beta' });
  const loss = el('select', { name: 'loss' }, ...Object.keys(losses).map((name) => new Option(name, name)));
  const cells = outputs.map(() => Array.from({ length: count }, () => el('output')));
  const meanLoss = el('output', { id: 'we-mean-loss' });
  const accuracy = el('output', { id: 'we-accuracy' });

  const rows = (cellsOf) => el('tbody', {}, ...Array.from({ length: count }, (_, i) =>
    el('tr', {}, el('th', { scope: 'row' }, `Pair ${i + 1}`), ...cellsOf(i).map((c) => el('td', {}, c)))));
  root.replaceChildren(
    el('div', { className: 'scroll' }, el('table', { className: 'worked in' },
      el('caption', {}, 'Inputs: log-probabilities of whole answers (sums over their tokens)'),
      header('', ...columns.map(([, , symbol]) => symbol())),
      rows((i) => inputs.map((column) => column[i])))),
    el('div', { className: 'knobs' },
      el('label', {}, 'β (beta) ', beta),
      el('label', {}, 'Loss ', loss)),
    el('div', { className: 'scroll' }, el('table', { className: 'worked out' },
      el('caption', {}, 'Outputs: implicit rewards β·(log π', sub('θ'), ' − log π', sub('ref'), '), their margin, the loss'),
      header('', ...outputs.map(([, words]) => words)),
      rows((i) => cells.map((column) => column[i])))),
    el('p', { className: 'totals', role: 'status' }, 'Mean loss ', meanLoss, ' · reward accuracy ', accuracy));
  for (const column of cells) column.forEach((cell, i) => { cell.dataset.pair = String(i + 1); });
  outputs.forEach(([key], c) => cells[c].forEach((cell) => { cell.dataset.out = key; }));

  function update() {
    const pairs = Array.from({ length: count }, (_, i) =>
      Object.fromEntries(columns.map(([key], c) => [key, inputs[c][i].valueAsNumber])));
    const result = batch(pairs, beta.valueAsNumber, loss.value);
    outputs.forEach(([key], c) => result.pairs.forEach((p, i) => { cells[c][i].value = short(p[key]); }));
    // Always four decimals, as PyTorch's notebooks print a loss.
    meanLoss.value = Number.isFinite(result.loss) ? result.loss.toFixed(4) : '—';
    accuracy.value = Number.isFinite(result.loss) ? short(result.accuracy) : '—';
  }
  root.addEventListener('input', update);
  update();
}
