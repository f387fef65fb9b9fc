// /proc/self/mountinfo parsing (proc(5), "mountinfo").
//
// The file is O(number of mounts) to produce and parse, and a node with many
// pods has thousands of mounts, so the driver only reads it at startup
// (reconciling what survived a restart) and for diagnostics. Per-RPC "is this
// mounted?" checks use statx().isMountRoot instead.

import { readFileSync } from 'node:fs'

export interface MountInfo {
  mountId: number
  parentId: number
  /** "major:minor" of the filesystem (st_dev), e.g. "8:1". */
  dev: string
  /** Path within the filesystem that forms this mount's root ("/" unless a bind mount of a subtree). */
  root: string
  /** Mount point relative to the process's root directory. */
  mountPoint: string
  /** Per-mount options (rw, nosuid, relatime, ...). */
  mountOptions: string[]
  /** Propagation tags such as "shared:1", "master:2", "propagate_from:3", "unbindable". */
  optionalFields: string[]
  fsType: string
  /** Filesystem-specific source, "none" when there is none. */
  source: string
  /** Per-superblock options. */
  superOptions: string[]
}

// The kernel escapes space, tab, newline and backslash as \ooo (and, in
// mount options rendered via seq_show_option, also the comma). Decoding any
// \ooo keeps us correct if another character is ever added to that set.
const OCTAL_ESCAPE = /\\([0-3][0-7]{2})/g

function unescape(s: string): string {
  if (!s.includes('\\')) return s
  return s.replace(OCTAL_ESCAPE, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

function options(s: string): string[] {
  // Split first, then decode: an escaped comma (\054) is part of a value.
  return s === '' ? [] : s.split(',').map(unescape)
}

const DEV = /^\d+:\d+$/
const ID = /^\d+$/

function parseLine(line: string): MountInfo | undefined {
  // Fields are separated by exactly one space; a source can legitimately be
  // the empty string, which shows up as two adjacent spaces, so no /\s+/.
  const f = line.split(' ')
  const sep = f.indexOf('-', 6)
  // 6 fixed fields, optional fields, "-", then exactly fstype/source/superopts.
  if (sep < 6 || f.length !== sep + 4) return undefined
  const [id, parent, dev, root, mountPoint, mountOpts] = f as [string, string, string, string, string, string]
  if (!ID.test(id) || !ID.test(parent) || !DEV.test(dev)) return undefined
  if (!root.startsWith('/') || !mountPoint.startsWith('/')) return undefined
  const fsType = f[sep + 1]!
  if (fsType === '') return undefined
  return {
    mountId: Number(id),
    parentId: Number(parent),
    dev,
    root: unescape(root),
    mountPoint: unescape(mountPoint),
    mountOptions: options(mountOpts),
    optionalFields: f.slice(6, sep).filter((x) => x !== ''),
    fsType: unescape(fsType),
    source: unescape(f[sep + 2]!),
    superOptions: options(f[sep + 3]!),
  }
}

/**
 * Parses mountinfo text. Malformed lines are skipped rather than thrown on:
 * one odd entry (a future kernel format tweak, a truncated read) must not
 * blind the driver to every other mount.
 */
export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = []
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw
    if (line === '') continue
    const mi = parseLine(line)
    if (mi !== undefined) out.push(mi)
  }
  return out
}

/**
 * Reads and parses /proc/self/mountinfo.
 *
 * Only for startup reconciliation and diagnostics, never per RPC: it costs
 * time proportional to the mount table. The kernel also produces the file in
 * chunks, so a read racing with mount/umount elsewhere can miss or repeat an
 * entry; callers reconciling state should tolerate that (or re-read).
 */
export function readMountInfo(): MountInfo[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
}
