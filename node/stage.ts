// NodeStageVolume / NodeUnstageVolume. A dir volume's directory is bound onto the staging path;
// an image's filesystem is mounted there from a loop device (autoclear: the device lives exactly
// as long as the mount); a block volume's loop device node is bound onto a file inside it. Each
// pod's publish is then a bind of what is staged. Works from the request and the local disk
// alone, so pods keep mounting when the control plane is down.
import { parseCapability, type Capability } from '../common/capability.js'
import { DEFAULT_POOL } from '../common/store/model.js'
import { forgetStaging, mountFailure, noteStaging, planMount, readNote, whereFromContext } from './nfs.js'
import { alreadyExists, failedPrecondition, invalid } from '../common/errors.js'
import { CONTEXT } from '../common/keys.js'
import { checkMap, requireId, requirePath, requireString } from '../common/validate.js'
import { checkSignal } from './abort.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import { checkCapability, checkDirectory, checkOutsideRoot, unmountVolume, volumeKind } from './checks.js'
import type { NodeDeps } from './deps.js'
import { belongsTo, blockStagingFile, findVolume, locate } from './locate.js'
import { loopDeviceOf } from './loops.js'
import { parseBindFlags, parseFsMountFlags } from './mountflags.js'
import { thawBeforeUnmount } from './snapshots.js'

const NO_FLAGS = parseBindFlags('', [], false)

