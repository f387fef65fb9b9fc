// Crash safety, as root, with the real processes: kill -9 at the moments the issue names, restart,
// and check that the next calls succeed and nothing is leaked or duplicated.
import t from 'tap'
import { existsSync, mkdirSync, readdirSync, writeFileSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { client, crashRandom, kill9, mountCap, mountsUnder, start, startDriver, testRig } from './helpers/driver.js'

const MiB = 1 << 20

if (process.getuid?.() !== 0) {
  t.skip('crash tests mount filesystems and need root', () => {})
} else {
  // Process starts dominate; on a loaded 2-core machine the file needs more than .taprc's 120 s.
  t.setTimeout(360_000)
  t.test('node plugin killed between NodeStageVolume and NodePublishVolume: restart, finish, nothing leaked', async (t) => {
    const { rig, dir, ctl, c, ...started } = await startDriver(t)
    let node = started.node
    const { volume } = await c.CreateVolume({ name: 'pvc-crash-node', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(8 * MiB) } })
    const staging = path.join(dir, 'globalmount')
    mkdirSync(staging)
    const target = path.join(dir, 'pod/mount')
    mkdirSync(path.dirname(target))
    const req = { volume_id: volume.volume_id, staging_target_path: staging, volume_capability: mountCap(), volume_context: volume.volume_context }

    let n = client('Node', node.socket)
    await n.NodeStageVolume(req)
    n.close()
    await kill9(node)
    t.same(mountsUnder(dir), [staging], 'the staging mount outlives the killed plugin (the kernel holds it)')

    node = await start('node', dir)
    rig.procs.push(node)
    n = client('Node', node.socket)
    t.teardown(() => n.close())
    await n.NodeStageVolume(req) // kubelet may repeat the stage after a restart: still OK
    await n.NodePublishVolume({ ...req, target_path: target })
    writeFileSync(path.join(target, 'after-restart'), 'ok')
    t.equal(readFileSync(path.join(dir, 'data/volumes', volume.volume_id, 'after-restart'), 'utf8'), 'ok')
    await n.NodeUnpublishVolume({ volume_id: volume.volume_id, target_path: target })
    await n.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: staging })
    await c.DeleteVolume({ volume_id: volume.volume_id })
    t.same(mountsUnder(dir), [], 'no stray mount')
    t.notOk(existsSync(target), 'no stray target directory')
    t.same(readdirSync(path.join(dir, 'data/volumes')), [], 'no stray volume directory')
  })

  t.test('a restarted node plugin knows what its predecessor mounted (deletion is still refused)', async (t) => {
    const { rig, dir, ctl, c, ...started } = await startDriver(t)
    let node = started.node
    const { volume } = await c.CreateVolume({ name: 'pvc-crash-index', volume_capabilities: [mountCap()] })
    const staging = path.join(dir, 'globalmount')
    mkdirSync(staging)
    let n = client('Node', node.socket)
    await n.NodeStageVolume({ volume_id: volume.volume_id, staging_target_path: staging, volume_capability: mountCap() })
    n.close()
    await kill9(node)
    node = await start('node', dir)
    rig.procs.push(node)
    await t.rejects(c.DeleteVolume({ volume_id: volume.volume_id }, 10_000), { code: 9 }, 'FAILED_PRECONDITION: still staged')
    t.ok(existsSync(path.join(dir, 'data/volumes', volume.volume_id)), 'the data survived')
    n = client('Node', node.socket)
    t.teardown(() => n.close())
    await n.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: staging })
    await c.DeleteVolume({ volume_id: volume.volume_id })
    t.same(mountsUnder(dir), [])
  })

  t.test('controller killed in the middle of CreateVolume: the repeated call yields exactly one volume', async (t) => {
    const rig = testRig(t)
    const dir = rig.dir
    // No node plugin yet: CreateVolume records the volume and then waits for realisation, so the
    // kill lands deterministically after the store write and before the answer.
    let ctl = await start('controller', dir)
    rig.procs.push(ctl)
    const node0 = await start('node', dir) // registers the node's capacity, then goes away
    await kill9(node0)
    let c = client('Controller', ctl.socket)
    const req = { name: 'pvc-crash-controller', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(4 * MiB) } }
    const pending = c.CreateVolume(req, 60_000).catch((e) => e)
    await new Promise((r) => setTimeout(r, 300))
    await kill9(ctl)
    const err = await pending
    t.equal(err.code, 14, 'the in-flight call failed (UNAVAILABLE) when the controller died')
    c.close()
    t.equal(readdirSync(path.join(dir, 'state/store/volumes')).filter((f) => f.endsWith('.spec.json')).length, 1, 'the desired volume was recorded before the crash')

    ctl = await start('controller', dir)
    const node = await start('node', dir)
    rig.procs.push(ctl, node)
    c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    const first = await c.CreateVolume(req)
    const again = await c.CreateVolume(req)
    t.equal(again.volume.volume_id, first.volume.volume_id)
    const list = await c.ListVolumes({})
    t.equal(list.entries.length, 1, 'exactly one volume in the store')
    t.same(readdirSync(path.join(dir, 'data/volumes')), [first.volume.volume_id], 'exactly one volume on disk')
  })

  t.test('controller killed at random moments of CreateVolume (seeded): never two volumes for one name', async (t) => {
    const rig = testRig(t)
    const dir = rig.dir
    const node = await start('node', dir)
    rig.procs.push(node)
    const rand = crashRandom(t, 20261122)
    for (let round = 0; round < 6; round++) {
      const ctl = await start('controller', dir)
      rig.procs.push(ctl)
      const c = client('Controller', ctl.socket)
      const req = { name: `pvc-random-${round}`, volume_capabilities: [mountCap()] }
      const pending = c.CreateVolume(req, 30_000).catch((e) => e)
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 12)))
      await kill9(ctl)
      await pending
      c.close()
    }
    const ctl = await start('controller', dir)
    rig.procs.push(ctl)
    const c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    for (let round = 0; round < 6; round++) await c.CreateVolume({ name: `pvc-random-${round}`, volume_capabilities: [mountCap()] })
    const list = await c.ListVolumes({})
    t.equal(list.entries.length, 6, 'one volume per name')
    t.equal(readdirSync(path.join(dir, 'data/volumes')).length, 6, 'one directory per volume')
  })
}
