// Summarises V8 CPU profiles (node --cpu-prof) as text: the functions with the most self time,
// and where whole subsystems' time goes (our code, each npm package, node internals, GC).
// Usage: node dist/bench/profile.js FILE.cpuprofile [--top N]
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { ROOT } from './paths.js'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}

interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  endTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface FunctionTime {
  /** file:line function, file relative to the package root (dist/... or node_modules/pkg/...). */
  key: string
  selfMs: number
  totalMs: number
}

export interface ProfileSummary {
  file: string
  wallMs: number
  /** Sampled time that was not idle. */
  busyMs: number
  idleMs: number
  byFunction: FunctionTime[]
  /** Self time by where the code lives: ours (dist/...), an npm package, node:internal, (gc), (program). */
  byArea: [string, number][]
}

function where(url: string): string {
  if (!url) return ''
  let p = url
  if (p.startsWith('file://')) p = fileURLToPath(p)
  if (p.startsWith(ROOT + '/')) p = p.slice(ROOT.length + 1)
  return p
}

function areaOf(frame: CallFrame): string {
  const name = frame.functionName
  if (!frame.url) {
    if (name === '(garbage collector)') return '(garbage collector)'
    if (name === '(program)') return '(program: native, not attributed)'
    if (name === '(idle)') return '(idle)'
    return '(native or V8 builtins)'
  }
  const p = where(frame.url)
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(p)
  if (nm) return `npm:${nm[1]}`
  if (p.startsWith('node:')) return 'node: internals'
  if (p.startsWith('dist/')) return `tscsi: ${p.split('/')[1]}/`
  return p
}

export function summarise(file: string): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map<number, ProfileNode>()
  const parent = new Map<number, number>()
  for (const n of prof.nodes) {
    byId.set(n.id, n)
    for (const c of n.children ?? []) parent.set(c, n.id)
  }
  const keyOf = (n: ProfileNode): string => {
    const f = n.callFrame
    const name = f.functionName || '(anonymous)'
    return f.url ? `${where(f.url)}:${f.lineNumber + 1} ${name}` : name
  }
  const self = new Map<string, number>()
  const total = new Map<string, number>()
  const area = new Map<string, number>()
  let idleMs = 0
  let sampledMs = 0
  // timeDeltas[i] is the time between sample i-1 and sample i; charge it to sample i.
  for (let i = 0; i < prof.samples.length; i++) {
    const ms = (prof.timeDeltas[i] ?? 0) / 1000
    const node = byId.get(prof.samples[i]!)
    if (!node) continue
    sampledMs += ms
    if (node.callFrame.functionName === '(idle)') {
      idleMs += ms
      continue
    }
    const k = keyOf(node)
    self.set(k, (self.get(k) ?? 0) + ms)
    const a = areaOf(node.callFrame)
    area.set(a, (area.get(a) ?? 0) + ms)
    // Inclusive time: once per distinct function on the stack (recursion counted once).
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const n = byId.get(id)!
      const key = keyOf(n)
      if (key === '(root)' || seen.has(key)) continue
      seen.add(key)
      total.set(key, (total.get(key) ?? 0) + ms)
    }
  }
  const byFunction = [...self.entries()].map(([key, selfMs]) => ({ key, selfMs, totalMs: total.get(key) ?? selfMs })).sort((a, b) => b.selfMs - a.selfMs)
  return {
    file, wallMs: (prof.endTime - prof.startTime) / 1000, busyMs: sampledMs - idleMs, idleMs, byFunction,
    byArea: [...area.entries()].sort((a, b) => b[1] - a[1]),
  }
}

/** Inclusive time of our own functions (dist/...), the view that says which RPC step costs what. */
export function ownInclusive(s: ProfileSummary, top: number): FunctionTime[] {
  const self = new Map(s.byFunction.map((f) => [f.key, f]))
  return [...self.values()].filter((f) => f.key.startsWith('dist/')).sort((a, b) => b.totalMs - a.totalMs).slice(0, top)
}

export function formatSummary(s: ProfileSummary, title: string, top = 15): string {
  const pct = (ms: number): string => `${((100 * ms) / Math.max(1e-9, s.busyMs)).toFixed(1)}%`
  const lines = [
    `${title}: ${path.basename(s.file)} — ${(s.wallMs / 1000).toFixed(1)} s wall, ${(s.busyMs / 1000).toFixed(2)} s on CPU (not idle)`,
    '  self time by area:',
    ...s.byArea.slice(0, 10).map(([a, ms]) => `    ${pct(ms).padStart(6)}  ${(ms).toFixed(0).padStart(7)} ms  ${a}`),
    `  top ${top} functions by self time (self%, total% = inclusive):`,
    ...s.byFunction.slice(0, top).map((f) => `    ${pct(f.selfMs).padStart(6)} ${pct(f.totalMs).padStart(6)}  ${f.key}`),
  ]
  return lines.join('\n')
}

// CLI
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const topAt = args.indexOf('--top')
  const top = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 20
  if (args.length === 0) {
    process.stderr.write('usage: node dist/bench/profile.js FILE.cpuprofile... [--top N]\n')
    process.exit(2)
  }
  for (const f of args) {
    const s = summarise(f)
    process.stdout.write(formatSummary(s, 'profile', top) + '\n  our functions by inclusive time:\n' +
      ownInclusive(s, top).map((x) => `    ${((100 * x.totalMs) / s.busyMs).toFixed(1).padStart(5)}%  ${x.key}`).join('\n') + '\n\n')
  }
}
