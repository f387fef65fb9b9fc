// Controller RPCs for the volume lifecycle. Each follows validate → plan → effects: the first two
// are pure (request.ts, placement.ts); effects are store writes and a bounded wait for the node
// that holds the volume to report what it did. The controller never touches a node's disk.
import { parseCapabilities } from '../common/capability.js'
import { aborted, alreadyExists, Code, CsiError, exhausted, failedPrecondition, invalid, notFound } from '../common/errors.js'
import { volumeIdFor } from '../common/ids.js'
import { topologyOf } from '../common/keys.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import { DEFAULT_POOL, onItsNode, type VolumeSpec } from '../common/store/model.js'
import type { VolumeObject } from '../common/store/types.js'
import { awaitNodeAct, type Outcome } from './await.js'
import { MUTABLE_PARAMETERS, parseMutable } from './modify.js'
import { nfsSourceSize, parseContentSource, placeFromSource, sameSource } from './sources.js'

/** The parameters a repeated CreateVolume must match: ModifyVolume may have changed the rest. */
function immutable(p: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(p).filter(([k]) => !(MUTABLE_PARAMETERS as readonly string[]).includes(k)))
}
import { checkMap, ownIdOrUndefined, requireId, requireName, requireString, sameMap } from '../common/validate.js'
import type { ControllerDeps } from './deps.js'
import { claimRoom, createClaimed, onlyNode, releaseClaim, type Pick } from './claims.js'
import { holdingsFor } from './holdings.js'
import { chooseNode, claimsId, matches, roomOf, type ClaimsByNode } from './placement.js'
import { actingNode, checkNoOverlap, classMountOptions, resolveLocation, type NfsLocation } from './nfs.js'
import { nfsCapacity } from './nfs-capacity.js'
import {
  capabilitiesMatch, checkSupported, csiVolume, fitsRange, paginate, parseParameters, parseRange, parseRequirements, planShape, publishedNodes,
  volumeCondition,
} from './request.js'


type ListEntry = NonNullable<ResponseOf<'Controller', 'ListVolumes'>['entries']>[number]

