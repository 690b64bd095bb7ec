// Live training charts on uPlot: loss, implicit rewards, margins, accuracy, and the
// held-out margin histogram at the end. A Charts object draws the charts whose cards
// (`[data-chart=name]` holding a `.plot`) are in its root: the full page has them all, a
// <dpo-trainer> the few it was asked for (see chartCards). Metrics arrive every step (tens of
// ms apart on a fast backend), so data is appended at once and drawn at most once per frame.
// The same charts can instead show finished runs read from run folders (`view`), several
// overlaid: each run is one set of the chart's series, told apart by dash and legend label.
import uPlot from './vendor/uPlot.esm.js';
import { METRIC as M } from './metric-names.js';

export const colors = {
  sft: '#8250df',
  dpo: '#0969da',
  chosen: '#1a7f37',
  rejected: '#cf222e',
  margin: '#0969da',
  accuracy: '#9a6700',
  histogram: '#0969da',
};

// uPlot takes an explicit `scale: undefined` literally, so the key is set only when given.
const line = (label, stroke, scale) => ({ label, stroke, width: 2, spanGaps: false, ...(scale ? { scale } : {}) });
// The line style of the i-th viewed run (the colours stay those of the quantity): its
// canvas dash and the CSS border style of its legend marker (and of run-viewer's key). As
// many runs can be overlaid as there are styles that tell them apart.
export const runLines = [{ css: 'solid' }, { dash: [7, 4], css: 'dashed' }, { dash: [2, 3], css: 'dotted' }];
export const MAX_RUNS = runLines.length;
// A chart definition's series as one run's set: labelled with the run's name, dashed for
// the second and third run. Live training is one set, labelled as the definition says.
const seriesSet = (def, run, index) => def.series.map((s) => ({
  ...s, run: index, ...(run ? { label: `${s.label} · ${run}` } : {}), ...(runLines[index].dash ? { dash: runLines[index].dash } : {}),
}));
const markerStyle = (u, i) => runLines[u.series[i].run ?? 0].css;
export const axis = (extra = {}) => ({ stroke: '#57606a', grid: { stroke: '#eaeef2' }, ticks: { stroke: '#d0d7de' }, ...extra });
// Tick labels with just enough decimals to tell neighbouring ticks apart ("0.6935", not
// "0.693" three times), and y axes as wide as their widest label: uPlot's fixed 50 px
// right-aligns labels into the edge and cuts off signs and leading digits.
export function tickLabels(u, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : 1;
  let decimals = 0;
  while (decimals < 6 && ticks.some((t) => Math.abs(t - Number(t.toFixed(decimals))) > step * 1e-3)) decimals++;
  return ticks.map((t) => (Math.abs(t) < step * 1e-6 ? 0 : t).toFixed(decimals));
}
export const labelWidth = (u, values) => (values ? Math.max(...values.map((v) => String(v).length)) : 4) * 7.5 + 22;

// Each chart: its title, uPlot options (minus size) and how a metrics object becomes a row
// (null: the step does not belong on this chart).
const definitions = {
  loss: {
    title: 'Loss',
    series: [line('SFT loss', colors.sft, 'sft'), line('DPO loss', colors.dpo, 'dpo')],
    // SFT loss (~6 falling to ~2) and DPO loss (~0.69) differ by an order of magnitude:
    // each gets its own axis so that neither curve is flattened.
    axes: [axis(), axis({ scale: 'sft', stroke: colors.sft, size: labelWidth, values: tickLabels }),
      axis({ scale: 'dpo', side: 1, stroke: colors.dpo, grid: { show: false }, size: labelWidth, values: tickLabels })],
    scales: { sft: { auto: true }, dpo: { auto: true } },
    row: (m) => [m.step, m.phase === 'sft' ? m.loss : null, m.phase === 'dpo' ? m.loss : null],
  },
  rewards: {
    title: 'Rewards: chosen and rejected',
    series: [line('chosen', colors.chosen), line('rejected', colors.rejected)],
    row: (m) => m.phase === 'dpo' ? [m.step, m[M.chosen], m[M.rejected]] : null,
  },
  margins: {
    title: 'Reward margin (chosen − rejected)',
    series: [line('margin', colors.margin)],
    row: (m) => m.phase === 'dpo' ? [m.step, m[M.margins]] : null,
  },
  accuracy: {
    title: 'Reward accuracy',
    series: [line('accuracy', colors.accuracy)],
    scales: { y: { range: [0, 1] } },
    row: (m) => m.phase === 'dpo' ? [m.step, m[M.accuracies]] : null,
  },
};

