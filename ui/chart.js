// Bar charts of counts per minute, drawn as SVG elements (no library, no inline
// style): one bar per minute, the peak labelled, and a text summary for screen readers.

import { clock, count, h } from "./format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 600;
const HEIGHT = 90;

function svg(tag, attributes) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, String(value));
  return element;
}

/**
 * A chart of `values` (one per minute, oldest first, starting at `starts[i]`), titled
 * `title`, in colour class `tone`.
 */
export function perMinute(title, tone, starts, values) {
  const total = values.reduce((a, b) => a + b, 0);
  const peak = Math.max(0, ...values);
  const peakAt = values.indexOf(peak);
  const summary =
    `${title}: ${count(total)} in the last ${values.length} minutes` +
    (peak > 0 ? `, at most ${count(peak)} a minute (${clock(starts[peakAt]).slice(0, 5)} UTC)` : "");
  const chart = svg("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": summary,
    class: `chart tone-${tone}`,
  });
  const step = WIDTH / Math.max(values.length, 1);
  values.forEach((value, i) => {
    const height = peak > 0 ? (value / peak) * (HEIGHT - 4) : 0;
    const bar = svg("rect", {
      x: (i * step + step * 0.1).toFixed(2),
      y: (HEIGHT - height).toFixed(2),
      width: (step * 0.8).toFixed(2),
      height: Math.max(height, value > 0 ? 1 : 0).toFixed(2),
    });
    const tip = svg("title", {});
    tip.textContent = `${clock(starts[i]).slice(0, 5)} UTC: ${count(value)}`;
    bar.append(tip);
    chart.append(bar);
  });
  return h(
    "figure",
    { class: "chart-box", "data-chart": tone },
    h("figcaption", {}, h("span", {}, title), h("span", { class: "chart-total", "data-testid": `total-${tone}` }, count(total))),
    chart,
    h(
      "div",
      { class: "chart-axis" },
      h("span", {}, starts.length ? `${clock(starts[0]).slice(0, 5)} UTC` : ""),
      h("span", {}, `peak ${count(peak)}/min`),
      h("span", {}, "now"),
    ),
  );
}
