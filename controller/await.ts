// The controller's bounded wait for the node that holds a volume to act on its latest spec
// (create, delete or expand), and what the node's status says came of it.
import { CsiError, Code, failedPrecondition } from '../common/errors.js'
import type { VolumeSpec, VolumeStatus } from '../common/store/model.js'
import type { VolumeObject } from '../common/store/types.js'
import { waitFor } from '../common/store/wait.js'
import type { ControllerDeps } from './deps.js'

export type Outcome = { obj: VolumeObject } | { err: CsiError } | { gone: true }

/** Waits until the node has acted on the spec's current generation. */
export async function awaitNodeAct(d: ControllerDeps, id: string, what: 'create' | 'delete' | 'expand'): Promise<Outcome> {
  const out = await d.metrics.timeNode(what, () => waitFor<VolumeSpec, VolumeStatus, Outcome>(
    d.store.volumes,
    id,
    (obj) => {
      if (!obj) return { gone: true }
      const s = obj.status
      if (!s || s.observedGeneration < obj.spec.generation) return undefined
      if (s.deleteBlocked && obj.spec.deletionRequestedAt) return { err: failedPrecondition(s.deleteBlocked) }
      if (s.phase === 'Failed') return { err: nodeFailure(obj.spec, codeByName(s.code), s.message ?? 'failed on the node') }
      if (obj.spec.deletionRequestedAt && s.phase !== 'Deleted') return undefined
      return { obj }
    },
    d.realiseTimeoutMs,
  ))
  if (out) return out
  const node = (await d.store.volumes.get(id))?.spec.node ?? 'unknown'
  throw new CsiError(Code.DEADLINE_EXCEEDED, `node ${node} did not ${what} volume ${id} within ${d.realiseTimeoutMs} ms; is its node plugin running? The call can be retried`)
}

/**
 * The error a node's Failed status stands for. Out of space, the message names the pool and the
 * node (the node's own text names only a path), so an operator knows which disk to free or which
 * StorageClass pool to move to.
 */
export function nodeFailure(spec: Pick<VolumeSpec, 'pool' | 'node'>, code: Code, message: string): CsiError {
  if (code !== Code.RESOURCE_EXHAUSTED || message.includes(`pool ${JSON.stringify(spec.pool)}`)) return new CsiError(code, message)
  return new CsiError(code, `pool ${JSON.stringify(spec.pool)} on node ${spec.node} is out of space: ${message}`)
}

/** The gRPC code a node wrote by name into a status; INTERNAL for anything unknown. */
export function codeByName(name: string | undefined): Code {
  const codes = Code as unknown as Record<string, unknown>
  const v = name !== undefined && Object.hasOwn(codes, name) ? codes[name] : undefined
  return typeof v === 'number' ? (v as Code) : Code.INTERNAL
}