export function volumeHandlers(d: ControllerDeps): Implemented<'Controller', 'CreateVolume' | 'DeleteVolume' | 'ValidateVolumeCapabilities' | 'ListVolumes' | 'ControllerGetVolume' | 'GetCapacity'> {
  const awaitNode = (id: string, what: 'create' | 'delete'): Promise<Outcome> => awaitNodeAct(d, id, what)
  const now = (): string => d.clock().toISOString()
  const measureNfs = nfsCapacity(d)

  async function CreateVolume(req: RequestOf<'Controller', 'CreateVolume'>): Promise<ResponseOf<'Controller', 'CreateVolume'>> {
    // validate
    const name = requireName('name', req.name)
    const range = parseRange(req.capacity_range)
    const caps = parseCapabilities('volume_capabilities', req.volume_capabilities)
    const base = parseParameters(req.parameters)
    // A VolumeAttributesClass at creation: its keys join the parameters (they may differ later).
    const mutable = parseMutable(req.mutable_parameters)
    const params = { ...base, raw: { ...base.raw, ...mutable } }
    const source = parseContentSource(req.volume_content_source)
    const reqs = parseRequirements(req.accessibility_requirements)
    // plan
    const id = volumeIdFor(name)
    const accessType = caps[0]!.accessType
    if (caps.some((c) => c.accessType !== accessType)) throw invalid('volume_capabilities', 'mixes mount and block access types')
    const { kind, fsType, size } = planShape(params, caps, range)
    const where = kind === 'nfs' ? resolveLocation(params.raw, name) : undefined
    const nfsOptions = classMountOptions(caps)
    // effects
    return d.locks.run(id, `volume ${JSON.stringify(name)}`, async (): Promise<ResponseOf<'Controller', 'CreateVolume'>> => {
      let obj = await d.store.volumes.refresh(id)
      if (!obj && where) {
        const bytes = source ? await nfsSourceSize(d, source, where, size, range, accessType) : size
        obj = await createNfs(id, { name, kind, capacityBytes: bytes.toString(), accessType, parameters: params.raw, createdAt: now(), generation: 1, ...(source && { contentSource: source }) },
          { ...where, ...(nfsOptions.length > 0 && { mountOptions: nfsOptions }) })
      } else if (!obj) {
        const at = source ? await placeFromSource(d, source, { kind, fsType, size }, range, reqs, accessType, base.kind !== undefined) : undefined
        const shape = at ?? { pool: params.pool, kind, fsType, size }
        const pick: Pick = at
          ? onlyNode(at.node, at.size, (free) => exhausted(`node ${at.node} has ${free} bytes free in pool ${JSON.stringify(at.pool)}; ${at.size} are needed`))
          : (rooms) => chooseNode(rooms, size, reqs, params.pool)
        // A project id is handed out with the claim, so two volumes on one node and pool never
        // share one (a shared id would pool their limits), whichever controllers made them.
        const quota = shape.kind === 'dir' && (params.raw['quota'] ?? 'auto') !== 'off'
        const claimed = await claimRoom(d, { volumeId: id, pool: shape.pool, kind: shape.kind, bytes: shape.size, ...(quota && { projectId: 'new' as const }) }, pick)
        const spec: VolumeSpec = {
          name, node: claimed.node, kind: shape.kind, pool: shape.pool, capacityBytes: shape.size.toString(), accessType,
          ...(shape.fsType !== undefined && { fsType: shape.fsType }), ...(claimed.projectId !== undefined && { projectId: claimed.projectId }),
          ...(source && { contentSource: source }), parameters: params.raw, createdAt: now(), generation: 1,
        }
        if (!(await createClaimed(d, id, spec, claimed))) {
          // Another controller made this volume first (two provisioners during a failover): it is
          // the volume, wherever it went, and our claim is released if it was elsewhere.
          obj = await d.store.volumes.refresh(id)
          if (obj?.spec.node !== claimed.node) await releaseClaim(d, claimed.node, id)
          if (!obj) throw aborted(`volume ${JSON.stringify(name)} was deleted while being created; retry`)
        }
      }
      if (obj) {
        const s = obj.spec
        if (s.deletionRequestedAt) throw aborted(`volume ${JSON.stringify(name)} is being deleted; retry once deletion completes`)
        const why = !fitsRange(BigInt(s.capacityBytes), range)
          ? `has ${s.capacityBytes} bytes, outside the requested range`
          : s.kind !== kind || (s.fsType ?? '') !== (fsType ?? '')
            ? `is of kind ${s.kind}${s.fsType ? ` (${s.fsType})` : ''}, not ${kind}${fsType ? ` (${fsType})` : ''}`
            : s.accessType !== accessType
              ? `has access type ${s.accessType}, not ${accessType}`
              : !sameMap(immutable(s.parameters), immutable(params.raw))
                ? 'was created with different parameters'
                : !sameSource(s.contentSource, source)
                  ? 'was made from another content source'
                : where && (s.nfs?.server !== where.server || s.nfs.share !== where.share || s.nfs.subDir !== where.subDir)
                  ? `lives at ${s.nfs?.server}:${s.nfs?.share} ${JSON.stringify(s.nfs?.subDir)}, not ${where.server}:${where.share} ${JSON.stringify(where.subDir)}`
                : onItsNode(s) && reqs.requisite.length > 0 && !reqs.requisite.some((t) => matches(topologyOf(s.node), t))
                  ? `lives on node ${s.node}, outside the requested topology`
                  : undefined
        if (why) throw alreadyExists(`a volume named ${JSON.stringify(name)} already exists and ${why}`)
        // A previous attempt failed on the node: ask it once more instead of repeating the failure.
        if (obj.status?.phase === 'Failed' && obj.status.observedGeneration >= s.generation) {
          await d.store.volumes.putSpec(id, { ...s, generation: s.generation + 1 })
        }
      }
      const out = await awaitNode(id, 'create')
      if ('err' in out) throw out.err
      if ('gone' in out) throw aborted(`volume ${JSON.stringify(name)} was deleted while being created; retry`)
      obj = out.obj
      return { volume: csiVolume(obj) }
    })
  }

  /**
   * Writes a new nfs volume, for a node that serves nfs to make its directory on the export. No
   * claim: it takes no room on any node. Returns the volume another controller wrote first, if so.
   */
  async function createNfs(id: string, base: Omit<VolumeSpec, 'node' | 'pool' | 'nfs'>, where: NfsLocation): Promise<VolumeObject | undefined> {
    checkNoOverlap(id, where, await d.store.volumes.list())
    const spec: VolumeSpec = { ...base, node: actingNode(id, await d.store.nodes.list()), pool: DEFAULT_POOL, nfs: where }
    if (await d.store.volumes.create(id, spec)) return undefined
    const obj = await d.store.volumes.refresh(id)
    if (!obj) throw aborted(`volume ${JSON.stringify(base.name)} was deleted while being created; retry`)
    return obj
  }

  async function DeleteVolume(req: RequestOf<'Controller', 'DeleteVolume'>): Promise<ResponseOf<'Controller', 'DeleteVolume'>> {
    const id = ownIdOrUndefined('volume_id', req.volume_id, 'v')
    if (!id) return {} // an id we never minted names no volume: deleting it is a no-op
    return d.locks.run(id, `volume ${id}`, async (): Promise<ResponseOf<'Controller', 'DeleteVolume'>> => {
      const obj = await d.store.volumes.refresh(id)
      if (!obj) return {}
      const nodes = publishedNodes(obj.spec)
      if (nodes.length > 0) throw failedPrecondition(`volume ${id} is still published to node(s) ${nodes.join(', ')}; unpublish it first`)
      let s = obj.spec
      if (s.kind === 'nfs' && !(await d.store.nodes.get(s.node))) {
        // Any node that serves nfs can remove the directory: hand the job to one that is here.
        s = { ...s, node: actingNode(id, await d.store.nodes.list(), s.node), generation: s.generation + 1 }
        await d.store.volumes.putSpec(id, s)
      }
      if (!(await d.store.nodes.get(s.node))) {
        // Nobody can remove the data of a node that is gone: waiting would only hang.
        if (s.parameters['onLostNode'] !== 'forget') {
          throw failedPrecondition(`volume ${id} lives on node ${s.node}, which is no longer registered; its data cannot be removed. ` +
            'Bring the node back, or set the StorageClass parameter onLostNode: forget to drop the volume without it')
        }
        d.log.warn({ volume_id: id, node: s.node }, 'forgetting a volume whose node is gone (onLostNode: forget); its data stays on that node')
        await d.store.volumes.remove(id, { force: true })
        await releaseClaim(d, s.node, id)
        return {}
      }
      const st = obj.status
      if (!s.deletionRequestedAt) {
        await d.store.volumes.putSpec(id, { ...s, deletionRequestedAt: now(), generation: s.generation + 1 })
      } else if (st?.deleteBlocked && st.observedGeneration >= s.generation) {
        // The node refused earlier (volume was mounted); ask again now.
        await d.store.volumes.putSpec(id, { ...s, generation: s.generation + 1 })
      }
      const out = await awaitNode(id, 'delete')
      if ('err' in out) {
        // The node refused (the volume is mounted there): take the request back, so a refused
        // delete changes nothing and the volume stays listed and usable.
        const cur = await d.store.volumes.refresh(id)
        if (cur) {
          const { deletionRequestedAt: _, ...rest } = cur.spec
          await d.store.volumes.putSpec(id, { ...rest, generation: cur.spec.generation + 1 })
        }
        throw out.err
      }
      await d.store.volumes.remove(id)
      // Only now: until the volume is gone, its room and project id stay taken. (nfs volumes
      // never claimed any.)
      if (onItsNode(s)) await releaseClaim(d, s.node, id)
      return {}
    })
  }

  async function ValidateVolumeCapabilities(req: RequestOf<'Controller', 'ValidateVolumeCapabilities'>): Promise<ResponseOf<'Controller', 'ValidateVolumeCapabilities'>> {
    requireString('volume_id', req.volume_id)
    const caps = parseCapabilities('volume_capabilities', req.volume_capabilities)
    const id = requireId('volume_id', req.volume_id, 'v')
    const obj = await d.store.volumes.get(id)
    if (!obj || obj.spec.deletionRequestedAt) throw notFound(`volume ${id} does not exist`)
    checkMap('volume_context', req.volume_context)
    const params = req.parameters && Object.keys(req.parameters).length > 0 ? req.parameters : undefined
    const why = capabilitiesMatch(obj.spec, caps) ??
      (params && !sameMap(checkMap('parameters', params), obj.spec.parameters) ? 'parameters differ from the volume\'s' : undefined)
    if (why) return { confirmed: null, message: why }
    return {
      confirmed: { volume_context: req.volume_context ?? {}, volume_capabilities: req.volume_capabilities, parameters: req.parameters ?? {}, mutable_parameters: {} },
      message: '',
    }
  }

  // Each volume's entry, kept while the store hands out the same (unchanged) object for it: the
  // answer's encoder then reuses the entry's bytes (list-encoding.ts). Never mutated.
  const entries = new WeakMap<VolumeObject, { nodeKnown: boolean; entry: ListEntry }>()
  const entryOf = (v: VolumeObject, nodeKnown: boolean): ListEntry => {
    const had = entries.get(v)
    if (had?.nodeKnown === nodeKnown) return had.entry
    const entry = {
      volume: csiVolume(v),
      status: { published_node_ids: publishedNodes(v.spec), volume_condition: volumeCondition(v.status, nodeKnown) },
    }
    entries.set(v, { nodeKnown, entry })
    return entry
  }

  async function ListVolumes(req: RequestOf<'Controller', 'ListVolumes'>): Promise<ResponseOf<'Controller', 'ListVolumes'>> {
    const all = (await d.store.volumes.list()).filter((v) => !v.spec.deletionRequestedAt)
    const { page, next } = paginate(all, req, 'v')
    const nodeIds = new Set((await d.store.nodes.list()).map((n) => n.id))
    return { entries: page.map((v) => entryOf(v, !onItsNode(v.spec) || nodeIds.has(v.spec.node))), next_token: next }
  }

  async function ControllerGetVolume(req: RequestOf<'Controller', 'ControllerGetVolume'>): Promise<ResponseOf<'Controller', 'ControllerGetVolume'>> {
    const id = requireId('volume_id', req.volume_id, 'v')
    const obj = await d.store.volumes.get(id)
    if (!obj || obj.spec.deletionRequestedAt) throw notFound(`volume ${id} does not exist`)
    // An nfs volume's data is on the export: the node that made its directory may come and go.
    const nodeKnown = !onItsNode(obj.spec) || (await d.store.nodes.get(obj.spec.node)) !== undefined
    return {
      volume: csiVolume(obj),
      status: { published_node_ids: publishedNodes(obj.spec), volume_condition: volumeCondition(obj.status, nodeKnown) },
    }
  }

  async function GetCapacity(req: RequestOf<'Controller', 'GetCapacity'>): Promise<ResponseOf<'Controller', 'GetCapacity'>> {
    const params = parseParameters(req.parameters)
    const caps = req.volume_capabilities?.length ? parseCapabilities('volume_capabilities', req.volume_capabilities) : []
    if (caps.length > 0) checkSupported('volume_capabilities', caps, params.kind)
    if (params.kind === 'nfs') return measureNfs(params.raw, classMountOptions(caps))
    const segments = checkMap('accessible_topology.segments', req.accessible_topology?.segments)
    const topo = Object.keys(segments).length > 0 ? { segments } : undefined
    const [nodes, volumes] = await Promise.all([d.store.nodes.list(), holdingsFor(d.store.volumes)])
    const claims: ClaimsByNode = new Map(await Promise.all(nodes.map(async (n) => [n.id, await d.store.ledger.get(claimsId(n.id))] as const)))
    const rooms = roomOf(nodes, volumes, params.pool, params.kind ?? 'dir', claims).filter((r) => !topo || matches(r.topology, topo))
    // A volume cannot span nodes: the total is what the segment holds, the maximum is what one
    // volume can get.
    const total = rooms.reduce((s, r) => s + r.free, 0n)
    const max = rooms.reduce((m, r) => (r.free > m ? r.free : m), 0n)
    return { available_capacity: total.toString(), maximum_volume_size: { value: max.toString() }, minimum_volume_size: null }
  }

  return { CreateVolume, DeleteVolume, ValidateVolumeCapabilities, ListVolumes, ControllerGetVolume, GetCapacity }
}
