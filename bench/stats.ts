/** Order statistics for bench samples. */
export interface Summary {
  n: number;
  unit: string;
  median: number;
  p99: number;
  min: number;
  max: number;
  /** Interquartile range: the spread of the middle half, robust to the occasional outlier. */
  iqr: number;
}

/** Nearest-rank quantile of sorted values. */
function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

export function summarize(values: number[], unit: string): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    unit,
    median: quantile(sorted, 0.5),
    p99: quantile(sorted, 0.99),
    min: sorted[0] ?? Number.NaN,
    max: sorted[sorted.length - 1] ?? Number.NaN,
    iqr: quantile(sorted, 0.75) - quantile(sorted, 0.25),
  };
}
