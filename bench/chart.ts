import type { Summary } from "./stats.js";

const COLORS = ["#2b6cb0", "#dd6b20", "#38a169", "#805ad5"];
const escape = (text: string) => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/**
 * One panel per scenario, one horizontal bar per system (its median), the p99 as a thin whisker. Plain SVG, so
 * the README can show it and no browser is needed to make it.
 */
export function renderChart(summaries: Record<string, Record<string, Summary>>, scenarios: string[], title: string, date: string): string {
  const systems = Object.keys(summaries);
  const width = 760;
  const label = 190;
  const barHeight = 16;
  const panelHeight = 28 + systems.length * (barHeight + 6);
  const height = 40 + scenarios.length * panelHeight + 30;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="22" font-size="15" font-weight="bold">${escape(title)}</text>`,
  ];
  scenarios.forEach((scenario, index) => {
    const top = 40 + index * panelHeight;
    const rows = systems.map((system) => summaries[system]?.[scenario]).filter((s): s is Summary => s !== undefined);
    const max = Math.max(...rows.map((s) => Math.max(s.median, s.p99)), 1e-9);
    const unit = rows[0]?.unit ?? "";
    parts.push(`<text x="10" y="${top + 14}" font-weight="bold">${escape(scenario)} (${escape(unit)}${unit === "ms" ? ", shorter is better" : ", longer is better"})</text>`);
    systems.forEach((system, i) => {
      const s = summaries[system]?.[scenario];
      if (s === undefined) return;
      const y = top + 22 + i * (barHeight + 6);
      const scale = (v: number) => ((width - label - 90) * v) / max;
      parts.push(`<text x="10" y="${y + 12}">${escape(system)}</text>`);
      parts.push(`<rect x="${label}" y="${y}" width="${scale(s.median).toFixed(1)}" height="${barHeight}" fill="${COLORS[i % COLORS.length]}"/>`);
      parts.push(`<line x1="${label + scale(s.median)}" x2="${label + scale(s.p99)}" y1="${y + barHeight / 2}" y2="${y + barHeight / 2}" stroke="#444"/>`);
      parts.push(`<text x="${label + scale(Math.max(s.median, s.p99)) + 6}" y="${y + 12}">${s.median.toFixed(s.median < 10 ? 2 : 1)}</text>`);
    });
  });
  parts.push(`<text x="10" y="${height - 10}" fill="#555">bars: median · line: up to p99 · ${escape(date)}</text>`, `</svg>`);
  return parts.join("\n");
}
