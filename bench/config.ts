// The benchmark's configuration, from the environment (the variables are listed in main.ts).
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { OUT_DIR, ROOT } from './paths.js'

export const PHASES = ['memory', 'lifecycle', 'scale', 'syscalls', 'store', 'stall'] as const
export type Phase = (typeof PHASES)[number]

export interface Config {
  quick: boolean
  phases: Set<Phase>
  rounds: number
  roundSeconds: number
  memoryBatch: number
  scaleLevels: number[]
  scaleIterations: number
  scaleIterationsHostpath: number
  straceIterations: number
  floorCalls: number
  waitQuietSeconds: number
  /** Store sizes the store phase compares (the targets compare the first with the last). */
  storeSizes: number[]
  storeSamples: number
  nodeFlags: string[]
  profileDir?: string
  logLevel: string
  hostpathBin: string
  keep: boolean
}

function envInt(name: string, dflt: number): number {
  const v = process.env[name]
  if (v === undefined || v === '') return dflt
  const n = Number(v)
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v}: expected a number ≥ 0`)
  return n
}

export function config(): Config {
  const quick = process.env['BENCH_QUICK'] === '1'
  const phases = new Set<Phase>()
  for (const p of (process.env['BENCH_PHASES'] || PHASES.join(',')).split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!(PHASES as readonly string[]).includes(p)) throw new Error(`BENCH_PHASES: unknown phase ${JSON.stringify(p)} (known: ${PHASES.join(', ')})`)
    phases.add(p as Phase)
  }
  const nodeFlags = (process.env['BENCH_NODE_FLAGS'] ?? '').split(/\s+/).filter(Boolean)
  let profileDir: string | undefined
  if (process.env['BENCH_PROFILE'] === '1') {
    profileDir = path.join(OUT_DIR, 'profiles', new Date().toISOString().replace(/[:.]/g, '-'))
    mkdirSync(profileDir, { recursive: true })
    nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`)
  }
  const hostpathBin = process.env['BENCH_HOSTPATH_BIN'] || path.join(ROOT, '.tools/bin/hostpathplugin')
  return {
    quick,
    phases,
    rounds: Math.max(1, Math.round(envInt('BENCH_ROUNDS', 3))),
    roundSeconds: Math.max(0.2, envInt('BENCH_ROUND_SECONDS', quick ? 1 : 5)),
    memoryBatch: quick ? 200 : 1000,
    scaleLevels: quick ? [10, 1000] : [10, 1000, 5000],
    scaleIterations: quick ? 50 : 300,
    scaleIterationsHostpath: quick ? 10 : 40,
    straceIterations: quick ? 20 : 100,
    floorCalls: quick ? 200 : 1000,
    waitQuietSeconds: envInt('BENCH_WAIT_QUIET', quick ? 0 : 20),
    storeSizes: quick ? [10, 1000] : [10, 10_000],
    storeSamples: quick ? 20 : 100,
    nodeFlags,
    ...(profileDir && { profileDir }),
    logLevel: process.env['BENCH_LOG_LEVEL'] || 'info',
    hostpathBin,
    keep: process.env['BENCH_KEEP'] === '1',
  }
}
