// The node plugin knows its volumes' loop devices by their backing file's identity (st_dev and
// inode), not by the path sysfs prints for it. That text is the path as seen from the root and
// mounts of the process that attached the device. Once those mounts are gone (the node plugin's
// container restarted) or under any other view of the data root it names the same image
// differently, and a plugin comparing text no longer knew its own volumes: it refused to
// unpublish and unstage them and leaked their loop devices (found by a real cluster's e2e).
//
// Here volumes are attached through one view of the data root, a bind mount of it, which is then
// lazily unmounted, as a dead container's mounts are. The handlers then run with a layout that
// names the data root where it is, as the restarted plugin's does.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, realpathSync, statfsSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { status } from '@grpc/grpc-js'
import { silentLogger } from '../common/log.js'
import type { Store } from '../common/store/types.js'
import { volumeIdFor } from '../common/ids.js'
import { blockDeviceSize, loopAttach, loopBackingFile, loopBackingId, MNT, MS, mount, readMountInfo, statx, umount2 } from '../native/index.js'
import { nodeDeps, type NodeDeps } from '../node/deps.js'
import { expandHandlers } from '../node/expand.js'
import { infoHandlers } from '../node/info.js'
import { Layout } from '../node/layout.js'
import { detachOrphanLoops, imageMounts } from '../node/loops.js'
import { nativeMounter } from '../node/mounter.js'
import { OrphanWatch } from '../node/orphans.js'
import { publishHandlers } from '../node/publish.js'
import { stageHandlers } from '../node/stage.js'
import { blockCap, handler, mountCap, rejectsCsi, type TT } from './helpers/csi.js'
import { detachLoopsBacking, loopsBacking, unmountQuietly } from './helpers/loopfs.js'

const MiB = 1 << 20
const hasMkfs = (fs: string): boolean => spawnSync('sh', ['-c', `command -v mkfs.${fs}`]).status === 0
const skip = process.getuid?.() !== 0 ? 'loop devices and mounts need root' : !hasMkfs('ext4') ? 'mkfs.ext4 missing' : false

interface Plugin {
  d: NodeDeps
  call(name: string, req: Record<string, unknown>): Promise<any>
}

function plugin(dataRoot: string): Plugin {
  const d = nodeDeps({ nodeId: 'node-a', maxVolumes: 0, layout: new Layout(dataRoot), mounter: nativeMounter({ scratchDir: path.join(dataRoot, '..', 'bind-scratch') }), log: silentLogger() })
  const h = { ...stageHandlers(d), ...publishHandlers(d), ...infoHandlers(d), ...expandHandlers(d) }
  return { d, call: (name, req) => handler(h, name)(req) }
}

interface Views {
  dir: string
  /** The plugin that attached: its data root is a bind mount of the real one. */
  before: Plugin
  /** The plugin after the restart: the data root where it really is. */
  now: Plugin
  /** An image volume's file in the data root, formatted with fsType unless that is ''. */
  image(name: string, bytes: number, fsType: string): { id: string; file: string }
  /** A staging directory the CO made, outside the data root. */
  staging(name: string): string
  /** A pod's target path (not made yet: publish makes it), outside the data root. */
  target(name: string): string
  /** Lazily unmounts the first view, as the mounts of a dead container go. */
  forget(): void
}

function views(t: TT): Views {
  const mounts: string[] = []
  const files: { dev: string; ino: bigint }[] = []
  // Registered before the folder exists: tap removes it afterwards, never through a live mount.
  t.teardown(() => {
    for (const m of mounts.reverse()) unmountQuietly(m)
    detachLoopsBacking(files)
  })
  const dir = realpathSync(t.testdir({ data: { images: {}, volumes: {} }, view: {}, co: {} }))
  const real = path.join(dir, 'data')
  const view = path.join(dir, 'view')
  mount(real, view, null, MS.BIND, null)
  mounts.push(view)
  return {
    dir,
    before: plugin(view),
    now: plugin(real),
    image(name, bytes, fsType) {
      const id = volumeIdFor(name)
      const file = path.join(real, 'images', `${id}.img`)
      writeFileSync(file, '')
      truncateSync(file, bytes)
      if (fsType !== '') {
        const fs = fsType
        const r = spawnSync(`mkfs.${fs}`, ['-q', ...(fs === 'ext4' ? ['-F'] : ['-f']), file], { encoding: 'utf8' })
        if (r.status !== 0) throw new Error(`mkfs.${fs}: ${r.stderr}`)
      }
      const st = statx(file)
      files.push({ dev: st.dev, ino: st.ino })
      return { id, file }
    },
    staging(name) {
      const p = path.join(dir, 'co', name)
      mkdirSync(p)
      // A filesystem's mount here, or a block volume's device node bound on a file in it.
      mounts.push(p, path.join(p, 'device'))
      return p
    },
    target(name) {
      mkdirSync(path.join(dir, 'co', name))
      const p = path.join(dir, 'co', name, 'target')
      mounts.push(p)
      return p
    },
    forget() {
      umount2(view, MNT.DETACH)
    },
  }
}

