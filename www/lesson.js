// The lesson page: the live worked example, the reward-vs-KL chart, and (by importing it) the
// <dpo-trainer> element the page embeds.
import './dpo-trainer.js';
import { workedExample } from './worked-example.js';
import { rewardKlChart } from './reward-kl.js';

workedExample(document.querySelector('#worked-example'));
// Test hook: what the chart drew (or why it did not).
window.dpoRewardKl = rewardKlChart(document.querySelector('#reward-kl'));
