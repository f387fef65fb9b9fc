// Project quotas for dir volumes: each volume directory gets its own project id (inherited by
// everything created in it) and a block (and optionally inode) hard limit on that project, so
// the volume is held to its size and `df` in the pod shows the volume, not the disk.
// Support is decided once per pool from the filesystem and kernel; where it is missing,
// `quota: auto` volumes work unenforced (and say so), `quota: required` volumes are refused.
import type { Logger } from '../common/log.js'
import { getProjectQuota, projectQuotaSupport, readMountInfo, setProjectId, setProjectQuota, type MountInfo } from '../native/index.js'
import type { Layout } from './layout.js'

export interface QuotaUsage {
  usedBytes: bigint
  limitBytes: bigint
  usedInodes: bigint
  limitInodes: bigint
}

export interface QuotaOps {
  /** Whether the pool's filesystem enforces project quotas, and if not, why (names what is missing). */
  support(pool: string): { supported: boolean; reason: string }
  /** Tags dir with the project id (inherit) and sets the limits. Idempotent. */
  apply(pool: string, dir: string, projectId: number, limitBytes: bigint, limitInodes?: bigint): void
  usage(pool: string, projectId: number): QuotaUsage
}

/** The mount that holds path: the topmost entry with the longest mount point above it. */
export function mountOf(table: MountInfo[], path: string): MountInfo | undefined {
  let best: MountInfo | undefined
  for (const m of table) {
    const inside = m.mountPoint === '/' || path === m.mountPoint || path.startsWith(m.mountPoint + '/')
    if (!inside) continue
    // Two mounts on one mount point: the one stacked on top is what the path reaches (a pool
    // mounted over a folder that was already a mount). It sits on the other (its parent), or,
    // failing that, came later in the table, which lists mounts in the order they were made.
    const longer = !best || m.mountPoint.length > best.mountPoint.length
    const covers = best !== undefined && m.mountPoint === best.mountPoint && best.parentId !== m.mountId
    if (longer || covers) best = m
  }
  return best
}

export function nativeQuota(layout: Layout, log: Logger, table: MountInfo[] = readMountInfo()): QuotaOps {
  const fsOf = new Map<string, MountInfo | undefined>()
  const decided = new Map<string, { supported: boolean; reason: string }>()
  const fs = (pool: string): MountInfo | undefined => {
    if (!fsOf.has(pool)) fsOf.set(pool, mountOf(table, layout.realRootOf(pool)))
    return fsOf.get(pool)
  }
  return {
    support(pool) {
      let d = decided.get(pool)
      if (!d) {
        const m = fs(pool)
        if (!m) d = { supported: false, reason: `cannot find the filesystem holding pool ${pool}` }
        else {
          const s = projectQuotaSupport(m.mountPoint, m.source)
          d = { supported: s.supported, reason: s.supported ? `project quotas enforced on ${m.fsType} (${m.source})` : `${m.fsType} at ${m.mountPoint}: ${s.reason}` }
        }
        decided.set(pool, d)
        log.info({ pool, ...d }, 'project quota support')
      }
      return d
    },
    apply(pool, dir, projectId, limitBytes, limitInodes) {
      const m = fs(pool)!
      setProjectId(dir, projectId, true)
      setProjectQuota(m.source, projectId, { blockHardBytes: limitBytes, ...(limitInodes !== undefined && { inodeHard: limitInodes }) })
    },
    usage(pool, projectId) {
      const q = getProjectQuota(fs(pool)!.source, projectId)
      return { usedBytes: q.usedBytes, limitBytes: q.blockHardBytes, usedInodes: q.usedInodes, limitInodes: q.inodeHard }
    },
  }
}

