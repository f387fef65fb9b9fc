// CreateSnapshot, DeleteSnapshot, ListSnapshots, GetSnapshot. A snapshot is an object in the
// store that the node holding the source volume realises by copying the data (reflink where the
// filesystem can). CreateSnapshot waits a little for the copy, then answers; a longer copy goes
// on in the background with ready_to_use false, and the external-snapshotter polls.
import { aborted, alreadyExists, CsiError, Code, failedPrecondition, notFound } from '../common/errors.js'
import { actingNode, snapshotLocation } from './nfs.js'
import { snapshotIdFor } from '../common/ids.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import type { SnapshotSpec, SnapshotStatus } from '../common/store/model.js'
import type { SnapshotObject } from '../common/store/types.js'
import { waitFor } from '../common/store/wait.js'
import { checkMap, ownIdOrUndefined, requireId, requireName, requireString } from '../common/validate.js'
import type { ControllerDeps } from './deps.js'
import { paginate } from './request.js'
import type { Snapshot } from '../proto/gen/csi/v1/Snapshot.js'
import { codeByName, nodeFailure } from './await.js'

export function csiSnapshot(o: SnapshotObject): Snapshot {
  const created = new Date(o.spec.createdAt)
  return {
    snapshot_id: o.id,
    source_volume_id: o.spec.sourceVolumeId,
    size_bytes: o.spec.sizeBytes,
    creation_time: { seconds: String(Math.floor(created.getTime() / 1000)), nanos: (created.getTime() % 1000) * 1e6 },
    ready_to_use: o.status?.phase === 'Ready' && o.status.observedGeneration >= o.spec.generation,
    group_snapshot_id: o.spec.groupId ?? '',
  }
}

type Done = { obj: SnapshotObject } | { err: CsiError } | { gone: true }

/** Waits until the node has acted on the snapshot's spec: copied (or failed), or deleted. */
export async function awaitSnapshot(d: ControllerDeps, id: string, untilReady: boolean, timeoutMs: number): Promise<Done | undefined> {
  return waitFor<SnapshotSpec, SnapshotStatus, Done>(d.store.snapshots, id, (o) => {
    if (!o) return { gone: true }
    const s = o.status
    if (!s || s.observedGeneration < o.spec.generation) return undefined
    if (s.deleteBlocked && o.spec.deletionRequestedAt) return { err: failedPrecondition(s.deleteBlocked) }
    if (s.phase === 'Failed') return { err: nodeFailure(o.spec, codeByName(s.code), s.message ?? 'the snapshot failed on the node') }
    if (o.spec.deletionRequestedAt) return s.phase === 'Deleted' ? { obj: o } : undefined
    if (untilReady && s.phase !== 'Ready') return undefined
    return { obj: o }
  }, timeoutMs)
}

/** How long CreateSnapshot waits for a copy before answering ready_to_use: false. */
export const READY_WAIT_MS = 3_000

