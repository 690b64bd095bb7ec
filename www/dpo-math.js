// DPO's arithmetic on given log-probabilities, in plain numbers: what the lesson's worked
// example computes live. The same formulas as the library's loss (src/dpo/loss.rs, TRL's
// names), for one pair at a time.

// log(1 + e^x) without overflow for large |x|.
const softplus = (x) => Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));

// Each loss of h = (log-ratio of the chosen answer) - (log-ratio of the rejected one).
export const losses = {
  sigmoid: (h, beta) => softplus(-beta * h), // -log σ(β h): DPO
  ipo: (h, beta) => (h - 1 / (2 * beta)) ** 2, // IPO: pull h towards 1/(2β), no further
  hinge: (h, beta) => Math.max(0, 1 - beta * h), // SLiC's hinge: zero once β h ≥ 1
};

// One pair: the implicit rewards β·(log π - log π_ref) of both answers, their margin, and the loss.
export function pair({ policyChosen, policyRejected, refChosen, refRejected }, beta, loss = 'sigmoid') {
  const chosenRatio = policyChosen - refChosen;
  const rejectedRatio = policyRejected - refRejected;
  const chosenReward = beta * chosenRatio;
  const rejectedReward = beta * rejectedRatio;
  return {
    chosenReward,
    rejectedReward,
    margin: chosenReward - rejectedReward,
    loss: losses[loss](chosenRatio - rejectedRatio, beta),
  };
}

// A batch: every pair, the mean loss and the accuracy (ties count as wrong, as in training).
export function batch(pairs, beta, loss = 'sigmoid') {
  const each = pairs.map((p) => pair(p, beta, loss));
  const mean = (f) => each.reduce((sum, p) => sum + f(p), 0) / each.length;
  return { pairs: each, loss: mean((p) => p.loss), accuracy: mean((p) => (p.margin > 0 ? 1 : 0)) };
}