export function stageHandlers(d: NodeDeps): Implemented<'Node', 'NodeStageVolume' | 'NodeUnstageVolume'> {
  /** `signal`: the caller stopped waiting; checked before any effect (a mount in flight is not undone). */
  async function NodeStageVolume(req: RequestOf<'Node', 'NodeStageVolume'>, signal?: AbortSignal): Promise<ResponseOf<'Node', 'NodeStageVolume'>> {
    // validate
    requireString('volume_id', req.volume_id)
    const staging = requirePath('staging_target_path', req.staging_target_path)
    const cap = parseCapability('volume_capability', req.volume_capability)
    checkMap('volume_context', req.volume_context)
    const kind = volumeKind(req.volume_context)
    checkCapability('volume_capability', cap, kind)
    checkOutsideRoot(d, 'staging_target_path', staging)
    const id = requireId('volume_id', req.volume_id, 'v')
    if (kind === 'nfs') return stageNfs(id, staging, cap, req.volume_context, signal)
    // plan: dir binds carry no flags at stage (publish applies them per pod); a filesystem mount
    // takes the capability's options, which are checked here so a bad one fails at stage.
    parseBindFlags('volume_capability.mount.mount_flags', kind === 'dir' ? cap.mountFlags : [], false)
    const fsOpts = parseFsMountFlags('volume_capability.mount.mount_flags', cap.mountFlags, false)
    const ctxFs = req.volume_context?.[CONTEXT.fsType] as string | undefined
    if (ctxFs && cap.fsType && ctxFs !== cap.fsType) {
      throw invalid('volume_capability.mount.fs_type', `the volume holds ${ctxFs}, not ${cap.fsType}`)
    }
    // effects. The lock covers the volume and, as a publish's does, the path: mounting or
    // unmounting here now awaits the kernel, and a publish or unpublish naming this same path
    // meanwhile would see a mount half made or half gone.
    return d.locks.run([id, `${id}@${staging}`], `volume ${id}`, async (): Promise<ResponseOf<'Node', 'NodeStageVolume'>> => {
      checkSignal(signal, `NodeStageVolume of ${id}`)
      const vol = locate(d, id)
      const st = d.mounter.inspect(staging)
      if (!st) throw failedPrecondition(`staging_target_path ${staging} does not exist; the CO creates it before NodeStageVolume`)
      checkDirectory('staging_target_path', staging, st)
      if (vol.kind === 'dir' && cap.accessType === 'block') throw invalid('volume_capability', `volume ${id} is a directory; it cannot be used as a block device`)
      if (cap.accessType === 'block') {
        const file = blockStagingFile(staging)
        let fi = d.mounter.inspect(file)
        if (fi?.isMountRoot) {
          if (belongsTo(d, vol, fi, file)) return ok(file)
          throw alreadyExists(`staging_target_path ${staging} already holds a different device`)
        }
        d.staged.note(vol, staging)
        const device = await d.mounter.attachImage(vol.path)
        const created = !fi
        try {
          if (!fi) {
            d.mounter.createFile(file)
            fi = d.mounter.inspect(file)!
          }
          d.mounter.bind(device, file, NO_FLAGS, { target: fi })
        } catch (e) {
          await d.mounter.detachImage(device, vol.path)
          if (created) d.mounter.removeFile(file)
          d.staged.forget(vol, staging)
          throw e
        }
        return ok(file)
      }
      if (st.isMountRoot) {
        if (belongsTo(d, vol, st, staging)) return ok(staging)
        throw alreadyExists(`staging_target_path ${staging} already has a different mount on it`)
      }
      d.staged.note(vol, staging)
      // Into the index before the mount exists: while mount(2) is in the kernel other RPCs run,
      // and a CO path inside staging must already count as inside a volume (checkOutsideRoot).
      // An entry is a hint callers confirm with statx, so one that turns out false costs nothing.
      d.index.add(id, staging)
      try {
        if (vol.kind === 'dir') d.mounter.bind(vol.path, staging, NO_FLAGS, { target: st })
        else await d.mounter.mountImage(vol.path, staging, ctxFs || cap.fsType || 'ext4', fsOpts.bits, fsOpts.data, { target: st })
      } catch (e) {
        d.index.remove(id, staging)
        d.staged.forget(vol, staging)
        throw e
      }
      return ok(staging)
    })

    /**
     * An nfs volume: the export's directory mounted on staging by mount(2), the name resolved
     * here and the options planned (and refused by name) by node/nfs-options.ts.
     */
    async function stageNfs(id: string, staging: string, cap: Capability, ctx: Record<string, string> | undefined, signal?: AbortSignal): Promise<object> {
      // plan: where, from the context (checked as if it were hostile), and the mount itself.
      const where = whereFromContext(ctx)
      const plan = await planMount(where, where.subDir, cap.mountFlags)
      // effects
      return d.locks.run([id, `${id}@${staging}`], `volume ${id}`, async (): Promise<ResponseOf<'Node', 'NodeStageVolume'>> => {
        checkSignal(signal, `NodeStageVolume of ${id}`)
        const st = d.mounter.inspect(staging)
        if (!st) throw failedPrecondition(`staging_target_path ${staging} does not exist; the CO creates it before NodeStageVolume`)
        checkDirectory('staging_target_path', staging, st)
        if (st.isMountRoot) {
          if (d.index.paths(id).includes(staging) && readNote(d.layout, id)?.source === plan.source) return {}
          throw alreadyExists(`staging_target_path ${staging} already has a different mount on it`)
        }
        // The note first: a plugin killed while mount(2) is in the kernel finds the mount by it.
        await noteStaging(d.layout, id, where, plan.source, staging)
        const vol = { id, pool: DEFAULT_POOL }
        d.staged.note(vol, staging)
        d.index.add(id, staging)
        try {
          await d.mounter.mountNfs(plan.source, staging, plan.flags, plan.data, { target: st })
        } catch (e) {
          d.index.remove(id, staging)
          d.staged.forget(vol, staging)
          await forgetStaging(d.layout, id, staging)
          throw mountFailure(e, plan)
        }
        return {}
      })
    }

    function ok(mountPoint: string): object {
      d.index.add(requireId('volume_id', req.volume_id, 'v'), mountPoint)
      return {}
    }
  }

  async function NodeUnstageVolume(req: RequestOf<'Node', 'NodeUnstageVolume'>): Promise<ResponseOf<'Node', 'NodeUnstageVolume'>> {
    requireString('volume_id', req.volume_id)
    const staging = requirePath('staging_target_path', req.staging_target_path)
    checkOutsideRoot(d, 'staging_target_path', staging)
    const id = requireId('volume_id', req.volume_id, 'v')
    return d.locks.run([id, `${id}@${staging}`], `volume ${id}`, async (): Promise<ResponseOf<'Node', 'NodeUnstageVolume'>> => {
      const st = d.mounter.inspect(staging)
      const vol = findVolume(d, id)
      if (!st) {
        d.index.remove(id, staging)
        if (vol) d.staged.forget(vol, staging)
        return {}
      }
      if (st.type === 'symlink') throw failedPrecondition(`staging_target_path ${staging} is a symbolic link; the driver never follows links at CO paths`)
      // A block volume: its device node bound inside the staging directory, and the loop device.
      // Only a raw image is staged as a device node inside a staging folder that is itself not a
      // mount; anywhere else `device` could be a pod's file and is none of our business.
      const file = blockStagingFile(staging)
      const fi = vol?.kind === 'image' && !st.isMountRoot ? d.mounter.inspect(file) : undefined
      if (fi && fi.type !== 'dir') {
        const device = fi.isMountRoot ? loopDeviceOf(fi.rdev) : undefined
        await unmountVolume(d, id, vol, 'staging_target_path', file, fi)
        if (device) await d.mounter.detachImage(device, vol!.path)
        d.mounter.removeFile(file)
      }
      // The staging directory belongs to the CO (it created it); only the mount is ours. An
      // image's loop device goes with its last mount (autoclear), unless the filesystem is frozen.
      if (vol?.kind === 'image' && st.isMountRoot && st.type === 'dir' && belongsTo(d, vol, st, staging)) await thawBeforeUnmount(d, id, staging)
      // An image's filesystem loses its last mount here: its write-back runs off the event loop,
      // as an NFS unmount's does (it flushes to the server).
      await unmountVolume(d, id, vol, 'staging_target_path', staging, d.mounter.inspect(staging)!, vol !== undefined && vol.kind !== 'dir')
      if (vol) d.staged.forget(vol, staging)
      if (vol?.kind === 'nfs') await forgetStaging(d.layout, id, staging)
      return {}
    })
  }

  return { NodeStageVolume, NodeUnstageVolume }
}
