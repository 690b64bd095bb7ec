// The DPO paper's reward-vs-KL experiment as a chart: for each loss type its runs (one per β,
// scored along their training), each point at its KL to the reference (x) and its samples'
// mean ground-truth reward (y), a line along each loss's frontier, each run labelled with its
// β; the SFT model sits at KL 0. The numbers come from
// docs/reward_kl.json, written by `dpo frontier` and copied into samples/ by
// scripts/build_web.sh; nothing here is made up when the file is missing.
import uPlot from './vendor/uPlot.esm.js';
import { axis, labelWidth, tickLabels } from './charts.js';

const source = new URL('./samples/reward_kl.json', import.meta.url);
const palette = { sigmoid: '#0969da', ipo: '#8250df', hinge: '#bc4c00' };
const spare = ['#1a7f37', '#9a6700', '#cf222e', '#57606a'];
const SFT = '#57606a';

// Throws with what is wrong, so a malformed file says so instead of drawing nonsense.
function validate(data) {
  const number = (v, what) => {
    if (!Number.isFinite(v)) throw new Error(`${what} is not a number`);
    return v;
  };
  if (typeof data?.task !== 'string') throw new Error('"task" is missing');
  number(data.sft?.reward, 'sft.reward');
  number(data.sft?.samples, 'sft.samples');
  if (!Array.isArray(data.points) || data.points.length === 0) throw new Error('"points" is empty');
  data.points.forEach((p, i) => {
    if (typeof p.loss !== 'string') throw new Error(`points[${i}].loss is missing`);
    for (const key of ['beta', 'kl', 'reward', 'samples']) number(p[key], `points[${i}].${key}`);
  });
  return data;
}

// uPlot's aligned columns: one x (every KL, ascending), one column per loss plus the SFT
// point, null where a series has no point; `labels` says what to write beside each point.
// A loss's line runs along its frontier (the points flagged `frontier` by `dpo frontier`:
// none of that loss does better at less KL); its other points are `dots`, drawn unjoined.
// Runs scored several times along their training label only their last point with β.
function columns(data) {
  const losses = [...new Set(data.points.map((p) => p.loss))];
  const xs = [...new Set([0, ...data.points.map((p) => p.kl)])].sort((a, b) => a - b);
  const at = new Map(xs.map((x, i) => [x, i]));
  const empty = () => xs.map(() => null);
  const ys = losses.map(empty);
  const labels = losses.map(empty);
  const lastStep = new Map();
  for (const p of data.points) {
    const run = `${p.loss} ${p.beta}`;
    lastStep.set(run, Math.max(lastStep.get(run) ?? -Infinity, p.step ?? 0));
  }
  const dots = [];
  for (const p of data.points) {
    const s = losses.indexOf(p.loss);
    const label = (p.step ?? 0) === lastStep.get(`${p.loss} ${p.beta}`) ? `β=${p.beta}` : null;
    if (p.frontier ?? true) {
      ys[s][at.get(p.kl)] = p.reward;
      labels[s][at.get(p.kl)] = label;
    } else {
      dots.push({ series: s + 1, kl: p.kl, reward: p.reward, label });
    }
  }
  const sft = empty();
  sft[at.get(0)] = data.sft.reward;
  const sftLabels = empty();
  sftLabels[at.get(0)] = 'SFT';
  return { losses, aligned: [xs, ...ys, sft], labels: [null, ...labels, sftLabels], dots };
}

function describe(data, losses) {
  const counts = [...new Set(data.points.map((p) => p.samples))].sort((a, b) => a - b);
  const samples = counts.length === 1 ? counts[0] : `${counts[0]}–${counts.at(-1)}`;
  const betas = [...new Set(data.points.map((p) => p.beta))].sort((a, b) => a - b);
  return `Source: docs/reward_kl.json, written by “dpo frontier” (scripts/build_web.sh copies it ` +
    `into this site). Task “${data.task}”: ${data.points.length} runs, ${losses.join(', ')} × β ∈ {${betas.join(', ')}}. ` +
    `Each point's reward is the mean ground-truth reward of ${samples} completions sampled from that run's policy; ` +
    `the SFT model (the frozen reference, KL 0) scores ${data.sft.reward.toFixed(3)} over ${data.sft.samples}.`;
}

