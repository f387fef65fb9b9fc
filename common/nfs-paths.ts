// Where an nfs volume lives, checked the same way wherever it comes from: StorageClass
// parameters at CreateVolume (controller), the volume context at NodeStageVolume and the stored
// spec when a node makes or removes the directory. Pure, so the controller uses it without
// loading native/. Why the checks are this strict is told in node/nfs-options.ts.
import { isIP } from 'node:net'
import { invalid } from './errors.js'

export const SERVER_FIELD = 'parameters.server'
export const SHARE_FIELD = 'parameters.share'
export const SUBDIR_FIELD = 'parameters.subDir'
// NFS4_MAXPATHLEN is PATH_MAX, but a share plus a volume's directory has no reason to be long;
// a short bound keeps hostile input from reaching the kernel at all.
export const MAX_PATH = 1024

/** 4 or 6 for an IP address written with digits, dots and colons only (so no IPv6 zone), else 0. */
export function ipFamily(value: string): 0 | 4 | 6 {
  return /^[0-9a-fA-F:.]+$/.test(value) ? (isIP(value) as 0 | 4 | 6) : 0
}

/** A server as a user may write it: a DNS name, an IPv4 address, or an IPv6 one (brackets allowed). */
export function parseServer(value: string, field = SERVER_FIELD): string {
  if (typeof value !== 'string' || value === '') throw invalid(field, 'must name the NFS server')
  const bare = value.startsWith('[') && value.endsWith(']') ? value.slice(1, -1) : value
  if (ipFamily(bare) !== 0) return bare
  // RFC 1123 host names only: this also refuses ',', '=', ':', '/', whitespace, NUL and the rest.
  const label = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/
  const name = value.endsWith('.') ? value.slice(0, -1) : value
  if (name.length > 253 || !name.split('.').every((l) => label.test(l))) {
    throw invalid(field, `${JSON.stringify(value)} is not a host name or an IP address (an IPv6 zone is not accepted)`)
  }
  return name
}

/** The export path: absolute and already normal. */
export function checkShare(value: string, field = SHARE_FIELD): string {
  if (typeof value !== 'string' || !value.startsWith('/')) throw invalid(field, `${JSON.stringify(value)} must be an absolute path on the server`)
  if (value !== '/') checkSegments(value.slice(1), field, value)
  return value
}

/** The volume's directory below the share: relative and already normal; '' is the share itself. */
export function checkSubDir(value: string, field = SUBDIR_FIELD): string {
  if (typeof value !== 'string') throw invalid(field, 'must be a string')
  if (value === '') return value
  if (value.startsWith('/')) throw invalid(field, `${JSON.stringify(value)} must be relative to the share`)
  checkSegments(value, field, value)
  return value
}

function checkSegments(rel: string, field: string, shown: string): void {
  if (Buffer.byteLength(rel) > MAX_PATH) throw invalid(field, `longer than ${MAX_PATH} bytes`)
  // Control characters (newline, NUL, ...), DEL, and the option separators.
  if (/[\x00-\x1f\x7f,=\\]/.test(rel)) throw invalid(field, `${JSON.stringify(shown)} holds a control character, ',', '=' or '\\'`)
  for (const seg of rel.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') {
      throw invalid(field, `${JSON.stringify(shown)} is not a normal path (an empty, "." or ".." segment, or a trailing "/")`)
    }
  }
}
