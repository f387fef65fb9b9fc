// The GroupController service: a volume group snapshot is a set of member snapshots taken
// together of volumes on one node (the node freezes the mounted image filesystems of all
// members before copying any of them, so the set is consistent).
import { aborted, alreadyExists, CsiError, Code, failedPrecondition, invalid, notFound } from '../common/errors.js'
import { groupIdFor, memberIdFor } from '../common/ids.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import type { SnapshotSpec } from '../common/store/model.js'
import type { SnapshotObject } from '../common/store/types.js'
import { ownIdOrUndefined, requireId, requireName } from '../common/validate.js'
import type { ControllerDeps } from './deps.js'
import { awaitSnapshot, csiSnapshot, deleteSnapshot, READY_WAIT_MS } from './snapshots.js'
import type { VolumeGroupSnapshot } from '../proto/gen/csi/v1/VolumeGroupSnapshot.js'

async function members(d: ControllerDeps, groupId: string): Promise<SnapshotObject[]> {
  return (await d.store.snapshots.list()).filter((s) => s.spec.groupId === groupId && !s.spec.deletionRequestedAt)
}

function csiGroup(groupId: string, snaps: SnapshotObject[]): VolumeGroupSnapshot {
  const list = snaps.map(csiSnapshot)
  const first = list[0]?.creation_time ?? { seconds: '0', nanos: 0 }
  return { group_snapshot_id: groupId, snapshots: list, creation_time: first, ready_to_use: list.every((s) => s.ready_to_use) }
}

export function groupHandlers(d: ControllerDeps): Implemented<'GroupController', 'CreateVolumeGroupSnapshot' | 'DeleteVolumeGroupSnapshot' | 'GetVolumeGroupSnapshot' | 'GroupControllerGetCapabilities'> {
  async function CreateVolumeGroupSnapshot(req: RequestOf<'GroupController', 'CreateVolumeGroupSnapshot'>): Promise<ResponseOf<'GroupController', 'CreateVolumeGroupSnapshot'>> {
    const name = requireName('name', req.name)
    const raw: unknown[] = Array.isArray(req.source_volume_ids) ? req.source_volume_ids : []
    if (raw.length === 0) throw invalid('source_volume_ids', 'at least one volume is required')
    const ids = [...new Set(raw.map((v, i) => requireId(`source_volume_ids[${i}]`, v, 'v')))].sort()
    const gid = groupIdFor(name)
    return d.locks.run(gid, `group snapshot ${JSON.stringify(name)}`, async (): Promise<ResponseOf<'GroupController', 'CreateVolumeGroupSnapshot'>> => {
      const existing = await members(d, gid)
      const had = existing.map((s) => s.spec.sourceVolumeId).sort()
      // A controller stopped while writing the members left some of them: a retry with the same
      // volumes writes the rest (their groupMembers say the group was these volumes).
      const meant = existing[0]?.spec.groupMembers ?? had
      if (existing.length > 0 && JSON.stringify(meant) !== JSON.stringify(ids)) {
        throw alreadyExists(`group snapshot name ${JSON.stringify(name)} is taken by a group of other volumes`)
      }
      const missing = ids.filter((id) => !had.includes(id))
      if (missing.length > 0) {
        const vols = await Promise.all(ids.map((id) => d.store.volumes.refresh(id)))
        vols.forEach((v, i) => {
          if (!v || v.spec.deletionRequestedAt) throw notFound(`volume ${ids[i]} does not exist`)
          if (v.spec.kind === 'nfs') throw failedPrecondition(`volume ${ids[i]} is an nfs volume; snapshots of nfs volumes are not supported yet`)
        })
        const nodes = new Set(vols.map((v) => v!.spec.node))
        if (nodes.size > 1) throw invalid('source_volume_ids', `the volumes live on different nodes (${[...nodes].join(', ')}); a group snapshot is taken on one node`)
        const now = existing[0]?.spec.createdAt ?? d.clock().toISOString()
        for (const v of vols) {
          if (!missing.includes(v!.id)) continue
          const spec: SnapshotSpec = {
            name: `${name}/${v!.id}`, sourceVolumeId: v!.id, node: v!.spec.node, pool: v!.spec.pool, kind: v!.spec.kind,
            ...(v!.spec.fsType !== undefined && { fsType: v!.spec.fsType }), sizeBytes: v!.spec.capacityBytes,
            accessType: v!.spec.accessType, createdAt: now, generation: 1, groupId: gid, groupMembers: ids,
          }
          await d.store.snapshots.putSpec(memberIdFor(gid, v!.id), spec)
        }
      }
      // As CreateSnapshot: a small group is ready when the call answers; a big one answers
      // ready_to_use false once the node has started, and the CO polls GetVolumeGroupSnapshot.
      const readyBy = Date.now() + Math.min(READY_WAIT_MS, d.realiseTimeoutMs)
      for (const id of ids) {
        const ready = await awaitSnapshot(d, memberIdFor(gid, id), true, Math.max(0, readyBy - Date.now()))
        const out = ready ?? (await awaitSnapshot(d, memberIdFor(gid, id), false, d.realiseTimeoutMs))
        if (!out) throw new CsiError(Code.DEADLINE_EXCEEDED, `the node did not start group snapshot ${gid}; the call can be retried`)
        if ('err' in out) throw out.err
        if ('gone' in out) throw aborted(`group snapshot ${gid} was deleted while being created`)
      }
      return { group_snapshot: csiGroup(gid, await members(d, gid)) }
    })
  }

  async function DeleteVolumeGroupSnapshot(req: RequestOf<'GroupController', 'DeleteVolumeGroupSnapshot'>): Promise<ResponseOf<'GroupController', 'DeleteVolumeGroupSnapshot'>> {
    const gid = ownIdOrUndefined('group_snapshot_id', req.group_snapshot_id, 'g')
    if (!gid) return {}
    return d.locks.run(gid, `group snapshot ${gid}`, async (): Promise<ResponseOf<'GroupController', 'DeleteVolumeGroupSnapshot'>> => {
      const snaps = await members(d, gid)
      const named: string[] = Array.isArray(req.snapshot_ids) ? req.snapshot_ids : []
      if (named.length > 0 && JSON.stringify([...named].sort()) !== JSON.stringify(snaps.map((s) => s.id).sort())) {
        throw invalid('snapshot_ids', `do not match the members of group snapshot ${gid}`)
      }
      for (const s of snaps) await d.locks.run(s.id, `snapshot ${s.id}`, () => deleteSnapshot(d, s.id))
      return {}
    })
  }

  async function GetVolumeGroupSnapshot(req: RequestOf<'GroupController', 'GetVolumeGroupSnapshot'>): Promise<ResponseOf<'GroupController', 'GetVolumeGroupSnapshot'>> {
    const gid = requireId('group_snapshot_id', req.group_snapshot_id, 'g')
    const snaps = await members(d, gid)
    if (snaps.length === 0) throw notFound(`group snapshot ${gid} does not exist`)
    return { group_snapshot: csiGroup(gid, snaps) }
  }

  return {
    CreateVolumeGroupSnapshot, DeleteVolumeGroupSnapshot, GetVolumeGroupSnapshot,
    GroupControllerGetCapabilities: async () => ({ capabilities: [{ rpc: { type: 'CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT' } }] }),
  }
}
