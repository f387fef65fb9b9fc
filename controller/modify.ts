// ControllerModifyVolume (VolumeAttributesClass): changes the parameters that can change on a
// live volume. The node re-applies the volume's settings on the new generation: a new inode
// limit goes into the quota; a new delete policy is what a later DeleteVolume follows.
import { aborted, invalid, notFound } from '../common/errors.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import { checkMap, requireId, requireString } from '../common/validate.js'
import { awaitNodeAct } from './await.js'
import type { ControllerDeps } from './deps.js'
import { PARAMETERS } from './request.js'

/** Parameters a VolumeAttributesClass may set, at creation or later. */
export const MUTABLE_PARAMETERS = ['onDelete', 'quotaInodes'] as const

/** Validates mutable_parameters: known, mutable, well-formed (INVALID_ARGUMENT naming the key). */
export function parseMutable(raw: unknown): Record<string, string> {
  const m = checkMap('mutable_parameters', raw)
  for (const [k, v] of Object.entries(m)) {
    if (!(MUTABLE_PARAMETERS as readonly string[]).includes(k)) {
      throw invalid(`mutable_parameters[${k}]`, Object.hasOwn(PARAMETERS, k)
        ? 'cannot change on an existing volume'
        : `unknown parameter; mutable: ${MUTABLE_PARAMETERS.join(', ')}`)
    }
    const why = PARAMETERS[k]!.check(v)
    if (why) throw invalid(`mutable_parameters[${k}]`, why)
  }
  return m
}

export function modifyHandlers(d: ControllerDeps): Implemented<'Controller', 'ControllerModifyVolume'> {
  async function ControllerModifyVolume(req: RequestOf<'Controller', 'ControllerModifyVolume'>): Promise<ResponseOf<'Controller', 'ControllerModifyVolume'>> {
    requireString('volume_id', req.volume_id)
    const changes = parseMutable(req.mutable_parameters)
    const id = requireId('volume_id', req.volume_id, 'v')
    return d.locks.run(id, `volume ${id}`, async (): Promise<ResponseOf<'Controller', 'ControllerModifyVolume'>> => {
      const obj = await d.store.volumes.refresh(id)
      if (!obj || obj.spec.deletionRequestedAt) throw notFound(`volume ${id} does not exist`)
      const s = obj.spec
      if (changes['quotaInodes'] !== undefined && (s.kind !== 'dir' || (s.parameters['quota'] ?? 'auto') === 'off')) {
        throw invalid('mutable_parameters[quotaInodes]', `volume ${id} has no quota to hold an inode limit`)
      }
      const parameters = { ...s.parameters, ...changes }
      if (Object.entries(changes).every(([k, v]) => s.parameters[k] === v)) return {}
      await d.store.volumes.putSpec(id, { ...s, parameters, generation: s.generation + 1 })
      const out = await awaitNodeAct(d, id, 'create')
      if ('err' in out) throw out.err
      if ('gone' in out) throw aborted(`volume ${id} was deleted while being modified`)
      return {}
    })
  }
  return { ControllerModifyVolume }
}
