// Image and block volumes with the real processes, real loop devices and real ext4/btrfs.
import t from 'tap'
import { createHash } from 'node:crypto'
import { closeSync, mkdirSync, openSync, readFileSync, statfsSync, statSync, writeSync } from 'node:fs'
import path from 'node:path'
import { blockDeviceSize, listLoopDevices } from '../native/index.js'
import { client, kill9, mountsUnder, start, startDriver } from './helpers/driver.js'
import type { VolumeCapability } from '../proto/gen/csi/v1/VolumeCapability.js'

const MiB = 1 << 20
const cap = (fsType = '') => ({ mount: { fs_type: fsType, mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }) satisfies VolumeCapability
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' } satisfies VolumeCapability
const hasSysResource = (BigInt('0x' + (/CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0')) >> 24n) & 1n

/** Loop devices backed by files under dir. */
const loopsUnder = (dir: string) => listLoopDevices().filter((l) => l.backingFile.startsWith(dir + '/'))

function fill(file: string, max: number): number {
  const fd = openSync(file, 'w')
  const chunk = Buffer.alloc(MiB, 7)
  let written = 0
  try {
    while (written < max) written += writeSync(fd, chunk)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e
  } finally {
    try { closeSync(fd) } catch { /* ENOSPC again on close is fine */ }
  }
  return written
}

if (process.getuid?.() !== 0) {
  t.skip('image and block volumes need root (loop devices, mounts)', () => {})
} else {
  t.setTimeout(300_000)
  t.test('image volumes: size is a hard limit, expansion is online, block volumes are exact devices', async (t) => {
    const { rig, dir, ctl, node, c, n } = await startDriver(t)
    const publish = async (name: string, capability: object, params: Record<string, string>, size: number) => {
      const { volume } = await c.CreateVolume({ name, volume_capabilities: [capability], parameters: params, capacity_range: { required_bytes: String(size) } })
      const staging = path.join(dir, `${name}-staging`)
      mkdirSync(staging)
      const target = path.join(dir, `${name}-pod`, 'vol')
      mkdirSync(path.dirname(target))
      const base = { volume_id: volume.volume_id, volume_capability: capability, volume_context: volume.volume_context }
      await n.NodeStageVolume({ ...base, staging_target_path: staging })
      await n.NodePublishVolume({ ...base, staging_target_path: staging, target_path: target })
      return { volume, staging, target, base }
    }

    const ext4 = await publish('img-ext4', cap(), { kind: 'image' }, 64 * MiB)
    const imageFile = path.join(dir, 'data/images', `${ext4.volume.volume_id}.img`)
    t.ok(statSync(imageFile).blocks * 512 >= 64 * MiB, `the image holds its full 64 MiB from the start, not sparse (${statSync(imageFile).blocks * 512} bytes allocated)`)
    const written = fill(path.join(ext4.target, 'big'), 70 * MiB)
    t.ok(written < 65 * MiB, `writing stops with ENOSPC within 64 MiB (${written / MiB} MiB written)`)
    t.ok(written > 40 * MiB, 'after most of the image was usable')
    t.equal(Number(statfsSync(ext4.target).blocks * statfsSync(ext4.target).bsize) <= 64 * MiB, true, 'statfs in the target shows the image, not the disk')

    const raw = await publish('img-block', blockCap, {}, 64 * MiB)
    t.equal(blockDeviceSize(raw.target), BigInt(64 * MiB), 'the block target is a device of exactly 64 MiB')

    // Online expansion while published, data intact. btrfs grows online with CAP_SYS_ADMIN; ext4
    // also needs CAP_SYS_RESOURCE, which this sandbox may lack (checked below).
    const bt = await publish('img-btrfs', cap('btrfs'), { kind: 'image' }, 128 * MiB)
    const data = Buffer.alloc(3 * MiB, 0x5a)
    const { writeFileSync } = await import('node:fs')
    writeFileSync(path.join(bt.target, 'data'), data)
    const before = createHash('sha256').update(readFileSync(path.join(bt.target, 'data'))).digest('hex')
    const grown = await c.ControllerExpandVolume({ volume_id: bt.volume.volume_id, capacity_range: { required_bytes: String(256 * MiB) } })
    t.equal(grown.capacity_bytes, String(256 * MiB))
    t.equal(grown.node_expansion_required, true)
    await n.NodeExpandVolume({ volume_id: bt.volume.volume_id, volume_path: bt.target, capacity_range: { required_bytes: String(256 * MiB) } })
    const sf = statfsSync(bt.target)
    t.ok(sf.blocks * sf.bsize > 200 * MiB, `statfs of the still-mounted target shows the new size (${Math.round((sf.blocks * sf.bsize) / MiB)} MiB)`)
    t.equal(createHash('sha256').update(readFileSync(path.join(bt.target, 'data'))).digest('hex'), before, 'the data written before is intact')
    await t.rejects(c.ControllerExpandVolume({ volume_id: bt.volume.volume_id, capacity_range: { required_bytes: String(64 * MiB), limit_bytes: String(64 * MiB) } }), { code: 11 }, 'shrinking is OUT_OF_RANGE')

    const blockGrown = await c.ControllerExpandVolume({ volume_id: raw.volume.volume_id, capacity_range: { required_bytes: String(96 * MiB) } })
    t.equal(blockGrown.capacity_bytes, String(96 * MiB))
    await n.NodeExpandVolume({ volume_id: raw.volume.volume_id, volume_path: raw.target, capacity_range: { required_bytes: String(96 * MiB) } })
    t.equal(blockDeviceSize(raw.target), BigInt(96 * MiB), 'a block volume grows too')

    await c.ControllerExpandVolume({ volume_id: ext4.volume.volume_id, capacity_range: { required_bytes: String(128 * MiB) } })
    const ext4Grow = n.NodeExpandVolume({ volume_id: ext4.volume.volume_id, volume_path: ext4.target, capacity_range: { required_bytes: String(128 * MiB) } })
    if (hasSysResource) {
      await ext4Grow
      t.ok(statfsSync(ext4.target).blocks * statfsSync(ext4.target).bsize > 100 * MiB, 'ext4 grew online')
    } else {
      await t.rejects(ext4Grow, { code: 13, details: /CAP_SYS_RESOURCE/ }, 'without CAP_SYS_RESOURCE ext4 cannot grow online, and the error says why')
    }

    for (const v of [ext4, raw, bt]) {
      await n.NodeUnpublishVolume({ volume_id: v.volume.volume_id, target_path: v.target })
      await n.NodeUnstageVolume({ volume_id: v.volume.volume_id, staging_target_path: v.staging })
      await c.DeleteVolume({ volume_id: v.volume.volume_id })
    }
    t.same(mountsUnder(dir), [], 'no mount left')
    t.same(loopsUnder(dir), [], 'no loop device left')
  })

  t.test('node plugin killed in a stream of stage/publish/unpublish/unstage: no loop device left that no volume owns', async (t) => {
    const { rig, dir, ctl, c, ...started } = await startDriver(t)
    let node = started.node
    const vols = []
    for (const [name, capability] of [['k-img', cap()], ['k-blk', blockCap]] as const) {
      const { volume } = await c.CreateVolume({ name, volume_capabilities: [capability], parameters: { kind: 'image' }, capacity_range: { required_bytes: String(16 * MiB) } })
      const staging = path.join(dir, `${name}-staging`)
      mkdirSync(staging)
      mkdirSync(path.join(dir, `${name}-pod`))
      vols.push({ base: { volume_id: volume.volume_id, volume_capability: capability, volume_context: volume.volume_context }, staging, target: path.join(dir, `${name}-pod`, 'vol') })
    }
    let seed = 4242
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
    for (let round = 0; round < 8; round++) {
      const n = client('Node', node.socket)
      const stream = (async () => {
        for (let i = 0; i < 20; i++) {
          for (const v of vols) {
            await n.NodeStageVolume({ ...v.base, staging_target_path: v.staging })
            await n.NodePublishVolume({ ...v.base, staging_target_path: v.staging, target_path: v.target })
            await n.NodeUnpublishVolume({ volume_id: v.base.volume_id, target_path: v.target })
            await n.NodeUnstageVolume({ volume_id: v.base.volume_id, staging_target_path: v.staging })
          }
        }
      })().catch(() => undefined)
      await new Promise((r) => setTimeout(r, Math.floor(rand() * 40)))
      await kill9(node)
      await stream
      n.close()
      node = await start('node', dir)
      rig.procs.push(node)
    }
    // After the last restart, finish every volume's lifecycle and check nothing is left over.
    const n = client('Node', node.socket)
    t.teardown(() => n.close())
    for (const v of vols) {
      await n.NodeUnpublishVolume({ volume_id: v.base.volume_id, target_path: v.target })
      await n.NodeUnstageVolume({ volume_id: v.base.volume_id, staging_target_path: v.staging })
    }
    t.same(mountsUnder(dir), [], 'no mount left after 8 kills')
    t.same(loopsUnder(dir).map((l) => l.device), [], 'no loop device left that no volume owns')
    for (const v of vols) await c.DeleteVolume({ volume_id: v.base.volume_id })
  })
}
