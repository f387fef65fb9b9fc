// Syscalls per NodePublishVolume and per NodeUnpublishVolume, counted with `strace -f -c` attached
// to the serving process (all its threads, and with -f the children it forks: hostpathplugin's
// mount(8), umount(8) and findmnt(8) runs count as part of its publish). An idle window of the
// same length is counted too and subtracted, so timers and the event loop's own polling do not
// show up as the RPC's cost.
import { spawn, spawnSync } from 'node:child_process'
import { promises as fsp, readFileSync } from 'node:fs'
import path from 'node:path'
import { MOUNT_CAP, volumeOf } from './csi.js'
import type { Driver } from './drivers.js'
import { msSince } from './stats.js'

export function haveStrace(): boolean {
  return spawnSync('strace', ['-V'], { stdio: 'ignore' }).status === 0
}

/** Parses the table `strace -c` writes: syscall name → calls. */
export function parseStraceSummary(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const t = line.trim().split(/\s+/)
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (t.length < 5 || !/^\d+(\.\d+)?$/.test(t[0]!) || !/^\d+$/.test(t[3]!)) continue
    const name = t[t.length - 1]!
    if (name === 'total') continue
    out.set(name, (out.get(name) ?? 0) + Number(t[3]))
  }
  return out
}

/** Counts the syscalls of pid (all threads, and children with -f) while fn runs. */
async function counted(pid: number, outFile: string, fn: () => Promise<void>): Promise<Map<string, number>> {
  const st = spawn('strace', ['-f', '-c', '-o', outFile, '-p', String(pid)], { stdio: ['ignore', 'ignore', 'pipe'] })
  // strace reports each attached thread on stderr; start once the first is attached.
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('strace did not attach within 10 s')), 10_000)
    st.stderr!.on('data', (b: Buffer) => {
      if (/attached/.test(b.toString())) {
        clearTimeout(timer)
        setTimeout(resolve, 300) // the other threads attach right after the first
      }
    })
    st.once('exit', (code) => reject(new Error(`strace exited (${code}) before attaching`)))
  })
  try {
    await fn()
  } finally {
    const done = new Promise((r) => st.once('exit', r))
    st.kill('SIGINT')
    await done
  }
  return parseStraceSummary(readFileSync(outFile, 'utf8'))
}

export interface SyscallResult {
  driver: string
  iterations: number
  /** Per call, idle window subtracted, sorted by count. */
  publish: [string, number][]
  unpublish: [string, number][]
  publishTotal: number
  unpublishTotal: number
}

function perCall(busy: Map<string, number>, idle: Map<string, number>, n: number): [string, number][] {
  const out: [string, number][] = []
  for (const [name, calls] of busy) {
    const v = (calls - (idle.get(name) ?? 0)) / n
    if (v >= 0.05) out.push([name, v])
  }
  return out.sort((a, b) => b[1] - a[1])
}

export async function syscallsPerPublish(d: Driver, pid: number, dir: string, iterations: number): Promise<SyscallResult> {
  const staging = path.join(dir, `${d.name}-strace-stage`)
  const pods = path.join(dir, `${d.name}-strace-pods`)
  await fsp.mkdir(staging, { recursive: true })
  await fsp.mkdir(pods, { recursive: true })
  const created = await d.controller.CreateVolume({ name: `strace-${d.name}`, capacity_range: { required_bytes: String(1 << 20) }, volume_capabilities: [MOUNT_CAP], parameters: {} })
  const volume = volumeOf(created)
  const id = volume.volume_id
  const ctx = volume.volume_context
  await d.node.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: MOUNT_CAP, volume_context: ctx })
  const targets = Array.from({ length: iterations }, (_, j) => path.join(pods, `p${j}`))
  try {
    let busyMs = 0
    const publish = await counted(pid, path.join(dir, `${d.name}-publish.strace`), async () => {
      const t0 = process.hrtime.bigint()
      for (const target of targets) {
        await d.node.NodePublishVolume({ volume_id: id, staging_target_path: staging, target_path: target, volume_capability: MOUNT_CAP, readonly: false, volume_context: ctx })
      }
      busyMs = msSince(t0)
    })
    const unpublish = await counted(pid, path.join(dir, `${d.name}-unpublish.strace`), async () => {
      for (const target of targets) await d.node.NodeUnpublishVolume({ volume_id: id, target_path: target })
    })
    const idle = await counted(pid, path.join(dir, `${d.name}-idle.strace`), () => new Promise((r) => setTimeout(r, Math.max(100, busyMs))))
    const pub = perCall(publish, idle, iterations)
    const unpub = perCall(unpublish, idle, iterations)
    return {
      driver: d.name, iterations, publish: pub, unpublish: unpub,
      publishTotal: pub.reduce((s, [, v]) => s + v, 0), unpublishTotal: unpub.reduce((s, [, v]) => s + v, 0),
    }
  } finally {
    for (const target of targets) await d.node.NodeUnpublishVolume({ volume_id: id, target_path: target }).catch(() => undefined)
    await d.node.NodeUnstageVolume({ volume_id: id, staging_target_path: staging }).catch(() => undefined)
    await d.controller.DeleteVolume({ volume_id: id }).catch(() => undefined)
    await fsp.rmdir(staging).catch(() => undefined)
    await fsp.rmdir(pods).catch(() => undefined)
  }
}
