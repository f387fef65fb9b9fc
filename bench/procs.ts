// Child processes of the benchmark: spawning with logs to a file, orderly stop (SIGTERM, so
// --cpu-prof can write its profile, then SIGKILL), and what /proc says about them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync } from 'node:fs'

export interface Proc {
  name: string
  child: ChildProcess
  pid: number
  logFile: string
  exited: Promise<number | null>
  alive(): boolean
}

export function spawnProc(name: string, cmd: string, args: string[], logFile: string): Proc {
  const fd = openSync(logFile, 'a')
  const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] })
  closeSync(fd)
  if (child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`)
  let running = true
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      running = false
      resolve(code ?? (signal ? -1 : null))
    }),
  )
  child.on('error', () => (running = false))
  return { name, child, pid: child.pid, logFile, exited, alive: () => running }
}

/** SIGTERM, then SIGKILL after graceMs. Resolves once the process is gone. */
export async function stopProc(p: Proc, graceMs = 15_000): Promise<void> {
  if (!p.alive()) return
  p.child.kill('SIGTERM')
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs)
  await p.exited
  clearTimeout(timer)
}

/** VmRSS and VmHWM of a process in MiB (NaN when it is gone). */
export function memoryMiB(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kib = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN)
    return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 }
  } catch {
    return { rss: NaN, hwm: NaN }
  }
}

let ticksPerSecond: number | undefined
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      ticksPerSecond = 100
    }
  }
  return ticksPerSecond
}

/**
 * CPU time of a process in ms: user + system, plus that of children it has waited for (the
 * mount(8) and findmnt(8) runs of hostpathplugin). NaN when it is gone.
 */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name, which is in parentheses and may contain spaces.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    // utime, stime, cutime, cstime are fields 14-17 of stat(5), i.e. 11-14 after the name.
    const ticks = [11, 12, 13, 14].reduce((s, i) => s + Number(f[i] ?? 0), 0)
    return (ticks * 1000) / clockTicks()
  } catch {
    return NaN
  }
}

/** CPU time the whole machine spent busy (all cores, everything but idle and iowait), in ms. */
export function machineBusyMs(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    const busy = (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)
    return (busy * 1000) / clockTicks()
  } catch {
    return NaN
  }
}

/**
 * Measures how much CPU processes other than ours used over an interval, in cores: the machine's
 * busy time minus this process's and the given pids' (children included). Anything well above
 * zero means something else ran during the measurement (another test suite, a build).
 */
export function foreignLoad(pids: () => number[]): () => number {
  const ours = (): number => {
    const u = process.cpuUsage()
    return (u.user + u.system) / 1000 + pids().reduce((s, p) => s + (Number.isFinite(cpuMs(p)) ? cpuMs(p) : 0), 0)
  }
  const m0 = machineBusyMs()
  const o0 = ours()
  const t0 = process.hrtime.bigint()
  return () => {
    const wallMs = Number(process.hrtime.bigint() - t0) / 1e6
    return Math.max(0, (machineBusyMs() - m0) - (ours() - o0)) / wallMs
  }
}