const histogramTitle = 'Held-out margins per pair';

// Cards for the named charts, for views that build their markup in script.
export function chartCards(names) {
  return names.map((name) => {
    const title = definitions[name]?.title ?? (name === 'histogram' ? histogramTitle : null);
    if (!title) throw new Error(`unknown chart "${name}" (${[...Object.keys(definitions), 'histogram'].join(', ')})`);
    const card = document.createElement('figure');
    card.className = name === 'histogram' ? 'card wide' : 'card';
    card.dataset.chart = name;
    if (name === 'histogram') card.hidden = true;
    card.append(Object.assign(document.createElement('figcaption'), { textContent: title }),
      Object.assign(document.createElement('div'), { className: 'plot' }));
    return card;
  });
}

// Emits `live` when it goes from viewed runs back to live training's charts.
export class Charts extends EventTarget {
  constructor(root, { height = 190 } = {}) {
    super();
    this.root = root;
    this.height = height;
    this.plots = {};
    this.data = {};
    this.pending = false;
    this.binWidth = 1;
    this.viewed = null; // the runs `view` shows ([{name, metrics}]); null: live training
    this.histogramShown = false;
    const present = (name) => this.#element(name) !== null;
    this.live = Object.keys(definitions).filter(present);
    for (const name of this.live) {
      const columns = definitions[name].series.length + 1;
      this.data[name] = Array.from({ length: columns }, () => []);
      this.#draw(name, [null], this.data[name]);
    }
    if (present('histogram')) {
      this.data.histogram = [[], []];
      this.plots.histogram = this.#make('histogram', {
        series: [{ label: 'margin' }, {
          label: 'held-out pairs', stroke: colors.histogram, fill: colors.histogram + '66',
          paths: uPlot.paths.bars({ size: [0.9, 40] }), points: { show: false },
        }],
        axes: [axis(), axis({ size: labelWidth, values: tickLabels })],
        // Half a bin of room on each side so the outer bars are not cut; counts start at 0.
        scales: {
          x: { time: false, range: (u, min, max) => [min - this.binWidth / 2, max + this.binWidth / 2] },
          y: { range: (u, min, max) => [0, Math.max(1, max * 1.1)] },
        },
      }, this.data.histogram);
    }
    // Charts follow their card's width (a laptop's grid column or a phone's screen).
    this.resizer = new ResizeObserver(() => this.#fit());
    for (const name of Object.keys(this.plots)) this.resizer.observe(this.#element(name));
  }

  #element(name) {
    return this.root.querySelector(`[data-chart="${name}"] .plot`);
  }

  // (Re)creates a line chart with one series set per run (`runs`: their names; [null] for
  // live training): the number of series changes with the runs shown.
  #draw(name, runs, data) {
    const def = definitions[name];
    this.plots[name]?.destroy();
    this.plots[name] = this.#make(name, {
      series: [{ label: 'step' }, ...runs.flatMap((run, i) => seriesSet(def, run, i))],
      axes: def.axes ?? [axis(), axis({ size: labelWidth, values: tickLabels })],
      scales: { x: { time: false }, ...(def.scales ?? {}) },
    }, data);
  }

  #make(name, options, data) {
    const el = this.#element(name);
    return new uPlot({ ...options, width: Math.max(el.clientWidth, 200), height: this.height,
      legend: { live: true, markers: { dash: markerStyle } } }, data, el);
  }

  #fit() {
    for (const [name, plot] of Object.entries(this.plots)) {
      const width = Math.max(this.#element(name).clientWidth, 200);
      if (Math.abs(plot.width - width) > 1) plot.setSize({ width, height: this.height });
    }
  }

  // A new live run: its charts start empty, and they are shown (instead of viewed runs).
  reset() {
    for (const columns of Object.values(this.data)) for (const column of columns) column.length = 0;
    this.histogramShown = false;
    this.showLive();
    for (const [name, columns] of Object.entries(this.data)) this.plots[name].setData(columns);
  }

  add(metrics) {
    for (const name of this.live) {
      const row = definitions[name].row(metrics);
      if (row) row.forEach((value, i) => this.data[name][i].push(value ?? null));
    }
    // While runs are viewed the live run is only recorded, to be drawn by `showLive`.
    if (!this.pending && !this.viewed) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        if (!this.viewed) for (const name of this.live) this.plots[name].setData(this.data[name]);
      });
    }
  }

  // Draws runs read from run folders ([{name, metrics: [metrics objects]}]) instead of live
  // training, overlaid. Each run's rows are built as live ones are, then joined on the step:
  // where one run has no row at a step, its values are undefined (no point, the line goes
  // on), unlike the null of a step without that value (a gap). Run folders carry no per-pair
  // held-out margins, so the histogram is hidden.
  view(runs) {
    if (runs.length === 0) return this.showLive();
    if (runs.length > MAX_RUNS) throw new Error(`at most ${MAX_RUNS} runs can be overlaid`);
    this.viewed = runs;
    for (const name of this.live) {
      const def = definitions[name];
      const tables = runs.map(({ metrics }) => {
        const table = Array.from({ length: def.series.length + 1 }, () => []);
        for (const row of metrics.map(def.row).filter(Boolean)) row.forEach((value, i) => table[i].push(value ?? null));
        return table;
      });
      this.#draw(name, runs.map((run) => run.name), uPlot.join(tables));
    }
    this.root.classList.add('viewing'); // style.css: legend markers long enough to show dashes
    this.#showHistogram(false);
  }

  // Back to live training's charts (as they stood, with whatever arrived meanwhile).
  showLive() {
    if (this.viewed) {
      this.viewed = null;
      this.root.classList.remove('viewing');
      for (const name of this.live) this.#draw(name, [null], this.data[name]);
      this.dispatchEvent(new Event('live'));
    }
    this.#showHistogram(this.histogramShown);
  }

  #showHistogram(show) {
    const card = this.root.querySelector('[data-chart="histogram"]');
    if (card) card.hidden = !show;
  }

  // Per-pair held-out margins as a histogram: the share of pairs the model ranks right is
  // the mass right of zero.
  histogram(margins) {
    if (!this.plots.histogram) return;
    this.histogramShown = true;
    if (!this.viewed) this.#showHistogram(true);
    const [centers, counts, width] = bins(margins, Math.min(30, Math.max(8, Math.round(Math.sqrt(margins.length)))));
    this.binWidth = width;
    this.data.histogram[0].splice(0, Infinity, ...centers);
    this.data.histogram[1].splice(0, Infinity, ...counts);
    this.#fit();
    this.plots.histogram.setData(this.data.histogram);
  }

  // Test hooks: how many x values each chart holds as drawn, and the drawn columns themselves.
  points() {
    return Object.fromEntries(Object.entries(this.plots).map(([name, plot]) => [name, plot.data[0].length]));
  }

  drawn(name) {
    return this.plots[name]?.data.map((column) => Array.from(column));
  }

  // While runs are viewed: each run's name and, per chart, its legend labels and the drawn
  // rows that are its own (steps where its values are not undefined), as [x, ...its columns].
  viewedRuns() {
    return this.viewed?.map((run, r) => ({
      name: run.name,
      charts: Object.fromEntries(this.live.map((name) => {
        const plot = this.plots[name];
        const width = definitions[name].series.length;
        const columns = plot.data.slice(1 + r * width, 1 + (r + 1) * width);
        const rows = [...plot.data[0].keys()].filter((i) => columns.some((column) => column[i] !== undefined));
        return [name, {
          labels: plot.series.slice(1 + r * width, 1 + (r + 1) * width).map((s) => s.label),
          drawn: [plot.data[0], ...columns].map((column) => rows.map((i) => column[i])),
        }];
      })),
    })) ?? null;
  }
}

function bins(values, count) {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return [[], [], 1];
  let lo = Math.min(...finite);
  let hi = Math.max(...finite);
  if (hi - lo < 1e-9) { lo -= 0.5; hi += 0.5; }
  const width = (hi - lo) / count;
  const counts = new Array(count).fill(0);
  for (const v of finite) counts[Math.min(count - 1, Math.floor((v - lo) / width))]++;
  return [counts.map((_, i) => lo + (i + 0.5) * width), counts, width];
}