const ctx = (fsType?: string) => ({ 'tscsi.dev/kind': 'image', ...(fsType && { 'tscsi.dev/fsType': fsType }) })

t.test('volumes staged through a view of the data root that is gone are still the plugin\'s: publish, stats, expand, unpublish, unstage', { skip }, async (t) => {
  const v = views(t)
  const fs = v.image('fs', 32 * MiB, 'ext4')
  const blk = v.image('blk', 16 * MiB, '')
  const vols = [
    { ...fs, cap: mountCap(), context: ctx('ext4'), staging: v.staging('fs-staging'), pods: [v.target('fs-pod1'), v.target('fs-pod2')] },
    { ...blk, cap: blockCap(), context: ctx(), staging: v.staging('blk-staging'), pods: [v.target('blk-pod1'), v.target('blk-pod2')] },
  ]
  const req = (x: (typeof vols)[number], target?: string) =>
    ({ volume_id: x.id, staging_target_path: x.staging, volume_capability: x.cap, volume_context: x.context, ...(target && { target_path: target }) })
  for (const x of vols) {
    await v.before.call('NodeStageVolume', req(x))
    await v.before.call('NodePublishVolume', req(x, x.pods[0]))
  }
  const device = (x: (typeof vols)[number]) => loopsBacking([statx(x.file)])
  const devices = vols.map((x) => device(x))
  t.same(devices.map((d) => d.length), [1, 1], 'each volume has its loop device')
  v.forget()
  for (const [i, x] of vols.entries()) {
    t.not(loopBackingFile(devices[i]![0]!), x.file, `sysfs no longer names ${path.basename(x.file)} by the path the plugin uses (${loopBackingFile(devices[i]![0]!)})`)
  }

  for (const x of vols) {
    await v.now.call('NodePublishVolume', req(x, x.pods[1]))
    t.pass(`${x.id}: a new pod's publish finds the staged volume`)
    const stats = await v.now.call('NodeGetVolumeStats', { volume_id: x.id, volume_path: x.pods[0] })
    t.equal(stats.volume_condition.abnormal, false, `${x.id}: the published volume is healthy`)
  }
  truncateSync(blk.file, 24 * MiB)
  await v.now.call('NodeExpandVolume', { volume_id: blk.id, volume_path: vols[1]!.pods[1], capacity_range: { required_bytes: String(24 * MiB) } })
  t.equal(blockDeviceSize(vols[1]!.pods[1]!), BigInt(24 * MiB), 'the block volume grew')

  for (const x of vols) {
    for (const p of x.pods) await v.now.call('NodeUnpublishVolume', { volume_id: x.id, target_path: p })
    await v.now.call('NodeUnstageVolume', { volume_id: x.id, staging_target_path: x.staging })
    t.same(device(x), [], `${x.id}: unpublished and unstaged, its loop device is gone`)
  }
})

t.test('a filesystem on a device of ours whose mounts predate the restart: indexed, grown, unmounted (btrfs, no device number)', { skip: skip || (!hasMkfs('btrfs') && 'mkfs.btrfs missing') }, async (t) => {
  const v = views(t)
  const bt = v.image('bt', 128 * MiB, 'btrfs')
  const staging = v.staging('bt-staging')
  const pod = v.target('bt-pod')
  const base = { volume_id: bt.id, staging_target_path: staging, volume_capability: mountCap('SINGLE_NODE_WRITER', [], 'btrfs'), volume_context: ctx('btrfs') }
  await v.before.call('NodeStageVolume', base)
  await v.before.call('NodePublishVolume', { ...base, target_path: pod })
  v.forget()
  // As node/main.ts does at start-up: btrfs shows an anonymous device number, so the index,
  // rebuilt from the mount table and the loop devices, is what proves these mounts are bt's.
  v.now.d.index.replaceAll(imageMounts(readMountInfo(), v.now.d.layout))
  t.same(v.now.d.index.paths(bt.id).sort(), [pod, staging].sort(), 'both mounts are indexed as the volume\'s')
  truncateSync(bt.file, 256 * MiB)
  await v.now.call('NodeExpandVolume', { volume_id: bt.id, volume_path: pod, capacity_range: { required_bytes: String(256 * MiB) } })
  const sf = statfsSync(pod)
  t.ok(sf.blocks * sf.bsize > 200 * MiB, `the expansion found the loop device and grew the filesystem (${Math.round((sf.blocks * sf.bsize) / MiB)} MiB)`)
  await v.now.call('NodeUnpublishVolume', { volume_id: bt.id, target_path: pod })
  await v.now.call('NodeUnstageVolume', { volume_id: bt.id, staging_target_path: staging })
  t.same(loopsBacking([statx(bt.file)]), [], 'unstaged: its loop device is gone')
})

