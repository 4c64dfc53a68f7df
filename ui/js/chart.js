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
    // Labels longer than their slot are shortened; the bar's tooltip keeps the whole name.
    const room = Math.max(3, Math.floor(slot / 6));
    const label = item.label.length > room ? `${item.label.slice(0, room - 1)}…` : item.label;
    chart.append(svg("text", { x: x + slot * 0.35, y: height - bottom + 14, "text-anchor": "middle" }, label));
    chart.append(svg("text", { x: x + slot * 0.35, y: height - bottom - barHeight - 3, "text-anchor": "middle" }, String(item.value)));
  });
  return chart;
}

/// `labels` along the x axis and `series` = [{name, values}] as lines with a legend; `unit`
/// follows each value in the tooltips. Returns an <svg> with an accessible title.
export function lineChart(title, labels, series, unit = "") {
  const width = 480, height = 220, left = 40, bottom = 44, top = 10, right = 8;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": title });
  chart.append(svg("title", {}, title));
  const max = Math.max(1, ...series.flatMap((line) => line.values.filter((v) => v !== null)));
  const plotWidth = width - left - right, plotHeight = height - bottom - top;
  const x = (index) => left + (labels.length < 2 ? plotWidth / 2 : (plotWidth * index) / (labels.length - 1));
  const y = (value) => top + plotHeight - (plotHeight * value) / max;
  chart.append(svg("line", { class: "axis", x1: left, y1: top + plotHeight, x2: width - right, y2: top + plotHeight }));
  chart.append(svg("text", { x: 0, y: top + 8 }, formatNumber(max)));
  chart.append(svg("text", { x: 0, y: top + plotHeight }, "0"));
  // At most six labels fit under the axis.
  const step = Math.max(1, Math.ceil(labels.length / 6));
  labels.forEach((label, index) => {
    if (index % step === 0) chart.append(svg("text", { x: x(index), y: top + plotHeight + 14, "text-anchor": "middle" }, label));
  });
  series.forEach((line, number) => {
    const points = line.values.map((value, index) => (value === null ? null : `${x(index)},${y(value)}`)).filter(Boolean);
    chart.append(svg("polyline", { class: `line s${number}`, points: points.join(" "), fill: "none" }));
    line.values.forEach((value, index) => {
      if (value === null) return;
      const dot = svg("circle", { class: `dot s${number}`, cx: x(index), cy: y(value), r: 2.5 });
      dot.append(svg("title", {}, `${line.name} ${labels[index]}: ${formatNumber(value)}${unit}`));
      chart.append(dot);
    });
    const legendX = left + number * 110;
    chart.append(svg("rect", { class: `key s${number}`, x: legendX, y: height - 14, width: 10, height: 10 }));
    chart.append(svg("text", { x: legendX + 14, y: height - 5 }, line.name));
  });
  return chart;
}

function formatNumber(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}
