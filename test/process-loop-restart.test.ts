// The node plugin restarted in a new container, with the real processes: its data root is a bind
// mount, as a hostPath volume is, and the restart replaces that mount with a new one of the same
// folder. sysfs then prints each loop device's backing file as a path inside the old, detached
// mount, never the plugin's own path to the image. Found in a real cluster: the restarted plugin
// refused to unpublish and unstage its image volumes and their loop devices leaked.
import t from 'tap'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { loopAttach, loopBackingFile, MNT, MS, mount, statx, umount2, type FileId } from '../native/index.js'
import { client, kill9, mountCap, mountsUnder, start, testRig } from './helpers/driver.js'
import { detachLoopsBacking, loopsBacking } from './helpers/loopfs.js'

const MiB = 1 << 20
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }

t.test('a node plugin restarted with a new mount of its data root unpublishes and unstages its image volumes, and frees an orphaned device', { skip: process.getuid?.() === 0 ? false : 'needs root (loop devices, mounts)' }, async (t) => {
  t.setTimeout(120_000)
  const images: FileId[] = []
  const rig = testRig(t)
  // Runs before the rig's teardown (teardowns run last first): a device a failed run left is
  // found by its image's identity, which no sysfs text under the test folder would show.
  t.teardown(() => detachLoopsBacking(images))
  const dir = rig.dir
  const hostFolder = path.join(dir, 'host')
  const data = path.join(dir, 'data')
  mkdirSync(hostFolder)
  mkdirSync(data)
  mount(hostFolder, data, null, MS.BIND, null)
  const ctl = await start('controller', dir)
  let node = await start('node', dir)
  rig.procs.push(ctl, node)
  const c = client('Controller', ctl.socket)
  t.teardown(() => c.close())

  const create = async (name: string, capability: object) => {
    const { volume } = await c.CreateVolume({ name, volume_capabilities: [capability], parameters: { kind: 'image' }, capacity_range: { required_bytes: String(16 * MiB) } })
    const image = path.join(data, 'images', `${volume.volume_id}.img`)
    const st = statx(image)
    images.push({ dev: st.dev, ino: st.ino })
    const base = { volume_id: volume.volume_id, volume_capability: capability, volume_context: volume.volume_context }
    mkdirSync(path.join(dir, `${name}-staging`))
    mkdirSync(path.join(dir, `${name}-pod`))
    return { volume, image, base, staging: path.join(dir, `${name}-staging`), target: path.join(dir, `${name}-pod`, 'vol') }
  }
  const vols = [await create('fs', mountCap()), await create('blk', blockCap)]
  const orphan = await create('orphan', blockCap)
  const n0 = client('Node', node.socket)
  for (const v of vols) {
    await n0.NodeStageVolume({ ...v.base, staging_target_path: v.staging })
    await n0.NodePublishVolume({ ...v.base, staging_target_path: v.staging, target_path: v.target })
  }
  n0.close()
  // What a plugin killed between attaching a block volume's device and binding it leaves.
  const left = loopAttach(orphan.image).device
  await kill9(node)

  // The container goes, and its mount of the data root with it; the new container mounts the
  // same folder again.
  umount2(data, MNT.DETACH)
  mount(hostFolder, data, null, MS.BIND, null)
  t.equal(loopBackingFile(left), `/images/${path.basename(orphan.image)}`, 'sysfs names the orphan\'s image inside the old, detached mount')
  node = await start('node', dir)
  rig.procs.push(node)
  const n = client('Node', node.socket)
  t.teardown(() => n.close())

  t.same(loopsBacking([images[2]!]), [], 'the restarted plugin detached the orphaned device')
  for (const [i, v] of vols.entries()) {
    t.equal(loopsBacking([images[i]!]).length, 1, `${v.volume.volume_id} keeps its device over the restart`)
    await n.NodeUnpublishVolume({ volume_id: v.volume.volume_id, target_path: v.target })
    await n.NodeUnstageVolume({ volume_id: v.volume.volume_id, staging_target_path: v.staging })
    t.same(loopsBacking([images[i]!]), [], `${v.volume.volume_id}: unpublished and unstaged, its loop device is gone`)
  }
  for (const v of [...vols, orphan]) await c.DeleteVolume({ volume_id: v.volume.volume_id })
  t.same(mountsUnder(dir), [data], 'no mount left but the data root\'s')
})