t.test('start-up: a device of ours no mount explains is detached, others are left alone', { skip }, async (t) => {
  const v = views(t)
  const used = v.image('used', 32 * MiB, 'ext4')
  const orphan = v.image('orphan', 8 * MiB, '')
  const staging = v.staging('used-staging')
  await v.before.call('NodeStageVolume', { volume_id: used.id, staging_target_path: staging, volume_capability: mountCap(), volume_context: ctx('ext4') })
  // What a plugin killed between attaching a block volume's device and binding it leaves.
  const left = loopAttach(path.join(v.dir, 'view/images', path.basename(orphan.file))).device
  // Not ours: an image-like file outside the pools.
  const foreignFile = path.join(v.dir, 'co', path.basename(orphan.file))
  writeFileSync(foreignFile, Buffer.alloc(MiB))
  const foreign = loopAttach(foreignFile).device
  t.teardown(() => detachLoopsBacking([statx(foreignFile)]))
  v.forget()

  const table = readMountInfo()
  t.same(imageMounts(table, v.now.d.layout).get(used.id), [staging], 'the staged volume\'s mount is indexed')
  t.same(detachOrphanLoops(table, v.now.d.layout, silentLogger()), [left], 'the orphaned device, and only it, is detached')
  t.same(loopsBacking([statx(orphan.file)]), [], 'it is gone')
  t.equal(loopsBacking([statx(used.file)]).length, 1, 'the mounted volume keeps its device')
  t.same(loopsBacking([statx(foreignFile)]), [foreign], 'the foreign device is left alone')
  await v.now.call('NodeUnstageVolume', { volume_id: used.id, staging_target_path: staging })
})

t.test('an orphaned image still attached through a view that is gone is never removed', { skip }, async (t) => {
  const v = views(t)
  const img = v.image('lost', 8 * MiB, '')
  const att = loopAttach(path.join(v.dir, 'view/images', path.basename(img.file)))
  v.forget()
  let clock = 1000
  const store = { volumes: { list: async () => [] }, snapshots: { list: async () => [] } } as unknown as Store
  const watch = new OrphanWatch({ deps: v.now.d, store, log: silentLogger(), removeAfterMs: 1, now: () => clock })
  t.same((await watch.scan()).map((o) => o.path), [img.file], 'reported as an orphan')
  clock += 10
  await watch.scan()
  t.same(loopsBacking([statx(img.file)]), [att.device], 'still attached: it was not removed from under its loop device')
  t.same(loopBackingId(att.device), { dev: statx(img.file).dev, ino: statx(img.file).ino }, 'the file is the one the device holds')
  detachLoopsBacking([statx(img.file)])
  clock += 10
  t.same(await watch.scan(), [], 'detached, it is removed')
})

t.test('a different file is never taken for the volume\'s, even under the same name', { skip }, async (t) => {
  const v = views(t)
  const old = v.image('reborn', 32 * MiB, 'ext4')
  const staging = v.staging('reborn-staging')
  const base = { volume_id: old.id, staging_target_path: staging, volume_capability: mountCap(), volume_context: ctx('ext4') }
  await v.now.call('NodeStageVolume', base)
  // The volume's data deleted behind the plugin's back and a volume of the same name (and so the
  // same id and image path) made again: the staging mount is the old file's, not the new one's.
  unlinkSync(old.file)
  v.image('reborn', 32 * MiB, 'ext4')
  await rejectsCsi(t, v.now.call('NodeStageVolume', base), status.ALREADY_EXISTS, /different mount/, 'staging over the old file\'s mount')
  await rejectsCsi(t, v.now.call('NodeUnstageVolume', { volume_id: old.id, staging_target_path: staging }), status.FAILED_PRECONDITION, /not volume/, 'unstaging it')
  t.ok(statx(staging).isMountRoot, 'the old mount is left alone')
})
