// SVG charts of our own, drawn at the size they are shown: a chart draws again when its width
// changes, so its 12 px text stays 12 px on a phone instead of shrinking with a scaled picture.
// Bars and lines take a `tone` class (`outcome-passed`, …) whose colour app.css defines once, the
// same in every chart and in the feed; without one they take the next of a few plain colours.

const NS = "http://www.w3.org/2000/svg";
/// The text size app.css gives chart text, px; label widths are estimated from it.
const FONT = 12;
/// A generous average glyph width at FONT, px: an estimate that rather leaves room than overlaps.
const GLYPH = FONT * 0.62;

function svg(tag, attributes = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

const textWidth = (text) => String(text).length * GLYPH;

/// `text` cut to fit `room` px, with an ellipsis; the whole text stays in the tooltips.
function fit(text, room) {
  const glyphs = Math.max(3, Math.floor(room / GLYPH));
  return text.length > glyphs ? `${text.slice(0, glyphs - 1)}…` : text;
}

function formatNumber(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(2);
}

/// An <svg> with an accessible title that `paint(chart, width)` fills at its shown width (one
/// user unit is one CSS pixel) and fills again whenever that width changes; `paint` returns the
/// height it used.
function responsive(title, paint) {
  const chart = svg("svg", { class: "chart", role: "img", "aria-label": title });
  let drawn = 0;
  const draw = (width) => {
    // A chart leaving the page (or not shown) measures 0: what is drawn stays.
    if (width < 100 || Math.round(width) === drawn) return;
    drawn = Math.round(width);
    chart.replaceChildren(svg("title", {}, title));
    const height = paint(chart, drawn);
    chart.setAttribute("viewBox", `0 0 ${drawn} ${height}`);
    chart.setAttribute("height", height);
  };
  // A first picture for before layout; the observer redraws it at the real width. The redraw waits
  // for the next frame: a chart changing its own height inside the observer's callback would
  // make the browser report a resize loop.
  draw(480);
  new ResizeObserver((entries) => {
    const width = entries[0].contentRect.width;
    requestAnimationFrame(() => draw(width));
  }).observe(chart);
  return chart;
}

/// `items` = [{label, value, tone?}]; returns an <svg> with an accessible title. Categories are
/// drawn as horizontal bars, one row each, so every name has room at any width; `sequential`
/// items (the hours of a day) as columns in their order, with as many labels as fit.
export function barChart(title, items, { sequential = false } = {}) {
  return responsive(title, (chart, width) => (sequential ? columns : rows)(chart, width, items));
}

function rows(chart, width, items) {
  const max = Math.max(1, ...items.map((item) => item.value));
  const row = FONT + 12;
  const labelRoom = Math.min(Math.max(...items.map((item) => textWidth(item.label))) + 8, width * 0.45);
  const valueRoom = textWidth(formatNumber(max)) + 8;
  const barRoom = Math.max(10, width - labelRoom - valueRoom);
  items.forEach((item, index) => {
    const y = 4 + index * row;
    const length = (barRoom * item.value) / max;
    chart.append(svg("text", { x: 0, y: y + row / 2 + FONT / 3 }, fit(item.label, labelRoom - 8)));
    const bar = svg("rect", { class: `bar ${item.tone || ""}`, x: labelRoom, y: y + 3, width: length, height: row - 6, "data-key": item.label });
    bar.append(svg("title", {}, `${item.label}: ${formatNumber(item.value)}`));
    chart.append(bar);
    chart.append(svg("text", { x: labelRoom + length + 4, y: y + row / 2 + FONT / 3 }, formatNumber(item.value)));
  });
  return 8 + items.length * row;
}

function columns(chart, width, items) {
  const height = 200, top = FONT + 6, bottom = FONT + 10;
  const max = Math.max(1, ...items.map((item) => item.value));
  const left = textWidth(formatNumber(max)) + 8;
  const slot = (width - left) / Math.max(1, items.length);
  // Every `every`-th label, so that none overlaps the next one shown.
  const longest = Math.max(...items.map((item) => textWidth(item.label)));
  const every = Math.max(1, Math.ceil((longest + 6) / slot));
  // Values over the columns only when every one fits its column; the tooltips have them all.
  const valued = textWidth(formatNumber(max)) <= slot;
  chart.append(svg("text", { x: 0, y: top + FONT / 2 }, formatNumber(max)));
  chart.append(svg("text", { x: 0, y: height - bottom }, "0"));
  items.forEach((item, index) => {
    const barHeight = ((height - bottom - top) * item.value) / max;
    const middle = left + index * slot + slot / 2;
    const bar = svg("rect", {
      class: `bar ${item.tone || ""}`, x: middle - slot * 0.35, y: height - bottom - barHeight, width: slot * 0.7, height: barHeight, "data-key": item.label,
    });
    bar.append(svg("title", {}, `${item.tip || item.label}: ${formatNumber(item.value)}`));
    chart.append(bar);
    if (index % every === 0) chart.append(svg("text", { x: middle, y: height - bottom + FONT + 2, "text-anchor": "middle" }, item.label));
    if (valued && item.value > 0) {
      chart.append(svg("text", { x: middle, y: height - bottom - barHeight - 3, "text-anchor": "middle" }, formatNumber(item.value)));
    }
  });
  return height;
}

/// `labels` along the x axis and `series` = [{name, values, tone?}] as lines with a legend that
/// wraps onto as many rows as it needs; `unit` follows each value in the tooltips. Returns an
/// <svg> with an accessible title.
export function lineChart(title, labels, series, unit = "") {
  return responsive(title, (chart, width) => lines(chart, width, labels, series, unit));
}

function lines(chart, width, labels, series, unit) {
  const max = Math.max(1, ...series.flatMap((line) => line.values.filter((v) => v !== null)));
  const longestLabel = Math.max(...labels.map(textWidth), 0);
  const top = FONT, left = textWidth(formatNumber(max)) + 8, right = longestLabel / 2 + 4, plotHeight = 150;
  const plotWidth = width - left - right;
  const x = (index) => left + (labels.length < 2 ? plotWidth / 2 : (plotWidth * index) / (labels.length - 1));
  const y = (value) => top + plotHeight - (plotHeight * value) / max;
  chart.append(svg("line", { class: "axis", x1: left, y1: top + plotHeight, x2: width - right, y2: top + plotHeight }));
  chart.append(svg("text", { x: 0, y: top + FONT / 2 }, formatNumber(max)));
  chart.append(svg("text", { x: 0, y: top + plotHeight }, "0"));
  // As many labels as fit under the axis, evenly spaced.
  const fitting = Math.max(1, Math.floor(plotWidth / (longestLabel + 12)) + 1);
  const step = Math.max(1, Math.ceil(labels.length / fitting));
  labels.forEach((label, index) => {
    if (index % step === 0) chart.append(svg("text", { x: x(index), y: top + plotHeight + FONT + 4, "text-anchor": "middle" }, label));
  });
  // The legend, placed item after item and wrapped before an item that would not fit.
  const row = FONT + 8;
  let legendX = 0, legendY = top + plotHeight + FONT + 10;
  series.forEach((line, number) => {
    const tone = line.tone || `s${number % 4}`;
    const points = line.values.map((value, index) => (value === null ? null : `${x(index)},${y(value)}`)).filter(Boolean);
    chart.append(svg("polyline", { class: `line ${tone}`, points: points.join(" "), "data-key": line.name }));
    line.values.forEach((value, index) => {
      if (value === null) return;
      const dot = svg("circle", { class: `dot ${tone}`, cx: x(index), cy: y(value), r: 2.5 });
      dot.append(svg("title", {}, `${line.name} ${labels[index]}: ${formatNumber(value)}${unit}`));
      chart.append(dot);
    });
    const itemWidth = 22 + textWidth(line.name) + 14;
    if (legendX > 0 && legendX + itemWidth > width) {
      legendX = 0;
      legendY += row;
    }
    const key = svg("g", { class: `key ${tone}`, "data-key": line.name });
    key.append(svg("line", { class: "line", x1: legendX, y1: legendY + row / 2, x2: legendX + 18, y2: legendY + row / 2 }),
      svg("text", { x: legendX + 22, y: legendY + row / 2 + FONT / 3 }, line.name));
    chart.append(key);
    legendX += itemWidth;
  });
  return legendY + row + 2;
}
