// Verification outcomes as the dashboard shows them: in the order of the server's vocabulary
// (`outcomes`), each in its one colour, which app.css gives the `outcome-<name>` class so that a
// chart's bar and line and the feed's word for an outcome always match.

import { h } from "./dom.js";
import { words } from "./vocabulary.js";

/// The class that colours `outcome` wherever it is drawn.
export function outcomeTone(outcome) {
  return `outcome-${outcome}`;
}

/// The outcome's name in its colour.
export function outcomeWord(outcome) {
  return h("span", { class: `outcome ${outcomeTone(outcome)}`, "data-outcome": outcome }, outcome);
}

/// `outcomes` in the vocabulary's order; one the vocabulary does not know (yet) comes last.
export function inOrder(outcomes) {
  const known = words().outcomes;
  const rank = (outcome) => (known.includes(outcome) ? known.indexOf(outcome) : known.length);
  return [...outcomes].sort((a, b) => rank(a) - rank(b));
}

/// Bar chart items for rows of {key: outcome, count}, in the vocabulary's order and colours.
export function outcomeBars(rows) {
  return inOrder(rows.map((row) => row.key)).map((key) => ({
    label: key, value: rows.find((row) => row.key === key).count, tone: outcomeTone(key),
  }));
}
