// A small SVG bar chart of our own: labelled bars scaled to the largest value.

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

/// `items` = [{label, value}]; returns an <svg> with an accessible title.
export function barChart(title, items) {
  const width = 480, height = 200, left = 36, bottom = 40, top = 10;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  chart.append(svg("title", {}, title));
  const max = Math.max(1, ...items.map((item) => item.value));
  const slot = (width - left) / Math.max(1, items.length);
  chart.append(svg("text", { x: 0, y: top + 8 }, String(max)));
  chart.append(svg("text", { x: 0, y: height - bottom }, "0"));
  items.forEach((item, index) => {
    const barHeight = ((height - bottom - top) * item.value) / max;
    const x = left + index * slot + slot * 0.15;
    const bar = svg("rect", { class: "bar", x, y: height - bottom - barHeight, width: slot * 0.7, height: barHeight });
    bar.append(svg("title", {}, `${item.label}: ${item.value}`));
    chart.append(bar);
    chart.append(svg("text", { x: x + slot * 0.35, y: height - bottom + 14, "text-anchor": "middle" }, item.label));
    chart.append(svg("text", { x: x + slot * 0.35, y: height - bottom - barHeight - 3, "text-anchor": "middle" }, String(item.value)));
  });
  return chart;
}
