// The embedding example's own script (embed.html): a dpo-progress listener that writes each
// trainer's latest DPO margin under the two trainers, and the listener's source shown on the
// page. A file rather than an inline script: the site's Content-Security-Policy allows only
// its own files.
const last = {};

function showMargins({ target, detail: { metrics } }) {
  if (metrics.phase !== 'dpo') return;
  last[target.closest('section').querySelector('h2').textContent] = metrics;
  document.querySelector('#compare').textContent = Object.entries(last)
    .map(([name, m]) => `${name}: margin ${m['rewards/margins'].toFixed(3)} at step ${m.step}`).join(' · ');
}

document.addEventListener('dpo-progress', showMargins);

// The code above as the page shows it: the function's own source, so it cannot drift.
document.querySelector('#listener-source').textContent =
  `// Reads the last DPO margin of each trainer from its dpo-progress events.\nconst last = {};\n${showMargins}\n` +
  "document.addEventListener('dpo-progress', showMargins);";
