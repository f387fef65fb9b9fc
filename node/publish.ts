// NodePublishVolume / NodeUnpublishVolume: one bind of the staged volume per pod, with the
// pod's flags (readonly, nosuid, ...). The target directory is the driver's to create and to
// remove, as the spec says; nothing else at a CO path is ever removed.
import { isReadOnlyMode, parseCapability } from '../common/capability.js'
import { alreadyExists, failedPrecondition, invalid } from '../common/errors.js'
import { ephemeralIdFor } from '../common/ids.js'
import { checkMap, ownIdOrUndefined, requireId, requirePath, requireString } from '../common/validate.js'
import { isErrno } from '../native/index.js'
import { checkCapability, checkDirectory, checkOutsideRoot, unmountVolume, volumeKind } from './checks.js'
import { isEphemeral, planEphemeral, publishEphemeral, unpublishEphemeral } from './ephemeral.js'
import { findVolume, locate, stagedSource } from './locate.js'
import type { Implemented, RequestOf, ResponseOf } from '../common/protocol.js'
import type { NodeDeps } from './deps.js'
import { sameObject, type PathInfo } from './mounter.js'
import { flagsMismatch, parseBindFlags } from './mountflags.js'

export function publishHandlers(d: NodeDeps): Implemented<'Node', 'NodePublishVolume' | 'NodeUnpublishVolume'> {
  /**
   * `signal`: the caller stopped waiting. Only an ephemeral volume's creation (mkfs of its image)
   * waits on work long enough to heed it; a publish of a staged volume is one bind.
   */
  async function NodePublishVolume(req: RequestOf<'Node', 'NodePublishVolume'>, signal?: AbortSignal): Promise<ResponseOf<'Node', 'NodePublishVolume'>> {
    // validate
    requireString('volume_id', req.volume_id)
    const target = requirePath('target_path', req.target_path)
    const cap = parseCapability('volume_capability', req.volume_capability)
    checkMap('volume_context', req.volume_context)
    if (isEphemeral(req.volume_context)) {
      checkCapability('volume_capability', cap, 'dir')
      checkOutsideRoot(d, 'target_path', target)
      const plan = planEphemeral(checkMap('volume_context', req.volume_context))
      const flags = parseBindFlags('volume_capability.mount.mount_flags', cap.mountFlags, Boolean(req.readonly) || isReadOnlyMode(cap.mode))
      const eid = ephemeralIdFor(req.volume_id)
      return d.locks.run(`${eid}@${target}`, `ephemeral volume at ${target}`, () => publishEphemeral(d, eid, plan, target, cap, flags, signal))
    }
    checkCapability('volume_capability', cap, volumeKind(req.volume_context))
    const block = cap.accessType === 'block'
    if (!req.staging_target_path) {
      throw failedPrecondition('staging_target_path is empty, but this driver stages volumes (STAGE_UNSTAGE): call NodeStageVolume first')
    }
    const staging = requirePath('staging_target_path', req.staging_target_path)
    if (target === staging || target.startsWith(staging + '/') || staging.startsWith(target + '/')) {
      throw invalid('target_path', `${target} overlaps staging_target_path ${staging}`)
    }
    checkOutsideRoot(d, 'target_path', target)
    checkOutsideRoot(d, 'staging_target_path', staging)
    // plan. An nfs volume's mount_flags are the export's mount options, applied at stage; a bind
    // keeps the staged mount's VFS flags, so only readonly is the pod's own. Which kind it is
    // is decided by what the node finds, not by the context; other flags are checked up front.
    const readonly = Boolean(req.readonly) || isReadOnlyMode(cap.mode)
    const flagsFor = (nfs: boolean) => parseBindFlags('volume_capability.mount.mount_flags', nfs ? [] : cap.mountFlags, readonly)
    if (volumeKind(req.volume_context) !== 'nfs') flagsFor(false)
    const id = requireId('volume_id', req.volume_id, 'v')
    // effects
    return d.locks.run(`${id}@${target}`, `volume ${id} at ${target}`, (): ResponseOf<'Node', 'NodePublishVolume'> => {
      const vol = locate(d, id)
      const flags = flagsFor(vol.kind === 'nfs')
      const src = stagedSource(d, vol, staging, block)
      if (!src) throw failedPrecondition(`volume ${id} is not staged at ${staging}${block ? ' as a block device' : ''}; call NodeStageVolume first`)
      let tgt = d.mounter.inspect(target)
      if (tgt) {
        if (block) checkFileTarget(target, tgt)
        else checkDirectory('target_path', target, tgt)
        if (tgt.isMountRoot) {
          if (!sameObject(tgt, src.info)) throw alreadyExists(`target_path ${target} already has a different volume mounted`)
          const why = block ? undefined : flagsMismatch(flags, d.mounter.statfs(target).flags)
          if (why) throw alreadyExists(`volume ${id} is already published at ${target}, but ${why}`)
          d.index.add(id, target)
          return {}
        }
      }
      if (cap.mode === 'SINGLE_NODE_SINGLE_WRITER') {
        const others = d.index.paths(id).filter((p) => p !== target && p !== staging && p !== src.source && isMountOf(p, src.info))
        if (others.length > 0) {
          throw failedPrecondition(`volume ${id} has access mode SINGLE_NODE_SINGLE_WRITER and is already published at ${others.join(', ')}`)
        }
      }
      let created = false
      if (!tgt) {
        try {
          if (block) d.mounter.createFile(target)
          else d.mounter.mkdir(target)
        } catch (e) {
          if (isErrno(e, 'ENOENT')) throw failedPrecondition(`the parent directory of target_path ${target} does not exist`)
          throw e
        }
        created = true
        tgt = d.mounter.inspect(target)!
      }
      try {
        d.mounter.bind(src.source, target, flags, { target: tgt })
      } catch (e) {
        // Leave nothing behind that a retry or an unpublish would have to explain.
        if (created) block ? d.mounter.removeFile(target) : d.mounter.rmdir(target)
        throw e
      }
      d.index.add(id, target)
      return {}
    })
  }

  /** A block volume's target is a file the driver creates (or an existing regular file). */
  function checkFileTarget(target: string, info: PathInfo): void {
    if (info.type === 'symlink') throw failedPrecondition(`target_path ${target} is a symbolic link; the driver never follows links at CO paths`)
    if (info.type === 'dir') throw failedPrecondition(`target_path ${target} is a directory; a block volume is published onto a file`)
  }

  function isMountOf(p: string, vol: { dev: string; ino: bigint }): boolean {
    const info = d.mounter.inspect(p)
    return Boolean(info?.isMountRoot && info.dev === vol.dev && info.ino === vol.ino)
  }

  async function NodeUnpublishVolume(req: RequestOf<'Node', 'NodeUnpublishVolume'>): Promise<ResponseOf<'Node', 'NodeUnpublishVolume'>> {
    requireString('volume_id', req.volume_id)
    const target = requirePath('target_path', req.target_path)
    checkOutsideRoot(d, 'target_path', target)
    // kubelet names an ephemeral inline volume itself; ours are v-… and never collide with it,
    // so any other id is an inline volume (or what is left of one: the call is idempotent).
    if (!ownIdOrUndefined('volume_id', req.volume_id, 'v')) {
      const eid = ephemeralIdFor(req.volume_id)
      return d.locks.run(`${eid}@${target}`, `ephemeral volume at ${target}`, () => unpublishEphemeral(d, eid, target))
    }
    const id = requireId('volume_id', req.volume_id, 'v')
    return d.locks.run(`${id}@${target}`, `volume ${id} at ${target}`, async (): Promise<ResponseOf<'Node', 'NodeUnpublishVolume'>> => {
      const tgt = d.mounter.inspect(target)
      if (!tgt) {
        d.index.remove(id, target)
        return {}
      }
      const vol = findVolume(d, id)
      if (vol && d.staged.isStaging(vol, target)) {
        throw failedPrecondition(`target_path ${target} is where volume ${id} is staged, not a publication; NodeUnstageVolume takes that mount down`)
      }
      if (tgt.type !== 'dir') {
        // A block volume's target: a file we created, with the device node bound on it.
        if (tgt.type === 'symlink') throw failedPrecondition(`target_path ${target} is a symbolic link; the driver never follows links at CO paths`)
        await unmountVolume(d, id, vol, 'target_path', target, tgt)
        d.mounter.removeFile(target)
        return {}
      }
      await unmountVolume(d, id, vol, 'target_path', target, tgt)
      try {
        d.mounter.rmdir(target)
      } catch (e) {
        if (isErrno(e, 'ENOENT')) return {}
        if (isErrno(e, 'ENOTEMPTY')) throw failedPrecondition(`target_path ${target} is not empty after unmounting; the driver does not delete data it did not create`)
        throw e
      }
      return {}
    })
  }

  return { NodePublishVolume, NodeUnpublishVolume }
}
