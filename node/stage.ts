// NodeStageVolume / NodeUnstageVolume for directory volumes: the volume's directory is bound
// once onto the staging path; every pod's publish is a bind of that. Works from the request and
// the local disk alone, so pods keep mounting when the control plane is down.
import { parseCapability } from '../common/capability.js'
import { alreadyExists, failedPrecondition } from '../common/errors.js'
import type { ServiceHandlers } from '../common/grpc.js'
import { requireId, requirePath, requireString } from '../common/validate.js'
import { checkCapability, checkDirectory, checkOutsideRoot, unmountVolume, volumeDir, volumeKind } from './checks.js'
import type { NodeDeps } from './deps.js'
import { sameObject } from './mounter.js'
import { parseBindFlags } from './mountflags.js'

export function stageHandlers(d: NodeDeps): ServiceHandlers {
  async function NodeStageVolume(req: any): Promise<unknown> {
    // validate
    requireString('volume_id', req.volume_id)
    const staging = requirePath('staging_target_path', req.staging_target_path)
    const cap = parseCapability('volume_capability', req.volume_capability)
    checkCapability('volume_capability', cap)
    volumeKind(req.volume_context)
    checkOutsideRoot(d, 'staging_target_path', staging)
    const id = requireId('volume_id', req.volume_id, 'v')
    // Checked here so a bad option fails at stage, not later at publish.
    parseBindFlags('volume_capability.mount.mount_flags', cap.mountFlags, false)
    // plan: the staging bind carries no flags; publish applies them per pod.
    const flags = parseBindFlags('volume_capability.mount.mount_flags', [], false)
    // effects
    return d.locks.run(id, `volume ${id}`, () => {
      const vol = volumeDir(d, id)
      const st = d.mounter.inspect(staging)
      if (!st) throw failedPrecondition(`staging_target_path ${staging} does not exist; the CO creates it before NodeStageVolume`)
      checkDirectory('staging_target_path', staging, st)
      if (st.isMountRoot) {
        if (sameObject(st, vol.info)) {
          d.index.add(id, staging)
          return {}
        }
        throw alreadyExists(`staging_target_path ${staging} already has a different mount on it`)
      }
      d.mounter.bind(vol.path, staging, flags, { target: st })
      d.index.add(id, staging)
      return {}
    })
  }

  async function NodeUnstageVolume(req: any): Promise<unknown> {
    requireString('volume_id', req.volume_id)
    const staging = requirePath('staging_target_path', req.staging_target_path)
    checkOutsideRoot(d, 'staging_target_path', staging)
    const id = requireId('volume_id', req.volume_id, 'v')
    return d.locks.run(id, `volume ${id}`, () => {
      const st = d.mounter.inspect(staging)
      if (!st) {
        d.index.remove(id, staging)
        return {}
      }
      if (st.type === 'symlink') throw failedPrecondition(`staging_target_path ${staging} is a symbolic link; the driver never follows links at CO paths`)
      // The staging directory belongs to the CO (it created it); only the mount is ours.
      unmountVolume(d, id, 'staging_target_path', staging, st)
      return {}
    })
  }

  return { NodeStageVolume, NodeUnstageVolume }
}
