// End to end, as root: the real controller and node plugin processes, real bind mounts.
import t from 'tap'
import { mkdirSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { mountCap, mountInfoOf, mountsUnder, startDriver } from './helpers/driver.js'

if (process.getuid?.() !== 0) {
  t.skip('end-to-end tests mount filesystems and need root', () => {})
} else {
  t.test('a published volume is a bind mount whose writes land in the volume directory', async (t) => {
    const { dir, node, c, n } = await startDriver(t)

    const created = await c.CreateVolume({ name: 'pvc-e2e-1', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(64 << 20) } })
    const vol = created.volume
    t.match(vol.volume_id, /^v-[0-9a-f]{32}$/)
    t.equal(vol.capacity_bytes, String(64 << 20))
    t.same(vol.accessible_topology[0]!.segments, { 'topology.tscsi.dev/node': 'e2e-node' })
    const volDir = path.join(dir, 'data/volumes', vol.volume_id)
    t.ok(existsSync(volDir), 'the node plugin created the volume directory')

    const staging = path.join(dir, 'kubelet/plugins/globalmount')
    mkdirSync(staging, { recursive: true })
    const target = path.join(dir, 'kubelet/pods/uid-1/volumes/mount')
    mkdirSync(path.dirname(target), { recursive: true })
    const ctx = vol.volume_context
    await n.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: staging, volume_capability: mountCap(), volume_context: ctx })
    await n.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), volume_context: ctx })

    const info = mountInfoOf(target)
    t.ok(info, 'the target is in /proc/self/mountinfo')
    t.ok(info![3]!.endsWith(`/volumes/${vol.volume_id}`), `its root is the volume directory (${info![3]})`)
    writeFileSync(path.join(target, 'hello.txt'), 'written through the target')
    t.equal(readFileSync(path.join(volDir, 'hello.txt'), 'utf8'), 'written through the target', 'the file landed in the data root')

    // A second, read-only publication of the same volume.
    const roTarget = path.join(dir, 'kubelet/pods/uid-2/volumes/mount')
    mkdirSync(path.dirname(roTarget), { recursive: true })
    await n.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: staging, target_path: roTarget, volume_capability: mountCap(), readonly: true, volume_context: ctx })
    t.throws(() => writeFileSync(path.join(roTarget, 'nope'), 'x'), { code: 'EROFS' }, 'the read-only target refuses writes')
    t.equal(readFileSync(path.join(roTarget, 'hello.txt'), 'utf8'), 'written through the target')
    await t.rejects(
      n.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: staging, target_path: roTarget, volume_capability: mountCap(), readonly: false, volume_context: ctx }),
      { code: 6 }, 'republishing the same target read-write is ALREADY_EXISTS',
    )

    const stats = await n.NodeGetVolumeStats({ volume_id: vol.volume_id, volume_path: target })
    t.equal(stats.volume_condition.abnormal, false)
    t.ok(BigInt(stats.usage[0]!.total) > 0n)

    await t.rejects(c.DeleteVolume({ volume_id: vol.volume_id }, 10_000), { code: 9 }, 'a mounted volume is not deleted (FAILED_PRECONDITION)')
    t.ok(existsSync(path.join(volDir, 'hello.txt')), 'and its data is intact')
    t.equal((await c.ListVolumes({})).entries.length, 1, 'a refused delete leaves the volume listed')

    for (const tg of [target, roTarget]) {
      await n.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: tg })
      await n.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: tg })
      t.notOk(existsSync(tg), `unpublish removed ${path.basename(path.dirname(path.dirname(tg)))}'s target`)
    }
    await n.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging })
    await n.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: staging })
    t.ok(existsSync(staging), 'the staging directory belongs to the CO and stays')
    t.same(mountsUnder(dir), [], 'no mount is left')

    await c.DeleteVolume({ volume_id: vol.volume_id })
    await c.DeleteVolume({ volume_id: vol.volume_id })
    t.notOk(existsSync(volDir), 'the volume directory is gone')
    t.same(readdirSync(path.join(dir, 'data/volumes')), [])
    const list = await c.ListVolumes({})
    t.same(list.entries, [])
  })
}
