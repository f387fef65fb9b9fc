// CSI ephemeral inline volumes (a pod's `csi:` volume with volumeAttributes): made at
// NodePublishVolume from the attributes, removed at NodeUnpublishVolume, never seen by the
// controller or the store. kubelet's volume id is an arbitrary string, so the data lives under
// an id of ours derived from it (common/ids.ts ephemeralIdFor), in the default pool.
import type { VolumeKind } from '../common/store/model.js'
import { promises as fsp } from 'node:fs'
import type { Capability } from '../common/capability.js'
import { alreadyExists, failedPrecondition, invalid } from '../common/errors.js'
import { CO_KEY_PREFIX, EPHEMERAL_KEY } from '../common/keys.js'
import { GiB, KiB, MiB, TiB, wholeMiB } from '../common/sizes.js'
import { FS_TYPES } from '../common/store/model.js'
import { isErrno } from '../native/index.js'
import { checkDirectory, unmountVolume } from './checks.js'
import { ensureImage, ensureVolumeDir, removeVolumeDir } from './datadir.js'
import type { NodeDeps } from './deps.js'
import { belongsTo, findVolume } from './locate.js'
import type { BindFlags } from './mountflags.js'
import { parseFsMountFlags } from './mountflags.js'

export function isEphemeral(ctx: Record<string, string> | undefined): boolean {
  return ctx?.[EPHEMERAL_KEY] === 'true'
}

const UNITS: Record<string, bigint> = { '': 1n, k: 1000n, M: 1000n ** 2n, G: 1000n ** 3n, T: 1000n ** 4n, Ki: KiB, Mi: MiB, Gi: GiB, Ti: TiB }

/** A Kubernetes quantity as bytes: "64Mi", "1Gi", "500M", "1048576". */
export function parseQuantity(field: string, v: string): bigint {
  const m = /^([0-9]{1,15})(k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(v)
  if (!m) throw invalid(field, `${JSON.stringify(v)} is not a size such as 64Mi, 1Gi or a number of bytes`)
  return BigInt(m[1]!) * UNITS[m[2] ?? '']!
}

export interface EphemeralPlan {
  kind: VolumeKind
  size: bigint
  fsType: string
}

/** Reads the volume attributes: kind (dir|image), size (images; default 1Gi), fsType (ext4). */
export function planEphemeral(ctx: Record<string, string>): EphemeralPlan {
  for (const k of Object.keys(ctx)) {
    if (!k.startsWith(CO_KEY_PREFIX) && !['kind', 'size', 'fsType'].includes(k)) {
      throw invalid(`volume_context[${k}]`, 'unknown volume attribute; an ephemeral volume takes kind, size and fsType')
    }
  }
  const kind = ctx['kind'] ?? 'dir'
  if (kind !== 'dir' && kind !== 'image') throw invalid('volume_context[kind]', `${JSON.stringify(kind)} is not dir or image`)
  const fsType = ctx['fsType'] ?? 'ext4'
  if (!(FS_TYPES as readonly string[]).includes(fsType)) throw invalid('volume_context[fsType]', `${JSON.stringify(fsType)} is not one of ${FS_TYPES.join(', ')}`)
  const size = ctx['size'] === undefined ? GiB : parseQuantity('volume_context[size]', ctx['size'])
  return { kind, size: wholeMiB(size), fsType }
}

/** `signal` stops the wait for the image's creation (mkfs); what was made is removed again. */
export async function publishEphemeral(d: NodeDeps, eid: string, plan: EphemeralPlan, target: string, cap: Capability, flags: BindFlags, signal?: AbortSignal): Promise<object> {
  if (cap.accessType === 'block') throw invalid('volume_capability', 'ephemeral inline volumes are filesystems; block access is not offered')
  const existing = findVolume(d, eid)
  let tgt = d.mounter.inspect(target)
  if (tgt) {
    checkDirectory('target_path', target, tgt)
    if (tgt.isMountRoot) {
      if (existing && belongsTo(d, existing, tgt, target)) return {}
      throw alreadyExists(`target_path ${target} already has a different volume mounted`)
    }
  }
  const dir = d.layout.volumeDir(eid)
  const image = d.layout.imagePath(eid)
  const created = !tgt
  try {
    if (plan.kind === 'dir') await ensureVolumeDir(dir)
    else await ensureImage(image, plan.size, plan.fsType, signal)
    if (!tgt) {
      try {
        d.mounter.mkdir(target)
      } catch (e) {
        if (isErrno(e, 'ENOENT')) throw failedPrecondition(`the parent directory of target_path ${target} does not exist`)
        throw e
      }
      tgt = d.mounter.inspect(target)!
    }
    // Indexed before the mount, as NodeStageVolume does: mountImage awaits the kernel.
    d.index.add(eid, target)
    if (plan.kind === 'dir') d.mounter.bind(dir, target, flags, { target: tgt })
    else {
      const fs = parseFsMountFlags('volume_capability.mount.mount_flags', cap.mountFlags, flags.readonly)
      await d.mounter.mountImage(image, target, plan.fsType, fs.bits, fs.data, { target: tgt })
    }
  } catch (e) {
    d.index.remove(eid, target)
    // Nothing half-made stays behind: no target, no data.
    if (created && d.mounter.inspect(target)?.isMountRoot === false) d.mounter.rmdir(target)
    await removeData(d, eid)
    throw e
  }
  d.index.add(eid, target)
  return {}
}

/** Unmounts and removes an ephemeral volume; idempotent (nothing there is fine). */
export async function unpublishEphemeral(d: NodeDeps, eid: string, target: string): Promise<object> {
  const tgt = d.mounter.inspect(target)
  if (tgt) {
    checkDirectory('target_path', target, tgt)
    const vol = findVolume(d, eid)
    await unmountVolume(d, eid, vol, 'target_path', target, tgt, vol?.kind === 'image')
    try {
      d.mounter.rmdir(target)
    } catch (e) {
      if (isErrno(e, 'ENOTEMPTY')) throw failedPrecondition(`target_path ${target} is not empty and holds no volume of ours; not removing it`)
      if (!isErrno(e, 'ENOENT')) throw e
    }
  }
  await removeData(d, eid)
  return {}
}

async function removeData(d: NodeDeps, eid: string): Promise<void> {
  await removeVolumeDir(d.layout.volumeDir(eid))
  await fsp.rm(d.layout.imagePath(eid), { force: true })
}
