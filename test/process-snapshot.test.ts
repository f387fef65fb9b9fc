// Snapshots, restores and clones with the real processes: data and metadata bit for bit, for
// dir, image and block volumes; a node plugin killed mid-copy never reports a half snapshot.
import t from 'tap'
import { createHash } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import path from 'node:path'
import { treeDigest } from '../node/digest.js'
import { client, kill9, mountCap, mountsUnder, start, startDriver, testRig } from './helpers/driver.js'
import { writeTree } from './helpers/tree.js'
import type { VolumeCapability } from '../proto/gen/csi/v1/VolumeCapability.js'

const MiB = 1 << 20
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' } satisfies VolumeCapability
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')

if (process.getuid?.() !== 0) {
  t.skip('snapshots are made by the node plugin, which needs root', () => {})
} else {
  t.setTimeout(400_000)
  t.test('restores match the snapshot and clones the source, bit for bit with metadata', async (t) => {
    const { rig, dir, ctl, node, c, n } = await startDriver(t)
    const vols = path.join(dir, 'data/volumes')

    // A dir volume: write the tree straight into its directory (as a pod would through a mount).
    const src = await c.CreateVolume({ name: 'snap-src', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(64 * MiB) } })
    writeTree(path.join(vols, src.volume.volume_id))
    const before = await treeDigest(path.join(vols, src.volume.volume_id))
    const snap = await c.CreateSnapshot({ name: 'snap-1', source_volume_id: src.volume.volume_id })
    t.equal(snap.snapshot.ready_to_use, true, 'a small snapshot is ready when CreateSnapshot answers')
    t.equal(snap.snapshot.source_volume_id, src.volume.volume_id)
    writeFileSync(path.join(vols, src.volume.volume_id, 'regular'), 'changed after the snapshot')
    const restored = await c.CreateVolume({ name: 'snap-restore', volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: snap.snapshot.snapshot_id } } })
    t.match(restored.volume.content_source, { snapshot: { snapshot_id: snap.snapshot.snapshot_id } }, 'the volume names its content source')
    t.equal(await treeDigest(path.join(vols, restored.volume.volume_id)), before, 'the restore matches the snapshot (content, modes, owners, times, xattrs, links, holes)')
    const clone = await c.CreateVolume({ name: 'snap-clone', volume_capabilities: [mountCap()], volume_content_source: { volume: { volume_id: src.volume.volume_id } } })
    t.equal(await treeDigest(path.join(vols, clone.volume.volume_id)), await treeDigest(path.join(vols, src.volume.volume_id)), 'the clone matches the source as it is now')
    await t.rejects(c.CreateVolume({ name: 'snap-elsewhere', volume_capabilities: [mountCap()], volume_content_source: { snapshot: { snapshot_id: snap.snapshot.snapshot_id } },
      accessibility_requirements: { requisite: [{ segments: { 'topology.tscsi.dev/node': 'other-node' } }] } }), { code: 8, details: /outside accessibility_requirements/ },
    'a restore the topology keeps off the snapshot\'s node is RESOURCE_EXHAUSTED with a reason')

    // An image volume, published and in use: the snapshot freezes it around the copy.
    const img = await c.CreateVolume({ name: 'snap-img', volume_capabilities: [mountCap()], parameters: { kind: 'image' }, capacity_range: { required_bytes: String(32 * MiB) } })
    const staging = path.join(dir, 'img-staging')
    mkdirSync(staging)
    const base = { volume_id: img.volume.volume_id, volume_capability: mountCap(), volume_context: img.volume.volume_context }
    await n.NodeStageVolume({ ...base, staging_target_path: staging })
    const payload = Buffer.alloc(5 * MiB, 0x3c)
    writeFileSync(path.join(staging, 'payload'), payload)
    const isnap = await c.CreateSnapshot({ name: 'snap-img-1', source_volume_id: img.volume.volume_id })
    t.equal(isnap.snapshot.ready_to_use, true)
    writeFileSync(path.join(staging, 'payload'), 'overwritten')
    const irest = await c.CreateVolume({ name: 'snap-img-restore', volume_capabilities: [mountCap()], parameters: { kind: 'image' }, capacity_range: { required_bytes: String(48 * MiB) },
      volume_content_source: { snapshot: { snapshot_id: isnap.snapshot.snapshot_id } } })
    t.equal(irest.volume.capacity_bytes, String(48 * MiB), 'a restore may be bigger than its snapshot')
    const rstaging = path.join(dir, 'img-restore-staging')
    mkdirSync(rstaging)
    await n.NodeStageVolume({ volume_id: irest.volume.volume_id, volume_capability: mountCap(), volume_context: irest.volume.volume_context, staging_target_path: rstaging })
    t.equal(sha(readFileSync(path.join(rstaging, 'payload'))), sha(payload), 'the restored image holds the data as it was at the snapshot')
    await n.NodeUnstageVolume({ volume_id: irest.volume.volume_id, staging_target_path: rstaging })
    await n.NodeUnstageVolume({ volume_id: img.volume.volume_id, staging_target_path: staging })

    // A block volume: the device's bytes.
    const blk = await c.CreateVolume({ name: 'snap-blk', volume_capabilities: [blockCap], capacity_range: { required_bytes: String(8 * MiB) } })
    const bst = path.join(dir, 'blk-staging')
    mkdirSync(bst)
    const bbase = { volume_id: blk.volume.volume_id, volume_capability: blockCap, volume_context: blk.volume.volume_context }
    await n.NodeStageVolume({ ...bbase, staging_target_path: bst })
    const dev = path.join(bst, 'device')
    const bytes = createHash('sha512').update('seed').digest()
    const fd = openSync(dev, 'r+')
    for (let i = 0; i < 64; i++) writeSync(fd, bytes, 0, bytes.length, i * 65536)
    closeSync(fd)
    const deviceSha = sha(readFileSync(dev))
    const bsnap = await c.CreateSnapshot({ name: 'snap-blk-1', source_volume_id: blk.volume.volume_id })
    const brest = await c.CreateVolume({ name: 'snap-blk-restore', volume_capabilities: [blockCap], volume_content_source: { snapshot: { snapshot_id: bsnap.snapshot.snapshot_id } } })
    t.equal(sha(readFileSync(path.join(dir, 'data/images', `${brest.volume.volume_id}.img`))), deviceSha, 'the restored block volume is the device, byte for byte')
    await n.NodeUnstageVolume({ volume_id: blk.volume.volume_id, staging_target_path: bst })

    const listed = await c.ListSnapshots({ source_volume_id: src.volume.volume_id })
    t.same(listed.entries.map((e: any) => e.snapshot.snapshot_id), [snap.snapshot.snapshot_id], 'ListSnapshots filters by source volume')
    for (const s of [snap, isnap, bsnap]) await c.DeleteSnapshot({ snapshot_id: s.snapshot.snapshot_id })
    t.same((await c.ListSnapshots({})).entries, [])
    t.same(mountsUnder(dir), [])
  })

  t.test('a node plugin killed during a long copy: never ready while incomplete, finished after restart', async (t) => {
    const { rig, dir, ctl, c, ...started } = await startDriver(t)
    let node = started.node
    // A raw image on ext4 (no reflink here): the copy of its data takes a while.
    const { volume } = await c.CreateVolume({ name: 'long', volume_capabilities: [blockCap], capacity_range: { required_bytes: String(768 * MiB) } })
    const image = path.join(dir, 'data/images', `${volume.volume_id}.img`)
    const fd = openSync(image, 'r+')
    const chunk = Buffer.alloc(4 * MiB)
    for (let i = 0; i < 160; i++) { chunk.fill(i); writeSync(fd, chunk, 0, chunk.length, i * 4 * MiB) }
    closeSync(fd)
    const want = sha(readFileSync(image))
    const pending = c.CreateSnapshot({ name: 'long-snap', source_volume_id: volume.volume_id }, 60_000)
    await new Promise((r) => setTimeout(r, 400))
    await kill9(node)
    const answer = await pending.catch((e: Error) => e)
    const got = await c.ListSnapshots({})
    for (const e of got.entries) t.equal(e.snapshot.ready_to_use, false, 'while its node is down mid-copy the snapshot is not ready')
    t.comment(`CreateSnapshot answered ${answer instanceof Error ? answer.message : 'ready_to_use=' + (answer as any).snapshot.ready_to_use}`)
    node = await start('node', dir)
    rig.procs.push(node)
    let ready = false
    for (let i = 0; i < 600 && !ready; i++) {
      ready = (await c.ListSnapshots({})).entries.some((e: any) => e.snapshot.ready_to_use)
      if (!ready) await new Promise((r) => setTimeout(r, 100))
    }
    t.ok(ready, 'the restarted node plugin finishes the snapshot')
    const sid = (await c.ListSnapshots({})).entries[0]!.snapshot.snapshot_id
    const restored = await c.CreateVolume({ name: 'long-restore', volume_capabilities: [blockCap], volume_content_source: { snapshot: { snapshot_id: sid } } })
    t.equal(sha(readFileSync(path.join(dir, 'data/images', `${restored.volume.volume_id}.img`))), want, 'and its content is complete')
  })
}

