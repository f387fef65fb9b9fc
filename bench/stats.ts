// Small statistics helpers: nearest-rank percentiles, medians, and a latency recorder keyed by
// step name. All times are milliseconds (floats) unless a name says otherwise.

/** Nearest-rank percentile (p in 0..100) of unsorted samples; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return NaN
  const sorted = [...samples].sort((a, b) => a - b)
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(rank, sorted.length) - 1]!
}

/** The median of the finite values (mean of the middle two for an even count); NaN when none. */
export function median(values: readonly number[]): number {
  const s = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const mid = Math.floor(s.length / 2)
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

export function minMax(values: readonly number[]): [number, number] {
  const v = values.filter((x) => Number.isFinite(x))
  return v.length === 0 ? [NaN, NaN] : [Math.min(...v), Math.max(...v)]
}

/** Milliseconds since t0 (from process.hrtime.bigint()). */
export function msSince(t0: bigint): number {
  return Number(process.hrtime.bigint() - t0) / 1e6
}

/** Collects latency samples per step. */
export class Recorder {
  readonly samples = new Map<string, number[]>()
  errors = 0
  readonly errorMessages: string[] = []

  add(step: string, ms: number): void {
    let list = this.samples.get(step)
    if (!list) this.samples.set(step, (list = []))
    list.push(ms)
  }

  /** Times fn and records it under step (only when it succeeds). */
  async time<T>(step: string, fn: () => Promise<T>): Promise<T> {
    const t0 = process.hrtime.bigint()
    const out = await fn()
    this.add(step, msSince(t0))
    return out
  }

  error(e: unknown): void {
    this.errors++
    if (this.errorMessages.length < 5) this.errorMessages.push((e as Error)?.message ?? String(e))
  }

  p(step: string, pct: number): number {
    return percentile(this.samples.get(step) ?? [], pct)
  }

  count(step: string): number {
    return this.samples.get(step)?.length ?? 0
  }
}

/** Formats a number for a table: a few significant digits, '-' for NaN. */
export function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return '-'
  if (x === 0) return '0'
  const a = Math.abs(x)
  if (a >= 1000) return x.toFixed(0)
  if (a >= 100) return x.toFixed(Math.max(0, digits - 3))
  if (a >= 10) return x.toFixed(Math.max(0, digits - 2))
  if (a >= 1) return x.toFixed(Math.max(0, digits - 1))
  return x.toPrecision(digits).replace(/0+$/, '').replace(/\.$/, '')
}

/** A ratio shown as "12.3×". */
export function fmtRatio(x: number): string {
  return Number.isFinite(x) ? `${fmt(x)}×` : '-'
}
