// Analytics: every chart the API serves (GET /api/v1/charts lists them), for the period chosen
// (24 hours, 7 days, 30 days; kept in the address as ?period=), with times in the browser's zone
// (clock.js) and each verification outcome in its own colour (outcomes.js).

import { get } from "../api.js";
import { barChart, lineChart } from "../chart.js";
import { h, field, select, navigate } from "../dom.js";
import { inOrder, outcomeBars, outcomeTone } from "../outcomes.js";
import { bucketLabel, hoursOfDay, localHour, zoneNote } from "../clock.js";
import { words } from "../vocabulary.js";

const TITLES = {
  overview: "Summary", verification_outcomes: "Verification outcomes", cache_vs_api: "Cache or Telegram",
  groups_by_status: "Groups by status", telegram_calls: "Telegram calls", hourly_activity: "Verifications by hour of day (your time)",
  latency_distribution: "Response time (ms)", top_groups: "Busiest groups", cache_hit_trend: "Cache hit rate",
  latency_trend: "Response time trend (ms)", bot_health: "Bots", user_growth: "Members joining and leaving",
  verification_trends: "Verifications over time",
};

const keyed = (rows) => rows.map((row) => ({ label: row.key, value: row.count }));
const percent = (ratio) => (ratio === null || ratio === undefined ? "—" : `${Math.round(ratio * 1000) / 10} %`);

/// The period's entry of the vocabulary's `periods`: how many buckets, how wide.
function periodOf(period) {
  const periods = words().periods;
  return periods.find((p) => p.period === period) || periods[0];
}

/// Every bucket of the period (UTC hours or days, as the API counts them), oldest first, so a
/// quiet hour shows as a gap rather than disappearing.
function buckets(period) {
  const found = periodOf(period);
  const [count, size] = [found.buckets, found.bucket_ms];
  const last = Math.floor(Date.now() / size) * size;
  return Array.from({ length: count }, (_, n) => last - (count - 1 - n) * size);
}

/// Series over time from rows of {bucket, …}: one line per `fields` entry; buckets without a
/// row are 0 for counts (`zero`) and gaps for rates and percentiles.
function trend(title, found, period, fields, unit, zero = false) {
  const rows = buckets(period).map((bucket) => found.find((row) => row.bucket === bucket)
    || Object.fromEntries([["bucket", bucket], ...fields.map(([key]) => [key, zero ? 0 : null])]));
  const labels = rows.map((row) => bucketLabel(row.bucket, periodOf(period).bucket_ms));
  return lineChart(title, labels, fields.map(([key, name, scale = 1]) => ({
    name, values: rows.map((row) => (row[key] === null ? null : row[key] * scale)),
  })), unit);
}

function bars(title, rows, options) {
  return rows.length && rows.some((row) => row.value > 0) ? barChart(title, rows, options) : h("p", { class: "empty" }, "Nothing in this period.");
}

function summary(data) {
  const fact = (term, value) => [h("dt", {}, term), h("dd", {}, value)];
  const ms = (value) => (value === null || value === undefined ? "—" : `${Math.round(value)} ms`);
  return h("dl", { class: "facts" },
    fact("Verifications", String(data.verifications)), fact("Success rate", percent(data.success_rate)),
    fact("Cache hit rate", percent(data.cache_hit_rate)), fact("Telegram calls", String(data.telegram_calls)),
    fact("Peak hour (your time)", data.peak_hour_utc === null ? "—" : `${localHour(data.peak_hour_utc)} (${data.peak_hour_count})`),
    fact("Average response", ms(data.average_response_ms)), fact("p95 / p99", `${ms(data.p95_response_ms)} / ${ms(data.p99_response_ms)}`));
}

/// The picture of one chart's data; each chart's shape is the API's (see /api/v1/openapi.json).
function draw(name, data, period) {
  const title = TITLES[name] || name;
  switch (name) {
    case "overview": return summary(data);
    case "verification_outcomes": return bars(title, outcomeBars(data));
    case "latency_distribution": return bars(title, keyed(data));
    case "hourly_activity": return bars(title, hoursOfDay(data), { sequential: true });
    case "top_groups": return bars(title, data.map((row) => ({ label: row.title.slice(0, 12), value: row.count })));
    case "cache_vs_api": return [bars("Decisions by source", keyed(data.decisions)),
      h("p", { class: "muted" }, `getChatMember calls: ${data.get_chat_member_calls}`)];
    case "groups_by_status": return [bars("Groups by health", keyed(data.health)), bars("Groups by enforcement", keyed(data.enabled))];
    case "telegram_calls": return [bars("Calls by method", keyed(data.by_method)), bars("Calls by outcome", keyed(data.by_outcome))];
    case "bot_health": return bars("Bots by state", keyed(data.by_state));
    case "cache_hit_trend": return data.length ? trend(title, data, period, [["hit_rate", "hit rate %", 100]], " %") : bars(title, []);
    case "latency_trend": return data.length ? trend(title, data, period, [["p50", "p50"], ["p95", "p95"], ["p99", "p99"]], " ms") : bars(title, []);
    case "user_growth": return data.length ? trend(title, data, period, [["joins", "joins"], ["leaves", "leaves"]], "", true) : bars(title, []);
    case "verification_trends": {
      if (!data.length) return bars(title, []);
      // Every outcome present, one line each in its colour.
      const all = buckets(period);
      const series = inOrder(new Set(data.map((row) => row.key))).map((outcome) => ({
        name: outcome, tone: outcomeTone(outcome),
        values: all.map((bucket) => data.find((row) => row.bucket === bucket && row.key === outcome)?.count ?? 0),
      }));
      return lineChart(title, all.map((bucket) => bucketLabel(bucket, periodOf(period).bucket_ms)), series);
    }
    default: return h("pre", {}, JSON.stringify(data, null, 1));
  }
}

export async function render(main) {
  const period = new URLSearchParams(location.search).get("period") || "24h";
  const index = await get("/api/v1/charts");
  // The summary first, then the charts in the API's order.
  index.items.sort((a, b) => (b === "overview") - (a === "overview"));
  const choice = select(index.periods.map((p) => [p, { "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days" }[p] || p]), period);
  choice.addEventListener("change", () => navigate(`/analytics?period=${choice.value}`));
  const grid = h("div", { class: "charts" });
  main.replaceChildren(h("h1", {}, "Analytics"), h("div", { class: "filters panel" }, field("period", "Period", choice)),
    h("p", { class: "muted", "data-zone": "" }, zoneNote(periodOf(period).bucket_ms)), grid);
  const charts = await Promise.all(index.items.map((name) => get(`/api/v1/charts/${name}?period=${encodeURIComponent(period)}`)));
  grid.replaceChildren(...charts.map((chart, n) => h("section", { class: "panel", "data-chart": index.items[n] },
    h("h2", {}, TITLES[index.items[n]] || index.items[n]), draw(index.items[n], chart.data, period))));
}