function table(data) {
  const row = (cells, tag = 'td') => {
    const tr = document.createElement('tr');
    for (const c of cells) tr.append(Object.assign(document.createElement(tag), { textContent: c }));
    return tr;
  };
  const t = document.createElement('table');
  t.createTHead().append(row(['loss', 'β', 'step', 'KL', 'reward', 'samples'], 'th'));
  const body = t.createTBody();
  body.append(row(['SFT (reference)', '—', '—', '0', data.sft.reward.toFixed(3), String(data.sft.samples)]));
  for (const p of data.points) {
    body.append(row([p.loss, String(p.beta), String(p.step ?? '—'), p.kl.toFixed(3), p.reward.toFixed(3),
      String(p.samples)]));
  }
  return t;
}

// Draws into `root` (a figure with a `.plot`, a `.source` and a `.table` inside). Resolves with
// {plot, labels} — labels: the text written beside each point, as drawn (a test hook) — or
// with {error} when there is no usable data.
export async function rewardKlChart(root) {
  // Without data only the sentence saying why remains: no empty plot, no empty table.
  const say = (text) => { root.querySelector('.source').textContent = text; };
  const without = (why) => {
    for (const part of root.querySelectorAll('.plot, details')) part.hidden = true;
    return { error: why };
  };
  let data;
  try {
    const response = await fetch(source);
    if (response.status === 404) {
      say('No reward-vs-KL data in this build yet: run `dpo frontier` to write docs/reward_kl.json, ' +
        'then scripts/build_web.sh copies it here.');
      return without('missing');
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    data = validate(await response.json());
  } catch (error) {
    say(`The reward-vs-KL data could not be read (samples/reward_kl.json: ${error.message}).`);
    return without(error.message);
  }

  const { losses, aligned, labels, dots } = columns(data);
  const color = (loss, i) => palette[loss] ?? spare[i % spare.length];
  const strokes = [null, ...losses.map(color), SFT];
  const drawn = [];
  const el = root.querySelector('.plot');
  const plot = new uPlot({
    width: Math.max(el.clientWidth, 260),
    height: 300,
    series: [
      { label: 'KL' },
      ...losses.map((loss, i) => ({ label: loss, stroke: color(loss, i), width: 2, spanGaps: true,
        points: { show: true, size: 8, fill: color(loss, i) } })),
      { label: 'SFT (reference)', stroke: SFT, width: 0, points: { show: true, size: 10, fill: SFT } },
    ],
    // From a little left of 0, so the SFT point is not cut by the axis; room right for labels.
    scales: { x: { time: false, range: (u, min, max) => [-0.03 * Math.max(max, 1), Math.max(max, 1) * 1.12] } },
    axes: [axis({ label: 'KL(π_θ ‖ π_ref)', values: tickLabels }),
      axis({ label: 'mean ground-truth reward', size: labelWidth, values: tickLabels })],
    hooks: {
      // Each point's β beside it (the SFT point: "SFT"), so a frontier reads without the table.
      draw: [(u) => {
        const { ctx } = u;
        const px = uPlot.pxRatio;
        drawn.length = 0;
        ctx.save();
        ctx.font = `${11 * px}px system-ui, sans-serif`;
        ctx.textBaseline = 'bottom';
        u.series.forEach((series, s) => {
          if (s === 0 || !series.show) return;
          ctx.fillStyle = strokes[s];
          u.data[s].forEach((y, i) => {
            const text = labels[s][i];
            if (y == null || text == null) return;
            ctx.fillText(text, u.valToPos(u.data[0][i], 'x', true) + 6 * px, u.valToPos(y, 'y', true) - 4 * px);
            drawn.push({ series: series.label, text });
          });
        });
        for (const dot of dots) {
          if (!u.series[dot.series].show) continue;
          const [x, y] = [u.valToPos(dot.kl, 'x', true), u.valToPos(dot.reward, 'y', true)];
          ctx.fillStyle = strokes[dot.series];
          ctx.globalAlpha = 0.55;
          ctx.beginPath();
          ctx.arc(x, y, 3 * px, 0, 2 * Math.PI);
          ctx.fill();
          ctx.globalAlpha = 1;
          if (dot.label) {
            ctx.fillText(dot.label, x + 6 * px, y - 4 * px);
            drawn.push({ series: u.series[dot.series].label, text: dot.label });
          }
        }
        ctx.restore();
      }],
    },
  }, aligned, el);
  new ResizeObserver(() => {
    const width = Math.max(el.clientWidth, 260);
    if (Math.abs(plot.width - width) > 1) plot.setSize({ width, height: 300 });
  }).observe(el);
  say(describe(data, losses));
  root.querySelector('.table').replaceChildren(table(data));
  return { plot, labels: drawn };
}
