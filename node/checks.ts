// Checks shared by the node RPCs: the volume's directory, paths handed over by the CO, and
// taking down a mount only after proving it is the volume's.
import type { VolumeKind } from '../common/store/model.js'
import { realpathSync } from 'node:fs'
import path from 'node:path'
import { failedPrecondition, invalid } from '../common/errors.js'
import { unsupportedFor, type Capability } from '../common/capability.js'
import { CONTEXT } from '../common/keys.js'
import type { NodeDeps } from './deps.js'
import { belongsTo, type Located } from './locate.js'
import type { PathInfo } from './mounter.js'

/** The volume kind from the volume context (set by CreateVolume); dir when absent. */
export function volumeKind(ctx: Record<string, string> | undefined): VolumeKind {
  const kind = ctx?.[CONTEXT.kind] ?? 'dir'
  if (kind !== 'dir' && kind !== 'image' && kind !== 'nfs') throw invalid(`volume_context[${CONTEXT.kind}]`, `${JSON.stringify(kind)} is not a volume kind this node serves`)
  return kind
}

export function checkCapability(field: string, cap: Capability, kind: VolumeKind = 'dir'): void {
  const why = unsupportedFor(cap, kind)
  if (why) throw invalid(field, why)
}

/**
 * A CO path must never lie inside the data root (mounting there would hide or expose volume
 * data), neither as written nor once its existing parents' symlinks are resolved: a parent
 * that is a symlink into the root would otherwise carry mkdir and mount inside another volume.
 */
export function checkOutsideRoot(d: NodeDeps, field: string, p: string): void {
  // requirePath() refuses `..` and `.` already; every check below compares strings, so it
  // holds here too, whoever calls (a path with `..` passes a prefix test it does not honour).
  if (path.resolve(p) !== p) throw invalid(field, `${JSON.stringify(p)} is not a normalised absolute path`)
  const roots = [...d.layout.allRoots(), ...d.privateRoots]
  const real = resolveExisting(p)
  for (const candidate of [p, real]) {
    for (const root of roots) {
      if (candidate === root || candidate.startsWith(root + '/') || root.startsWith(candidate + '/')) {
        throw invalid(field, `${p} overlaps the driver's data root ${root}`)
      }
    }
  }
  // Nor inside a mount of one of our volumes (a staging mount or a publication): that is the
  // volume's data, reached through the mount where realpath cannot see it.
  for (const candidate of [p, real]) {
    const above = d.index.mountAbove(candidate)
    if (above) throw invalid(field, `${p} lies inside ${above.mountPoint}, where volume ${above.volumeId} is mounted`)
  }
  // The path must lie under one of kubelet's folders as written, and no component below that
  // folder may be a symlink (kubelet never makes one there): a symlinked parent, a /proc/self/root
  // detour or a swapped-in link cannot carry a mount or an rmdir anywhere else.
  if (d.coPathPrefixes.length === 0) return
  const within = (x: string, pre: string) => pre === '/' || x === pre || x.startsWith(pre + '/')
  const pre = d.coPathPrefixes.find((q) => within(p, q) || within(p, realPrefix(q)))
  if (!pre) throw invalid(field, `${p} is outside the folders CO paths may use (${d.coPathPrefixes.join(', ')}; --co-path-prefix)`)
  const base = within(p, pre) ? pre : realPrefix(pre)
  const expected = path.join(realPrefix(pre), p.slice(base === '/' ? 0 : base.length))
  if (real !== expected) throw failedPrecondition(`${field} ${p} resolves to ${real}: a component below ${pre} is a symbolic link, which the driver never follows`)
}

const realPrefixes = new Map<string, string>()
function realPrefix(p: string): string {
  let r = realPrefixes.get(p)
  if (r === undefined) {
    try {
      r = realpathSync.native(p)
    } catch {
      r = p
    }
    realPrefixes.set(p, r)
  }
  return r
}

/** The path with its nearest existing ancestor's symlinks resolved (the rest kept as written). */
function resolveExisting(p: string): string {
  let head = p
  const rest: string[] = []
  for (;;) {
    try {
      const real = realpathSync.native(head)
      return rest.length === 0 ? real : path.join(real, ...rest.reverse())
    } catch {
      if (head === '/') return p
      rest.push(path.basename(head))
      head = path.dirname(head)
    }
  }
}

/** Refuses symlinks (never followed) and anything but a directory. */
export function checkDirectory(field: string, p: string, info: PathInfo): void {
  if (info.type === 'symlink') throw failedPrecondition(`${field} ${p} is a symbolic link; the driver never follows links at CO paths`)
  if (info.type !== 'dir') throw failedPrecondition(`${field} ${p} is a ${info.type}, not a directory`)
}

/**
 * Unmounts every layer of the volume's mounts at p (a retried mount can stack one twice) and
 * refuses, without touching it, a mount that is not this volume's. `vol` is the volume's data as
 * the caller already found it (undefined when it is gone; then the index decides). `filesystem`:
 * p may hold a filesystem's last mount, so unmount off the event loop (Mounter.unmountFilesystem).
 * The index entry goes only once the kernel's mount is gone, so the index never misses a mount.
 */
export async function unmountVolume(d: NodeDeps, id: string, vol: Located | undefined, field: string, p: string, first: PathInfo, filesystem = false): Promise<void> {
  let info: PathInfo | undefined = first
  for (let i = 0; i < 8 && info?.isMountRoot; i++) {
    const ours = vol ? belongsTo(d, vol, info, p) : d.index.paths(id).includes(p)
    if (!ours) throw failedPrecondition(`${field} ${p} has a mount that is not volume ${id}; leaving it alone`)
    if (filesystem) await d.mounter.unmountFilesystem(p)
    else d.mounter.unmount(p)
    info = d.mounter.inspect(p)
  }
  d.index.remove(id, p)
}
