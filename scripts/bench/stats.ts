/** Median and minimum: the median resists one slow outlier, the minimum shows the floor. */
export interface Summary {
  median: number;
  min: number;
  runs: number;
}

export function getMedian(values: readonly number[]): number {
  if (values.length === 0) {
    return Number.NaN;
  }

  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

export function getSummary(values: readonly number[]): Summary {
  return {
    median: getMedian(values),
    min: values.length === 0 ? Number.NaN : Math.min(...values),
    runs: values.length,
  };
}

export interface Interval {
  start: number;
  end: number;
}

/**
 * Total length covered by possibly overlapping intervals. Children that run side by side (the two
 * du, the two find and getfattr walks) must count once, not once each.
 */
export function getUnionLength(intervals: readonly Interval[]): number {
  const sorted = [...intervals].sort((a, b) => a.start - b.start);
  let total = 0;
  let current: Interval | undefined;
  for (const interval of sorted) {
    if (current === undefined || interval.start > current.end) {
      if (current !== undefined) {
        total += current.end - current.start;
      }

      current = { ...interval };
    } else {
      current.end = Math.max(current.end, interval.end);
    }
  }

  return current === undefined ? total : total + current.end - current.start;
}

/** Medians of each key over several records, keys ordered by their median, largest first. */
export function getMedianByKey(records: readonly Record<string, number>[]): [string, number][] {
  const keys = new Set(records.flatMap((record) => Object.keys(record)));
  return [...keys]
    .map((key): [string, number] => [key, getMedian(records.map((record) => record[key] ?? 0))])
    .sort((a, b) => b[1] - a[1]);
}
