// Usage per UTC day over the last 30 days: an SVG chart (tokens as bars, cost as a line) and a table.

import { describe } from "./api.js";
import { $, clear, formatInt, formatUsd, h, s, showError } from "./dom.js";

export const DAYS = 30;
const W = 760;
const H = 260;
const M = { left: 64, right: 64, top: 30, bottom: 40 };

/** "2026-11-22" for a Date, in UTC. */
function dayName(d) {
  return d.toISOString().slice(0, 10);
}

/** The DAYS days up to today (UTC), oldest first. */
export function lastDays(now = new Date()) {
  const days = [];
  const today = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
  for (let i = DAYS - 1; i >= 0; i -= 1) days.push(dayName(new Date(today - i * 86400000)));
  return days;
}

/** A round number at or above `v` (1, 2 or 5 times a power of ten). */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export class UsageView {
  constructor(ctx) {
    this.ctx = ctx;
    this.chart = $("usage-chart");
    this.body = $("usage-body");
    this.error = $("usage-error");
    this.generation = 0;
  }

  async load() {
    const generation = ++this.generation;
    const days = lastDays();
    const from = days[0];
    const to = days[days.length - 1];
    $("usage-range").textContent = `From ${from} to ${to} (UTC days).`;
    try {
      const data = await this.ctx.api.get("/v1/admin/usage", { query: { from, to } });
      if (generation !== this.generation) return;
      showError(this.error, null);
      const byDay = new Map((data.items || []).map((d) => [d.day, d]));
      const series = days.map((day) => byDay.get(day) || {
        day, turns: 0, prompt_tokens: 0, completion_tokens: 0, total_tokens: 0, cost_usd: 0,
      });
      this.draw(series);
      this.table(series.filter((d) => d.turns || d.total_tokens).reverse());
    } catch (err) {
      if (generation !== this.generation) return;
      showError(this.error, describe(err));
      clear(this.chart);
      clear(this.body);
    }
  }

  draw(series) {
    const innerW = W - M.left - M.right;
    const innerH = H - M.top - M.bottom;
    const tokens = series.map((d) => Number(d.total_tokens) || 0);
    const costs = series.map((d) => Number(d.cost_usd) || 0);
    const maxT = niceCeil(Math.max(...tokens));
    const maxC = Math.max(...costs) > 0 ? niceCeil(Math.max(...costs)) : 1;
    const step = innerW / series.length;
    const y = (v, max) => M.top + innerH - (v / max) * innerH;
    const totalT = tokens.reduce((a, b) => a + b, 0);
    const totalC = costs.reduce((a, b) => a + b, 0);

    const svg = s("svg", {
      viewBox: `0 0 ${W} ${H}`, class: "usage-svg", role: "img",
      "aria-labelledby": "usage-svg-title usage-svg-desc", preserveAspectRatio: "xMidYMid meet",
    });
    svg.append(
      s("title", { id: "usage-svg-title", text: "Usage per day, last 30 days" }),
      s("desc", {
        id: "usage-svg-desc",
        text: `${formatInt(totalT)} tokens and ${formatUsd(totalC)} in ${series.length} days, from ${series[0].day} to ${series[series.length - 1].day}. The table below has the numbers.`,
      }),
    );
    const grid = s("g", { class: "grid", "aria-hidden": "true" });
    for (const f of [0, 0.5, 1]) {
      const gy = y(f * maxT, maxT);
      grid.append(
        s("line", { x1: M.left, x2: W - M.right, y1: gy, y2: gy, class: "gridline" }),
        s("text", { x: M.left - 6, y: gy + 4, class: "axis axis-left", text: formatInt(f * maxT) }),
        s("text", { x: W - M.right + 6, y: gy + 4, class: "axis axis-right", text: formatUsd(f * maxC) }),
      );
    }
    series.forEach((d, i) => {
      if (i % 5 === 0 || i === series.length - 1) {
        grid.append(s("text", {
          x: M.left + i * step + step / 2, y: H - M.bottom + 16, class: "axis axis-x", text: d.day.slice(5),
        }));
      }
    });
    svg.append(grid);

    const bars = s("g", { class: "bars" });
    series.forEach((d, i) => {
      const v = tokens[i];
      const top = y(v, maxT);
      bars.append(s("rect", {
        x: M.left + i * step + step * 0.15, y: top, width: step * 0.7, height: Math.max(0, M.top + innerH - top),
        class: "bar",
      }, s("title", { text: `${d.day}: ${formatInt(v)} tokens, ${formatUsd(costs[i])}, ${d.turns} turns` })));
    });
    svg.append(bars);

    const points = series.map((d, i) => `${M.left + i * step + step / 2},${y(costs[i], maxC)}`).join(" ");
    const line = s("g", { class: "cost" });
    line.append(s("polyline", { points, class: "cost-line" }));
    series.forEach((d, i) => {
      if (costs[i] > 0) {
        line.append(s("circle", { cx: M.left + i * step + step / 2, cy: y(costs[i], maxC), r: 3, class: "cost-dot" },
          s("title", { text: `${d.day}: ${formatUsd(costs[i])}` })));
      }
    });
    svg.append(line);
    svg.append(s("text", { x: M.left - 6, y: 14, class: "axis axis-left", text: "tokens" }));
    svg.append(s("text", { x: W - M.right + 6, y: 14, class: "axis axis-right-title", text: "USD" }));
    this.chart.replaceChildren(svg);
  }

  table(days) {
    if (!days.length) {
      this.body.replaceChildren(h("tr", {}, h("td", { colspan: "6", class: "muted", text: "No usage in these 30 days." })));
      return;
    }
    this.body.replaceChildren(...days.map((d) => h("tr", {},
      h("th", { scope: "row", text: d.day }),
      h("td", { class: "num", text: formatInt(d.turns) }),
      h("td", { class: "num", text: formatInt(d.prompt_tokens) }),
      h("td", { class: "num", text: formatInt(d.completion_tokens) }),
      h("td", { class: "num", text: formatInt(d.total_tokens) }),
      h("td", { class: "num", text: `$${(Number(d.cost_usd) || 0).toFixed(6)}` }),
    )));
  }
}