export function snapshotHandlers(d: ControllerDeps): Implemented<'Controller', 'CreateSnapshot' | 'DeleteSnapshot' | 'ListSnapshots' | 'GetSnapshot'> {
  async function CreateSnapshot(req: RequestOf<'Controller', 'CreateSnapshot'>): Promise<ResponseOf<'Controller', 'CreateSnapshot'>> {
    const name = requireName('name', req.name)
    requireString('source_volume_id', req.source_volume_id)
    checkMap('parameters', req.parameters)
    const volumeId = requireId('source_volume_id', req.source_volume_id, 'v')
    const id = snapshotIdFor(name)
    return d.locks.run(id, `snapshot ${JSON.stringify(name)}`, async (): Promise<ResponseOf<'Controller', 'CreateSnapshot'>> => {
      const existing = await d.store.snapshots.refresh(id)
      if (existing) {
        if (existing.spec.sourceVolumeId !== volumeId) throw alreadyExists(`snapshot name ${JSON.stringify(name)} is taken by a snapshot of volume ${existing.spec.sourceVolumeId}`)
        if (existing.spec.deletionRequestedAt) throw aborted(`snapshot ${JSON.stringify(name)} is being deleted; retry once that is done`)
        // A previous attempt failed on the node (a full pool, say): ask it once more instead of
        // repeating the failure, as CreateVolume does.
        if (existing.status?.phase === 'Failed' && existing.status.observedGeneration >= existing.spec.generation) {
          await d.store.snapshots.putSpec(id, { ...existing.spec, generation: existing.spec.generation + 1 })
        }
      } else {
        const vol = await d.store.volumes.refresh(volumeId)
        if (!vol || vol.spec.deletionRequestedAt) throw notFound(`volume ${volumeId} does not exist`)
        // An nfs volume's copy is made on its export by a node that serves nfs: the one that made
        // the volume if it is still here, else any.
        const node = vol.spec.nfs && !(await d.store.nodes.get(vol.spec.node)) ? actingNode(id, await d.store.nodes.list()) : vol.spec.node
        const spec: SnapshotSpec = {
          name, sourceVolumeId: volumeId, node, pool: vol.spec.pool, kind: vol.spec.kind,
          ...(vol.spec.nfs && { nfs: snapshotLocation(vol.spec.nfs, id) }),
          ...(vol.spec.fsType !== undefined && { fsType: vol.spec.fsType }), sizeBytes: vol.spec.capacityBytes,
          accessType: vol.spec.accessType, createdAt: d.clock().toISOString(), generation: 1,
        }
        await d.store.snapshots.putSpec(id, spec)
      }
      return { snapshot: csiSnapshot(await settle(id)) }
    })
  }

  /** Waits for the node's first word on a snapshot, and a little longer for the copy. */
  async function settle(id: string): Promise<SnapshotObject> {
    const ready = await awaitSnapshot(d, id, true, Math.min(READY_WAIT_MS, d.realiseTimeoutMs))
    const out = ready ?? (await awaitSnapshot(d, id, false, d.realiseTimeoutMs))
    if (!out) throw new CsiError(Code.DEADLINE_EXCEEDED, `the node did not start snapshot ${id} within ${d.realiseTimeoutMs} ms; the call can be retried`)
    if ('err' in out) throw out.err
    if ('gone' in out) throw aborted(`snapshot ${id} was deleted while being created; retry`)
    return out.obj
  }

  async function DeleteSnapshot(req: RequestOf<'Controller', 'DeleteSnapshot'>): Promise<ResponseOf<'Controller', 'DeleteSnapshot'>> {
    const id = ownIdOrUndefined('snapshot_id', req.snapshot_id, 's')
    if (!id) return {}
    return d.locks.run(id, `snapshot ${id}`, () => deleteSnapshot(d, id))
  }

  async function ListSnapshots(req: RequestOf<'Controller', 'ListSnapshots'>): Promise<ResponseOf<'Controller', 'ListSnapshots'>> {
    let all = (await d.store.snapshots.list()).filter((s) => !s.spec.deletionRequestedAt)
    if (req.snapshot_id) all = all.filter((s) => s.id === req.snapshot_id)
    if (req.source_volume_id) all = all.filter((s) => s.spec.sourceVolumeId === req.source_volume_id)
    const { page, next } = paginate(all, req, 's')
    return { entries: page.map((s) => ({ snapshot: csiSnapshot(s) })), next_token: next }
  }

  async function GetSnapshot(req: RequestOf<'Controller', 'GetSnapshot'>): Promise<ResponseOf<'Controller', 'GetSnapshot'>> {
    const id = requireId('snapshot_id', req.snapshot_id, 's')
    const s = await d.store.snapshots.get(id)
    if (!s || s.spec.deletionRequestedAt) throw notFound(`snapshot ${id} does not exist`)
    return { snapshot: csiSnapshot(s) }
  }

  return { CreateSnapshot, DeleteSnapshot, ListSnapshots, GetSnapshot }
}

/** Asks the node to remove a snapshot's data and drops the object once it has. */
export async function deleteSnapshot(d: ControllerDeps, id: string): Promise<object> {
  let obj = await d.store.snapshots.refresh(id)
  if (!obj) return {}
  if (obj.spec.nfs && !(await d.store.nodes.get(obj.spec.node))) {
    // On the export, any node that serves nfs can remove it: hand the job to one that is here.
    const spec = { ...obj.spec, node: actingNode(id, await d.store.nodes.list(), obj.spec.node), generation: obj.spec.generation + 1 }
    await d.store.snapshots.putSpec(id, spec)
    obj = { ...obj, spec }
  }
  if (!(await d.store.nodes.get(obj.spec.node))) {
    throw failedPrecondition(`snapshot ${id} lives on node ${obj.spec.node}, which is no longer registered; its data cannot be removed`)
  }
  if (!obj.spec.deletionRequestedAt) {
    await d.store.snapshots.putSpec(id, { ...obj.spec, deletionRequestedAt: d.clock().toISOString(), generation: obj.spec.generation + 1 })
  }
  const out = await awaitSnapshot(d, id, false, d.realiseTimeoutMs)
  if (!out) throw new CsiError(Code.DEADLINE_EXCEEDED, `node ${obj.spec.node} did not delete snapshot ${id} within ${d.realiseTimeoutMs} ms; the call can be retried`)
  if ('err' in out) throw out.err
  await d.store.snapshots.remove(id)
  return {}
}