if (process.getuid?.() === 0) {
  t.test('on a reflink filesystem a 1 GiB image snapshots in well under a second, using almost no space', async (t) => {
    const { execFileSync } = await import('node:child_process')
    const { loopAttach, loopDetach, mount, umount2, MNT, statvfs } = await import('../native/index.js')
    const rig = testRig(t)
    const dir = rig.dir
    let device = ''
    const fast = path.join(dir, 'fast')
    t.teardown(() => {
      try { umount2(fast, MNT.DETACH) } catch { /* not mounted */ }
      if (device) loopDetach(device)
    })
    // A real xfs with reflink on a loop device, as a node pool.
    const backing = path.join(dir, 'xfs.img')
    writeFileSync(backing, '')
    truncateSync(backing, 3 * 1024 * MiB)
    execFileSync('mkfs.xfs', ['-q', '-f', '-m', 'reflink=1', backing])
    mkdirSync(fast)
    device = loopAttach(backing).device
    mount(device, fast, 'xfs', 0, null)
    const ctl = await start('controller', dir)
    const node = await start('node', dir, ['--pool', `fast=${fast}`])
    rig.procs.push(ctl, node)
    const c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    const { volume } = await c.CreateVolume({ name: 'big', volume_capabilities: [mountCap()], parameters: { kind: 'image', pool: 'fast' }, capacity_range: { required_bytes: String(1024 * MiB) } })
    // Fill part of it so there is real data to share.
    const img = path.join(fast, 'images', `${volume.volume_id}.img`)
    const fd = openSync(img, 'r+')
    const chunk = Buffer.alloc(8 * MiB, 9)
    for (let i = 0; i < 32; i++) writeSync(fd, chunk, 0, chunk.length, 64 * MiB + i * 8 * MiB)
    closeSync(fd)
    execFileSync('sync')
    const used = () => { const s = statvfs(fast); return Number((s.blocks - s.bfree) * BigInt(s.fragmentSize || s.blockSize)) }
    const before = used()
    const started = process.hrtime.bigint()
    const snap = await c.CreateSnapshot({ name: 'big-snap', source_volume_id: volume.volume_id })
    const ms = Number(process.hrtime.bigint() - started) / 1e6
    const extra = used() - before
    t.equal(snap.snapshot.ready_to_use, true, 'ready when CreateSnapshot answers')
    t.comment(`1 GiB image (256 MiB written) on xfs+reflink: CreateSnapshot ${ms.toFixed(1)} ms, ${(extra / MiB).toFixed(2)} MiB extra space`)
    t.ok(extra < 16 * MiB, `the snapshot shares its blocks (${(extra / MiB).toFixed(2)} MiB extra for 256 MiB of data)`)
    await c.DeleteSnapshot({ snapshot_id: snap.snapshot.snapshot_id })
    await c.DeleteVolume({ volume_id: volume.volume_id })
  })
}
