// Pure validation of request fields. Every id or name is checked here before any layer turns it
// into a path; every failure names the field and says why (INVALID_ARGUMENT), except ids that
// are well-formed strings but not ours, which simply do not exist (NOT_FOUND) as the spec asks.
import { invalid, notFound } from './errors.js'
import { idKind, KIND_NAMES, type IdKind } from './ids.js'

/** The CSI spec caps strings, map keys and map values at 128 bytes. */
export const MAX_STRING_BYTES = 128
/** Linux PATH_MAX; the spec only requires that at least 128 bytes be accepted. */
export const MAX_PATH_BYTES = 4096

/** Pool names (StorageClass `pool`, node `--pool NAME=PATH`): short DNS labels. */
export const POOL_NAME = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/
// Node ids come from --nodeid / the host name: DNS-1123-ish, plus dots and underscores.
const NODE_ID = /^[A-Za-z0-9]([A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$/
// Ids, paths, keys and values: no control characters at all (C0, DEL, C1). Names follow the
// spec's own rule, which allows TAB, LF and CR (see requireName).
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/
const PATH_CONTROL = CONTROL
// eslint-disable-next-line no-control-regex
const NAME_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/

/** A CreateVolume/CreateSnapshot name: the spec allows any string within 128 bytes except U+0000-0008, U+000B, U+000C, U+000E-001F, U+007F-009F. */
export function requireName(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(field, 'must not be empty')
  if (byteLength(value) > MAX_STRING_BYTES) throw invalid(field, `is ${byteLength(value)} bytes; at most ${MAX_STRING_BYTES} are allowed`)
  if (NAME_CONTROL.test(value)) throw invalid(field, 'contains a character the CSI spec forbids in names (NUL or a control other than TAB, LF, CR)')
  return value
}

export function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8')
}

/** A required, printable string of at most 128 bytes. */
export function requireString(field: string, value: unknown, maxBytes = MAX_STRING_BYTES): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(field, 'must not be empty')
  return checkString(field, value, maxBytes)
}

export function checkString(field: string, value: string, maxBytes = MAX_STRING_BYTES): string {
  if (byteLength(value) > maxBytes) throw invalid(field, `is ${byteLength(value)} bytes; at most ${maxBytes} are allowed`)
  if (CONTROL.test(value)) throw invalid(field, 'contains a NUL or control character')
  return value
}

/**
 * Validates an id from a request (common/ids.ts says which strings are ours). Malformed strings
 * are INVALID_ARGUMENT; well-formed strings that we could not have minted do not exist
 * (NOT_FOUND), which is what csi-sanity and COs expect for made-up ids.
 */
export function requireId(field: string, value: unknown, kind: IdKind): string {
  const id = requireString(field, value)
  if (idKind(id) !== kind) throw notFound(`${KIND_NAMES[kind]} ${JSON.stringify(id)} does not exist`)
  return id
}

/** Like requireId but answers undefined instead of NOT_FOUND (for idempotent deletes). */
export function ownIdOrUndefined(field: string, value: unknown, kind: IdKind): string | undefined {
  const id = requireString(field, value)
  return idKind(id) === kind ? id : undefined
}

export function isNodeId(value: string): boolean {
  return NODE_ID.test(value)
}

export function requireNodeId(field: string, value: unknown): string {
  const id = requireString(field, value)
  if (!NODE_ID.test(id)) throw invalid(field, `${JSON.stringify(id)} is not a valid node id (letters, digits, '.', '_', '-')`)
  return id
}

/**
 * An absolute, normalised path from the CO (target, staging, volume path). Rejecting `..`,
 * `.`, empty segments and trailing slashes means the string we check is the string we use.
 */
export function requirePath(field: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0) throw invalid(field, 'must not be empty')
  if (byteLength(value) >= MAX_PATH_BYTES) throw invalid(field, `is ${byteLength(value)} bytes; a path must be shorter than ${MAX_PATH_BYTES} (PATH_MAX)`)
  if (PATH_CONTROL.test(value)) throw invalid(field, 'contains a NUL or control character')
  if (!value.startsWith('/')) throw invalid(field, `${JSON.stringify(value)} is not an absolute path`)
  if (value === '/') throw invalid(field, 'must not be the root directory')
  const segments = value.slice(1).split('/')
  for (const seg of segments) {
    if (seg === '' || seg === '.' || seg === '..') {
      throw invalid(field, `${JSON.stringify(value)} is not a normalised path (empty, '.' or '..' segment)`)
    }
    if (byteLength(seg) > 255) throw invalid(field, 'has a component longer than 255 bytes (NAME_MAX)')
  }
  return value
}

/** A string map from the request: keys and values each at most 128 bytes. */
export function checkMap(field: string, value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(field, 'must be a map of strings')
  const entries: [string, string][] = []
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') throw invalid(`${field}[${k}]`, 'must be a string')
    checkString(`${field} key`, k)
    checkString(`${field}[${k}]`, v)
    entries.push([k, v])
  }
  // fromEntries defines own properties, so a key like "__proto__" stays a plain key.
  return Object.fromEntries(entries)
}

/** Whether two string maps hold the same entries, whatever their key order (Go sends maps in
 * random order, so a retried request may list them differently). */
export function sameMap(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a)
  return ka.length === Object.keys(b).length && ka.every((k) => Object.hasOwn(b, k) && b[k] === a[k])
}

/** Parses a uint64/int64 that proto-loader delivered as a string (longs: String). */
export function parseBytes(field: string, value: unknown): bigint {
  if (value === undefined || value === null || value === '') return 0n
  // Decimal digits only: BigInt() would also take hex, binary, booleans and arrays.
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value
  if (typeof text !== 'string' || !/^-?[0-9]{1,20}$/.test(text)) throw invalid(field, `${JSON.stringify(value)} is not an integer`)
  const n = BigInt(text)
  if (n < 0n) throw invalid(field, 'must not be negative')
  if (n > 0x7fff_ffff_ffff_ffffn) throw invalid(field, 'exceeds the int64 range')
  return n
}
