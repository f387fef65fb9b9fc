// Shared helpers for service and unit tests: requests shaped as proto-loader delivers them
// (keepCase, enums as strings, oneofs with a discriminator), and one assertion for the
// project's error contract (a CsiError carrying a numeric gRPC status).
import { status } from '@grpc/grpc-js'
import type t from 'tap'
import { CsiError } from '../../common/errors.js'
import type { Handler, ServiceHandlers } from '../../common/grpc.js'

/** The type of a (sub)test's `t`. */
export type TT = Parameters<Parameters<typeof t.test>[0]>[0]

export function mountCap(mode = 'SINGLE_NODE_WRITER', mountFlags: string[] = [], fsType = ''): Record<string, unknown> {
  return { mount: { fs_type: fsType, mount_flags: mountFlags, volume_mount_group: '' }, access_mode: { mode }, access_type: 'mount' }
}

export function blockCap(mode = 'SINGLE_NODE_WRITER'): Record<string, unknown> {
  return { block: {}, access_mode: { mode }, access_type: 'block' }
}

/** A handler by name; fails loudly instead of calling undefined. */
export function handler(h: ServiceHandlers, name: string): Handler {
  const fn = h[name]
  if (!fn) throw new Error(`no handler ${name}; have ${Object.keys(h).join(', ')}`)
  return fn
}

/**
 * Asserts that p rejects with a CsiError of the given code (and a message matching re).
 * Returns the error so callers can check more.
 */
export async function rejectsCsi(tt: TT, p: Promise<unknown>, code: status, re?: RegExp, what = ''): Promise<CsiError | undefined> {
  let err: unknown
  let resolved = false
  try {
    await p
    resolved = true
  } catch (e) {
    err = e
  }
  const label = what ? `${what}: ` : ''
  if (resolved) {
    tt.fail(`${label}resolved, expected ${status[code]}`)
    return undefined
  }
  tt.ok(err instanceof CsiError, `${label}throws a CsiError (got ${String((err as Error)?.name)})`)
  const got = (err as { code?: unknown }).code
  tt.equal(got, code, `${label}code ${status[code]} (got ${typeof got === 'number' ? status[got] : String(got)}: ${(err as Error)?.message})`)
  if (re) tt.match(String((err as Error)?.message), re, `${label}message names ${re}`)
  return err as CsiError
}

/** The gRPC code a synchronous call throws as a CsiError, or 'ok' when it returns. */
export function codeOf(fn: () => unknown): number | 'ok' {
  try {
    fn()
    return 'ok'
  } catch (e) {
    if (e instanceof CsiError) return e.code
    throw e
  }
}
