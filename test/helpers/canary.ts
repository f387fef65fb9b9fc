// A canary tree for the hostile-input suites: files, directories, a symlink, set modes and
// mtimes, placed outside the driver's roots but where hostile paths point. snapshotTree() records
// everything a privileged bug could change (type, mode, owner, size, mtime, ctime, inode, device,
// sha256 of content, link text) without following a symlink or changing anything itself, and
// diffSnapshots() lists the differences so a failure says exactly what was touched.
import { createHash } from 'node:crypto'
import { chmodSync, lstatSync, lutimesSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { MNT, readMountInfo, umount2 } from '../../native/index.js'

export interface Entry {
  type: string
  mode: number
  uid: number
  gid: number
  size: string
  mtimeNs: string
  ctimeNs: string
  ino: string
  dev: string
  sha256?: string
  link?: string
}

export type Snapshot = Map<string, Entry>

/** Fixed timestamps, so a rebuilt canary carries the same mtimes. */
const FIXED = new Date('2001-02-03T04:05:06Z')

/** The canary's layout, relative to its root. Directories end in '/'. */
const LAYOUT: { p: string; mode: number; content?: string; link?: string }[] = [
  { p: 'empty/', mode: 0o755 },
  { p: 'stage/', mode: 0o700 },
  // Named like the file a block volume's device node is bound on inside a staging dir.
  { p: 'stage/device', mode: 0o644, content: 'canary file named device\n' },
  { p: 'sub/', mode: 0o750 },
  { p: 'sub/nested/', mode: 0o755 },
  { p: 'sub/nested/deep.txt', mode: 0o640, content: 'deep canary content\n' },
  { p: 'file.txt', mode: 0o644, content: 'canary: nothing may change me\n' },
  { p: 'secret', mode: 0o600, content: 'top secret\n' },
  { p: 'run.sh', mode: 0o755, content: '#!/bin/sh\necho canary\n' },
  { p: 'link', mode: 0o777, link: 'file.txt' },
]

/** Creates the canary tree at root (root must not exist or be empty). */
export function buildCanary(root: string): void {
  mkdirSync(root, { recursive: true })
  for (const e of LAYOUT) {
    const full = path.join(root, e.p)
    if (e.p.endsWith('/')) mkdirSync(full)
    else if (e.link !== undefined) symlinkSync(e.link, full)
    else writeFileSync(full, e.content ?? '')
    if (e.link === undefined) chmodSync(full, e.mode)
  }
  // Children first, so setting a directory's times is not undone by touching its children.
  for (const e of [...LAYOUT].reverse()) lutimesSync(path.join(root, e.p), FIXED, FIXED)
  chmodSync(root, 0o755)
  lutimesSync(root, FIXED, FIXED)
}

/** Every entry under root (root itself as '.'), never following a symlink. */
export function snapshotTree(root: string): Snapshot {
  const out: Snapshot = new Map()
  const walk = (rel: string): void => {
    const full = rel === '.' ? root : path.join(root, rel)
    let st
    try {
      st = lstatSync(full, { bigint: true })
    } catch {
      return
    }
    const type = st.isDirectory() ? 'dir' : st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : 'other'
    const e: Entry = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: type === 'dir' ? '-' : st.size.toString(),
      mtimeNs: st.mtimeNs.toString(),
      ctimeNs: st.ctimeNs.toString(),
      ino: st.ino.toString(),
      dev: st.dev.toString(),
    }
    if (type === 'file') e.sha256 = createHash('sha256').update(readFileSync(full)).digest('hex')
    if (type === 'symlink') e.link = readlinkSync(full)
    out.set(rel, e)
    if (type === 'dir') for (const name of readdirSync(full).sort()) walk(rel === '.' ? name : path.join(rel, name))
  }
  walk('.')
  return out
}

/** Human-readable differences between two snapshots; empty when identical. */
export function diffSnapshots(before: Snapshot, after: Snapshot, ignore: (keyof Entry)[] = []): string[] {
  const out: string[] = []
  for (const [p, a] of before) {
    const b = after.get(p)
    if (!b) {
      out.push(`${p}: removed`)
      continue
    }
    for (const k of Object.keys(a) as (keyof Entry)[]) {
      if (ignore.includes(k)) continue
      if (a[k] !== b[k]) out.push(`${p}: ${k} ${String(a[k])} -> ${String(b[k])}`)
    }
  }
  for (const p of after.keys()) if (!before.has(p)) out.push(`${p}: created`)
  return out
}

/** Mount points of this process's mount namespace (decoded), in table order. */
export function mountPoints(): string[] {
  return readMountInfo().map((m) => m.mountPoint)
}

export function isUnder(p: string, dir: string): boolean {
  return p === dir || p.startsWith(dir + '/')
}

/** Lazily detaches every mount at or under dir (deepest first, repeated for stacked mounts). */
export function detachUnder(dir: string): string[] {
  const done: string[] = []
  for (let round = 0; round < 16; round++) {
    const points = mountPoints().filter((mp) => isUnder(mp, dir))
    if (points.length === 0) break
    for (const mp of points.reverse()) {
      try {
        umount2(mp, MNT.DETACH)
        done.push(mp)
      } catch {
        /* already gone */
      }
    }
  }
  return done
}

/** Detaches whatever a bug mounted under the canary, then rebuilds it from scratch. */
export function restoreCanary(root: string): void {
  detachUnder(root)
  rmSync(root, { recursive: true, force: true })
  buildCanary(root)
}
