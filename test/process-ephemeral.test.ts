// CSI ephemeral inline volumes with the real node plugin: made at publish from the attributes,
// gone at unpublish, never in the controller's store.
import t from 'tap'
import { existsSync, mkdirSync, readdirSync, statfsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { listLoopDevices } from '../native/index.js'
import { mountCap, mountsUnder, startDriver } from './helpers/driver.js'

const MiB = 1 << 20

if (process.getuid?.() !== 0) {
  t.skip('ephemeral volumes are mounted by the node plugin, which needs root', () => {})
} else {
  t.test('an inline volume lives exactly as long as its publication', async (t) => {
    const { dir, node, c, n } = await startDriver(t)
    mkdirSync(path.join(dir, 'pods/a'), { recursive: true })
    mkdirSync(path.join(dir, 'pods/b'), { recursive: true })
    const ctx = { 'csi.storage.k8s.io/ephemeral': 'true', 'csi.storage.k8s.io/pod.name': 'app' }

    const dirTarget = path.join(dir, 'pods/a/scratch')
    const req = { volume_id: 'csi-1f2e3d4c5b6a', target_path: dirTarget, volume_capability: mountCap(), volume_context: ctx }
    await n.NodePublishVolume(req)
    await n.NodePublishVolume(req) // kubelet repeats: same answer
    writeFileSync(path.join(dirTarget, 'f'), 'x')
    t.equal(readdirSync(path.join(dir, 'data/volumes')).length, 1, 'its data is a directory under the data root')
    t.same((await c.ListVolumes({})).entries, [], 'the controller never sees it')

    const imgTarget = path.join(dir, 'pods/b/scratch')
    const imgReq = { volume_id: 'csi-99aa88bb', target_path: imgTarget, volume_capability: mountCap(), volume_context: { ...ctx, kind: 'image', size: '32Mi' } }
    await n.NodePublishVolume(imgReq)
    const sf = statfsSync(imgTarget)
    t.ok(sf.blocks * sf.bsize <= 32 * MiB, 'an image inline volume has its own 32 MiB filesystem')
    await t.rejects(n.NodePublishVolume({ ...imgReq, volume_id: 'csi-bad', target_path: path.join(dir, 'pods/b/other'), volume_context: { ...ctx, size: 'lots' } }),
      { code: 3, details: /volume_context\[size\]/ }, 'a bad attribute is INVALID_ARGUMENT naming it')

    for (const r of [req, imgReq]) {
      await n.NodeUnpublishVolume({ volume_id: r.volume_id, target_path: r.target_path })
      await n.NodeUnpublishVolume({ volume_id: r.volume_id, target_path: r.target_path })
      t.notOk(existsSync(r.target_path), 'the target is removed')
    }
    t.same(readdirSync(path.join(dir, 'data/volumes')), [], 'the data went with it')
    t.same(readdirSync(path.join(dir, 'data/images')), [])
    t.same(mountsUnder(dir), [])
    t.same(listLoopDevices().filter((l) => l.backingFile.startsWith(dir)), [], 'and its loop device')
  })
}
