#!/usr/bin/env node
// Does a slow kernel call stall the node plugin? Root only; prints numbers, asserts nothing.
//
//   npm run build && npx tsc -p bench/tsconfig.json && node dist/bench/stall.js
//
// 1. sync vs async (koffi .async, a hop to libuv's pool and back) for the calls node/mounter.ts
//    chooses between: a bind mount(2) + umount2(2) pair, and LOOP_CONFIGURE (loopAttach of a
//    64 MiB image with direct I/O, the way images are staged). Interleaved in blocks, so load
//    from other processes falls on both alike.
// 2. Probe and NodePublishVolume of another volume while a NodeStageVolume is held in the kernel:
//    its image sits on a filesystem this script freezes, so ext4's mount(2) waits on its first
//    superblock write until the thaw. Probe's latency is taken from a second process, as the
//    liveness probe sees it, for STALL_WINDOW_MS (default 3000), then the script thaws.
//    STALL_DIST=/other/dist runs phase 2 against another build (e.g. one from before this change).
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  freeze, listLoopDevices, loopAttach, loopAttachAsync, loopDetach, MNT, MS, mount, mountAsync, thaw, umount2, umount2Async,
} from '../native/index.js'
import { benchClient, MOUNT_CAP, waitReady } from './csi.js'
import { DIST } from './paths.js'
import { spawnProc, stopProc } from './procs.js'
import { msSince, percentile } from './stats.js'

