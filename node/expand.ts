// NodeExpandVolume: after the controller has grown an image's file (through the store and the
// realiser), tell the loop device its new size and grow the mounted filesystem, online. Dir
// volumes have nothing to grow on the node (their limit is a quota the realiser sets).
import { statSync } from 'node:fs'
import { aborted, failedPrecondition, invalid } from '../common/errors.js'
import { parseBytes, requireId, requirePath, requireString } from '../common/validate.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import type { NodeDeps } from './deps.js'
import { growFs, mountedFsType } from './fstools.js'
import { belongsTo, locate } from './locate.js'
import { loopDeviceFor, loopDeviceOf } from './loops.js'

export function expandHandlers(d: NodeDeps): Implemented<'Node', 'NodeExpandVolume'> {
  /** `signal` stops the wait for the grow tool (killed); the loop device already knows its size. */
  async function NodeExpandVolume(req: RequestOf<'Node', 'NodeExpandVolume'>, signal?: AbortSignal): Promise<ResponseOf<'Node', 'NodeExpandVolume'>> {
    requireString('volume_id', req.volume_id)
    requireString('volume_path', req.volume_path, 4096)
    const required = parseBytes('capacity_range.required_bytes', req.capacity_range?.required_bytes)
    const id = requireId('volume_id', req.volume_id, 'v')
    const volumePath = requirePath('volume_path', req.volume_path)
    const vol = locate(d, id)
    // Nothing to grow on the node: a dir's limit is its quota, an nfs volume's is not enforced.
    if (vol.kind === 'dir' || vol.kind === 'nfs') return { capacity_bytes: '0' }
    return d.locks.run(`${id}@expand`, `volume ${id}`, async (): Promise<ResponseOf<'Node', 'NodeExpandVolume'>> => {
      const size = BigInt(statSync(vol.path).size)
      if (required > size) throw aborted(`the image of volume ${id} is ${size} bytes, not yet the ${required} asked for; the controller's expansion has not reached the node yet, retry`)
      const at = d.mounter.inspect(volumePath)
      if (!at) throw invalid('volume_path', `${volumePath} does not exist`)
      if (!at.isMountRoot || !belongsTo(d, vol, at, volumePath)) throw failedPrecondition(`${volumePath} is not where volume ${id} is staged or published`)
      const block = at.type !== 'dir'
      // btrfs shows an anonymous device number; then find the device by its backing file (a
      // scan of the loop devices, fine for an expansion).
      const device = loopDeviceOf(block ? at.rdev : at.dev) ?? loopDeviceFor(vol.info)
      if (!device) throw failedPrecondition(`no loop device backs volume ${id} at ${volumePath}`)
      d.mounter.refreshLoopCapacity(device)
      if (!block) {
        const fsType = mountedFsType(volumePath)
        if (!fsType) throw failedPrecondition(`the filesystem at ${volumePath} is not one tscsi can grow`)
        await growFs(fsType, device, volumePath, signal)
      }
      return { capacity_bytes: size.toString() }
    })
  }
  return { NodeExpandVolume }
}
