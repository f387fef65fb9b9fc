// GetCapacity of an nfs class (issue 16): the export's free space, as seen by a node that mounts
// it. The controller never mounts anything, so it asks through the store, as for every other
// piece of work on a disk: an export object per server, share and mount options, whose spec
// names the node to ask and whose generation is bumped for a fresh answer. The node mounts the
// share, takes its statfs and writes the status (node/nfs.ts measureExport).
import { CsiError, Code } from '../common/errors.js'
import { exportIdFor } from '../common/ids.js'
import { checkShare, parseServer } from '../common/nfs-paths.js'
import type { ExportSpec } from '../common/store/model.js'
import type { ExportObject, NodeObject } from '../common/store/types.js'
import { waitFor } from '../common/store/wait.js'
import { codeByName } from './await.js'
import type { ControllerDeps } from './deps.js'
import { actingNode } from './nfs.js'

/**
 * How long an answer serves later calls. external-provisioner asks once per class and topology
 * segment each --capacity-poll-interval (1 min): the burst of one round shares one measurement.
 */
export const FRESH_MS = 30_000

type Capacity = { available_capacity: string; maximum_volume_size: { value: string }; minimum_volume_size: null }

/**
 * The node to ask: the one asked last while it is registered and its last answer was not a
 * failure; after a failure or once it is gone, another that serves nfs (so a node that cannot
 * reach the server does not answer for all of them), or the same one if it is the only one.
 */
export function nodeToAsk(id: string, nodes: NodeObject[], last: ExportObject | undefined): string {
  const cur = last?.spec.node
  const here = cur !== undefined && nodes.some((n) => n.id === cur && n.spec.kinds.includes('nfs'))
  const failed = last !== undefined && (last.status === undefined || last.status.observedGeneration < last.spec.generation || last.status.code !== undefined)
  if (here && !failed) return cur
  try {
    return actingNode(id, nodes, cur)
  } catch (e) {
    if (here) return cur
    throw e
  }
}

/**
 * Whether the object holds a measurement answering its latest question, taken at most FRESH_MS
 * ago. A failure is never reused: the next call asks again (another node, see nodeToAsk).
 */
function freshAnswer(obj: ExportObject | undefined, now: number): boolean {
  const st = obj?.status
  return st !== undefined && st.code === undefined && st.observedGeneration >= obj!.spec.generation && now - Date.parse(st.updatedAt) < FRESH_MS
}

export function nfsCapacity(d: ControllerDeps): (raw: Record<string, string>, mountOptions: string[]) => Promise<Capacity> {
  // Concurrent calls for one export share one question instead of racing generations.
  const inFlight = new Map<string, Promise<ExportObject>>()

  async function ask(id: string, want: Omit<ExportSpec, 'node' | 'generation'>): Promise<ExportObject> {
    let obj = await d.store.exports.get(id)
    if (freshAnswer(obj, d.clock().getTime())) return obj!
    const node = nodeToAsk(id, await d.store.nodes.list(), obj)
    let spec: ExportSpec = { ...want, node, generation: (obj?.spec.generation ?? 0) + 1 }
    if (!obj && !(await d.store.exports.create(id, spec))) obj = await d.store.exports.refresh(id)
    if (obj) {
      // Another controller may have asked meanwhile: go past its generation, so ours is new.
      spec = { ...spec, generation: Math.max(spec.generation, obj.spec.generation + 1) }
      await d.store.exports.putSpec(id, spec)
    }
    const out = await waitFor(d.store.exports, id, (o) => (o?.status && o.status.observedGeneration >= spec.generation ? o : undefined), d.realiseTimeoutMs)
    if (!out) {
      throw new CsiError(Code.DEADLINE_EXCEEDED, `node ${node} did not measure ${want.server}:${want.share} within ${d.realiseTimeoutMs} ms; ` +
        'is its node plugin running? The next call asks another node that serves nfs')
    }
    return out
  }

  return async (raw, mountOptions) => {
    const server = parseServer(raw['server'] ?? '', 'parameters[server]')
    const share = checkShare(raw['share'] ?? '', 'parameters[share]')
    const id = exportIdFor(server, share, mountOptions)
    let call = inFlight.get(id)
    if (!call) {
      call = ask(id, { server, share, ...(mountOptions.length > 0 && { mountOptions }) }).finally(() => inFlight.delete(id))
      inFlight.set(id, call)
    }
    const st = (await call).status!
    if (st.code !== undefined) throw new CsiError(codeByName(st.code), `the free space of ${server}:${share}: ${st.message ?? 'the node could not measure it'}`)
    // Every node reaches the export, so the answer is the same for every topology segment; one
    // volume could take all of it (NFS has no per-volume limit).
    const free = st.availableBytes ?? '0'
    return { available_capacity: free, maximum_volume_size: { value: free }, minimum_volume_size: null }
  }
}