const fmt = (xs: number[], unit = 'µs', scale = 1000): string =>
  `p50 ${(percentile(xs, 50) * scale).toFixed(1)} ${unit}, p99 ${(percentile(xs, 99) * scale).toFixed(1)} ${unit}, max ${(Math.max(...xs) * scale).toFixed(1)} ${unit} (n=${xs.length})`

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error}`)
}

async function syscallCosts(dir: string): Promise<void> {
  const src = path.join(dir, 'src')
  const dst = path.join(dir, 'dst')
  mkdirSync(src)
  mkdirSync(dst)
  const sync: number[] = []
  const async: number[] = []
  for (let block = 0; block < 20; block++) {
    for (let i = 0; i < 100; i++) {
      let t0 = process.hrtime.bigint()
      mount(src, dst, null, MS.BIND, null)
      umount2(dst, MNT.UMOUNT_NOFOLLOW)
      sync.push(msSince(t0))
      t0 = process.hrtime.bigint()
      await mountAsync(src, dst, null, MS.BIND, null)
      await umount2Async(dst, MNT.UMOUNT_NOFOLLOW)
      async.push(msSince(t0))
    }
  }
  console.log(`bind mount + umount2, sync:  ${fmt(sync)}`)
  console.log(`bind mount + umount2, async: ${fmt(async)}`)
  const img = path.join(dir, 'loop.img')
  run('truncate', ['-s', '64M', img])
  const cfgSync: number[] = []
  const cfgAsync: number[] = []
  for (let i = 0; i < 40; i++) {
    let t0 = process.hrtime.bigint()
    const a = loopAttach(img, { directIo: true })
    cfgSync.push(msSince(t0))
    loopDetach(a.device)
    t0 = process.hrtime.bigint()
    const b = await loopAttachAsync(img, { directIo: true })
    cfgAsync.push(msSince(t0))
    loopDetach(b.device)
  }
  console.log(`loop attach (LOOP_CONFIGURE), sync:  ${fmt(cfgSync, 'ms', 1)}`)
  console.log(`loop attach (LOOP_CONFIGURE), async: ${fmt(cfgAsync, 'ms', 1)}`)
  // The case that made LOOP_CONFIGURE async: an image written a moment ago (mkfs, a copy) still
  // has dirty pages, and switching the device to direct I/O writes them back first.
  const dirty: number[] = []
  for (let i = 0; i < 5; i++) {
    writeFileSync(img, Buffer.alloc(32 << 20, i + 1))
    const t0 = process.hrtime.bigint()
    const a = await loopAttachAsync(img, { directIo: true })
    dirty.push(msSince(t0))
    loopDetach(a.device)
  }
  console.log(`loop attach of an image with 32 MiB of dirty pages: ${fmt(dirty, 'ms', 1)}`)
}

const volumeId = (): string => `v-${randomBytes(16).toString('hex')}`

async function stallPhase(dir: string, dist: string): Promise<void> {
  const data = path.join(dir, 'data')
  const images = path.join(data, 'images')
  mkdirSync(images, { recursive: true })
  // The pool's images folder is its own small xfs, so freezing it touches nothing else.
  const outer = path.join(dir, 'images.xfs')
  run('truncate', ['-s', '320M', outer])
  run('mkfs.xfs', ['-q', outer])
  const holder = await loopAttachAsync(outer, { autoclear: true, whileOpen: (a) => mountAsync(a.device, images, 'xfs', 0, null) })
  const slow = volumeId()
  const img = path.join(images, `${slow}.img`)
  run('truncate', ['-s', '64M', img])
  run('mkfs.ext4', ['-q', '-F', img])
  const other = volumeId()
  mkdirSync(path.join(data, 'volumes', other), { recursive: true })
  const sock = path.join(dir, 'node.sock')
  const proc = spawnProc('tscsi-node', process.execPath, [path.join(dist, 'node/main.js'), '--endpoint', `unix://${sock}`, '--state-dir', path.join(dir, 'state'),
    '--data-root', data, '--nodeid', 'stall-node', '--co-path-prefix', dir, '--log-level', 'warn'], path.join(dir, 'node.log'))
  const node = benchClient('Node', sock)
  const id = benchClient('Identity', sock)
  let frozen = false
  try {
    await waitReady(sock, 30_000, proc.alive)
    const base = (v: string, kind: string) => ({ volume_id: v, volume_capability: MOUNT_CAP, volume_context: { 'tscsi.dev/kind': kind } })
    const otherStaging = path.join(dir, 'other-staging')
    mkdirSync(otherStaging)
    await node.NodeStageVolume({ ...base(other, 'dir'), staging_target_path: otherStaging })
    const idle: number[] = []
    for (let i = 0; i < 300; i++) {
      const t0 = process.hrtime.bigint()
      await id.Probe({})
      idle.push(msSince(t0))
    }
    console.log(`Probe, nothing else running:         ${fmt(idle, 'ms', 1)}`)
    const slowStaging = path.join(dir, 'slow-staging')
    mkdirSync(slowStaging)
    freeze(images)
    frozen = true
    // However this process ends, the filesystem is thawed (a crash skips `finally`).
    process.once('exit', () => { if (frozen) thaw(images) })
    const t0 = process.hrtime.bigint()
    let stageMs = NaN
    let stageError: unknown
    // Settled here, never left unhandled: an unhandled rejection would end this process on the
    // spot, skipping the thaw below and leaving the filesystem frozen (and every sync(1) on the
    // machine waiting on it).
    const staging = node.NodeStageVolume({ ...base(slow, 'image'), staging_target_path: slowStaging }, 120_000)
      .then(() => (stageMs = msSince(t0)), (e: unknown) => (stageError = e))
    // The loop device exists once LOOP_CONFIGURE is through: the mount is in the kernel.
    while (!listLoopDevices().some((l) => l.backingFile === img) && stageError === undefined) await new Promise((r) => setTimeout(r, 5))
    const probes: number[] = []
    const publishes: number[] = []
    const window = Number(process.env['STALL_WINDOW_MS'] ?? 3000)
    const until = Date.now() + window
    // A call still unanswered when the window closes is given up (a stalled plugin answers only
    // after the thaw) and counted; the thaw must come from here either way.
    let unanswered = 0
    const timed = async (into: number[], call: (deadline: number) => Promise<unknown>): Promise<boolean> => {
      const c0 = process.hrtime.bigint()
      try {
        await call(Math.max(50, until - Date.now()))
        into.push(msSince(c0))
        return true
      } catch {
        unanswered++
        return false
      }
    }
    for (let i = 0; Date.now() < until && Number.isNaN(stageMs); i++) {
      if (!(await timed(probes, (dl) => id.Probe({}, dl)))) break
      if (i % 10 !== 0) continue
      const target = path.join(dir, `pod-${i}`)
      if (!(await timed(publishes, (dl) => node.NodePublishVolume({ ...base(other, 'dir'), staging_target_path: otherStaging, target_path: target }, dl)))) break
      await node.NodeUnpublishVolume({ volume_id: other, target_path: target }, 120_000)
    }
    const stageReturnedEarly = !Number.isNaN(stageMs)
    thaw(images)
    frozen = false
    await staging
    if (stageError !== undefined) throw stageError
    const none = (xs: number[]) => (xs.length ? fmt(xs, 'ms', 1) : 'no answer')
    console.log(`Probe while a mount waits in the kernel: ${none(probes)}${stageReturnedEarly ? ' (the stage returned inside the window)' : ''}`)
    console.log(`NodePublishVolume of another volume meanwhile: ${none(publishes)}; calls unanswered when the window closed: ${unanswered}`)
    console.log(`NodeStageVolume of the held volume returned after ${stageMs.toFixed(0)} ms (the freeze was held ${window} ms)`)
    await node.NodeUnstageVolume({ volume_id: slow, staging_target_path: slowStaging })
    await node.NodeUnstageVolume({ volume_id: other, staging_target_path: otherStaging })
  } finally {
    if (frozen) thaw(images)
    node.close()
    id.close()
    await stopProc(proc)
    for (const l of listLoopDevices()) if (l.backingFile.startsWith(dir + '/')) loopDetach(l.device)
    try { umount2(images, MNT.DETACH) } catch { /* gone */ }
    void holder
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/stall needs root (mounts, loop devices, FIFREEZE)')
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tscsi-stall-'))
  try {
    await syscallCosts(dir)
    await stallPhase(path.join(dir, 'stall'), process.env['STALL_DIST'] || DIST)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

await main()
