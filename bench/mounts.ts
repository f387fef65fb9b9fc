// Unrelated bind mounts for the scale benchmark, made with mount(2) through tscsi's own native
// layer (koffi), and the safety net that detaches anything left under the benchmark's folder.
// scripts/bench.sh runs the whole benchmark in a private mount namespace (unshare -m), so even a
// SIGKILL leaks nothing into the host's mount table; this module cleans up regardless.
import { mkdirSync, readFileSync, rmdirSync } from 'node:fs'
import path from 'node:path'
import { MNT, MS, mount, umount2 } from '../native/index.js'

export class BackgroundMounts {
  private readonly src: string
  private readonly points: string[] = []

  constructor(readonly dir: string) {
    this.src = path.join(dir, 'src')
    mkdirSync(this.src, { recursive: true })
  }

  get count(): number {
    return this.points.length
  }

  /** Adds bind mounts of one source folder until there are n. */
  grow(n: number): void {
    while (this.points.length < n) {
      const p = path.join(this.dir, `m${this.points.length}`)
      mkdirSync(p, { recursive: true })
      mount(this.src, p, null, MS.BIND, null)
      this.points.push(p)
    }
  }

  /** Detaches every mount this object made and removes the mount points. Never throws. */
  clear(): void {
    for (let p = this.points.pop(); p !== undefined; p = this.points.pop()) {
      try {
        umount2(p, MNT.DETACH)
      } catch {
        /* already gone */
      }
      try {
        rmdirSync(p)
      } catch {
        /* left for the folder's removal */
      }
    }
  }
}

/** Mount points at or under dir in this process's mount namespace, deepest first. */
export function mountsUnder(dir: string): string[] {
  const unescape = (s: string): string => s.replace(/\\([0-3][0-7]{2})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)))
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => unescape(l.split(' ')[4] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(dir + '/'))
    .reverse()
}

/** Detaches everything mounted under dir (the last line of defence before removing it). */
export function detachAllUnder(dir: string): number {
  let n = 0
  for (let round = 0; round < 3; round++) {
    const left = mountsUnder(dir)
    if (left.length === 0) break
    for (const mp of left) {
      try {
        umount2(mp, MNT.DETACH)
        n++
      } catch {
        /* gone already, or a parent was detached first */
      }
    }
  }
  return n
}

/** Lines in /proc/self/mountinfo: the size of the table a scan would read. */
export function mountTableSize(): number {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean).length
}
