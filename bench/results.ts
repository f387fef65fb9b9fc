// The shape of a benchmark run's results (written as JSON beside the printed table), and the
// reductions from raw rounds to what the table shows.
import type { FloorResult } from './floors.js'
import type { RoundResult } from './lifecycle.js'
import type { SyscallResult } from './syscalls.js'
import { median, minMax, percentile, type Recorder } from './stats.js'

export interface StepStats {
  p50: number
  p99: number
  n: number
}

export interface RoundSummary {
  perSecond: number
  lifecycles: number
  seconds: number
  cpuMsPerLifecycle: number
  errors: number
  errorMessages: string[]
  steps: Record<string, StepStats>
  /** CPU used by processes other than the benchmark's during the round, in cores (noise). */
  foreignCores: number
  /** tscsi only: p50 of the server-side time each RPC logged, in ms. */
  serverP50: Record<string, number>
}

export interface LifecycleResult {
  concurrency: number
  /** hostpath is missing when the comparison driver could not be built. */
  rounds: { tscsi: RoundSummary; hostpath?: RoundSummary }[]
}

export interface MemSample {
  label: string
  lifecycles: number
  /** MB (10^6 bytes) of VmRSS, per process. */
  rss: Record<string, number>
  hwm: Record<string, number>
}

export interface MemoryResult {
  /** Lifecycles per batch (0 when the memory phase did not run: then only idle and end samples). */
  batch: number
  samples: MemSample[]
  scrapes: number
  scrapeErrors: number
}

export interface ScaleDriverStats {
  publishP50: number
  publishP99: number
  unpublishP50: number
  unpublishP99: number
  serverPublishP50: number
  serverUnpublishP50: number
  iterations: number
}

export interface ScaleLevel {
  mounts: number
  tableLines: number
  /** One full read + parse of /proc/self/mountinfo at this size, ms. */
  scanMs: number
  tscsi: ScaleDriverStats
  hostpath?: ScaleDriverStats
}

export interface StoreSummary {
  volumes: number
  /** Writing the volumes into the store folder (store API, 64 at a time). */
  populateSeconds: number
  /** Restarting controller and node plugin on that store until both answer Probe. */
  restartSeconds: number
  /** VmRSS with the store loaded, MB. */
  rss: Record<string, number>
  create: StepStats
  delete: StepStats
  listAll: StepStats & { entries: number; jsonBytes: number }
  /** The full listing received undecoded: without the harness client's protobuf decoding. */
  listRaw: StepStats
  listPage: StepStats & { pages: number }
  listWalkMs: number
}

export interface Target {
  name: string
  goal: string
  measured: string
  pass: boolean | undefined
}

export interface Results {
  meta: Record<string, string | number>
  memory?: MemoryResult
  lifecycle?: LifecycleResult[]
  floor?: FloorResult
  scale?: ScaleLevel[]
  syscalls?: SyscallResult[]
  /** One per store size, ascending. */
  store?: StoreSummary[]
  profiles?: string[]
  targets: Target[]
  runtimeSeconds: number
}

export function stepStats(rec: Recorder, step: string): StepStats {
  const s = rec.samples.get(step) ?? []
  return { p50: percentile(s, 50), p99: percentile(s, 99), n: s.length }
}

export function summariseRound(r: RoundResult, steps: readonly string[], serverP50: Record<string, number>, foreignCores: number): RoundSummary {
  const out: Record<string, StepStats> = {}
  for (const s of [...steps, 'lifecycle']) out[s] = stepStats(r.rec, s)
  return {
    perSecond: r.perSecond, lifecycles: r.lifecycles, seconds: r.seconds, cpuMsPerLifecycle: r.cpuMsPerLifecycle,
    errors: r.rec.errors, errorMessages: r.rec.errorMessages, steps: out, serverP50, foreignCores,
  }
}

/** Median over rounds of a per-round number. */
export function med<T>(rounds: T[], f: (r: T) => number): number {
  return median(rounds.map(f))
}

/** Median and range of the paired per-round ratio a/b (drift cancels within a pair). */
export function pairedRatio<T>(rounds: T[], a: (r: T) => number, b: (r: T) => number): { median: number; min: number; max: number } {
  const ratios = rounds.map((r) => a(r) / b(r))
  const [min, max] = minMax(ratios)
  return { median: median(ratios), min, max }
}
