// Small helpers for suites that drive the real processes and look at gRPC outcomes as data
// (code + message) rather than as thrown errors.
import { status } from '@grpc/grpc-js'
import { mkdtempSync, rmSync } from 'node:fs'
import path from 'node:path'
import { client, spawnDriver, type Proc } from './driver.js'

export interface Outcome {
  code: number
  message: string
  res?: any
}

/** Settles a client call into { code, message, res }: code 0 with res on success. */
export async function outcome(p: Promise<unknown>): Promise<Outcome> {
  try {
    const res = await p
    return { code: status.OK, message: '', res }
  } catch (e) {
    const err = e as { code?: unknown; details?: unknown; message?: unknown }
    return {
      code: typeof err.code === 'number' ? err.code : -1,
      message: typeof err.details === 'string' ? err.details : String(err.message),
    }
  }
}

export function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`
}

/**
 * Like driver.start(), with the child's working directory set to cwd (so a relative path a buggy
 * driver resolved would land where the test can see it), and faster: it waits for the socket
 * file before dialling, because a grpc-js client that dials a socket not yet there backs off for
 * seconds. The socket lives in a short folder under /tmp (unix socket paths stop at 107 bytes),
 * removed when the test ends.
 */
export async function startIn(cwd: string, kind: 'controller' | 'node', dir: string, extra: string[] = [], t?: { teardown(fn: () => unknown): void }): Promise<Proc> {
  const sockDir = mkdtempSync('/tmp/tscsi-h-')
  t?.teardown(() => rmSync(sockDir, { recursive: true, force: true }))
  return spawnDriver({ kind, dir, extra, cwd, socket: path.join(sockDir, `${kind}.sock`), readyTimeoutMs: 20_000 })
}

export function isRoot(): boolean {
  return process.getuid?.() === 0
}

/** A seeded PRNG (mulberry32); replayable from the printed seed. */
export function prng(seed: number): { next(): number; int(n: number): number; pick<T>(a: readonly T[]): T; chance(p: number): boolean } {
  let s = seed >>> 0
  const next = (): number => {
    s = (s + 0x6d2b79f5) >>> 0
    let x = s
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  return {
    next,
    int: (n) => Math.floor(next() * n),
    pick: (a) => a[Math.floor(next() * a.length)]!,
    chance: (p) => next() < p,
  }
}
