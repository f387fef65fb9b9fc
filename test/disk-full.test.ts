// Issue 7, item 5: the data root fills up. The pool is a small ext4 (no reserved blocks, so "full"
// means full for root too) loop-mounted as the node's data root; the real controller and node
// plugin run on it. A pod-like writer (dd through a published target of a dir volume without a
// quota) fills it. Checked: CreateVolume answers RESOURCE_EXHAUSTED naming the pool, both when the
// controller's accounting refuses and when the node really hits ENOSPC (and then leaves no
// half-made image or temp file); existing volumes keep working; snapshots fail the same way and
// leave no partial copy; the store stays valid; deleting volumes gives the space back and the
// failed CreateVolume then succeeds.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, realpathSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs'
import path from 'node:path'
import { listLoopDevices, loopAttach, loopDetach, mount, parseBackingFile, statvfs } from '../native/index.js'
import { volumeIdFor, snapshotIdFor } from '../common/ids.js'
import { nodeFailure } from '../controller/await.js'
import { Code, toCsiError } from '../common/errors.js'
import { ensureImage, mkdirs, prepareDataRoot } from '../node/datadir.js'
import { mkfs } from '../node/fstools.js'
import { loopRig } from './helpers/loopfs.js'
import { client, mountCap, mountsUnder, start, testRig } from './helpers/driver.js'

const MiB = 1 << 20
const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' }
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex')
const POOL = /pool "default"/

t.test('nodeFailure names the pool and node once, and only for RESOURCE_EXHAUSTED', async (t) => {
  const spec = { pool: 'fast', node: 'n1' }
  t.match(nodeFailure(spec, Code.RESOURCE_EXHAUSTED, 'mkdir(/x): ENOSPC').message, /^pool "fast" on node n1 is out of space: mkdir\(\/x\): ENOSPC$/)
  t.equal(nodeFailure(spec, Code.RESOURCE_EXHAUSTED, 'pool "fast" on node n1 is out of space: x').message, 'pool "fast" on node n1 is out of space: x', 'not named twice')
  t.equal(nodeFailure(spec, Code.INTERNAL, 'boom').message, 'boom')
  t.equal(nodeFailure(spec, Code.RESOURCE_EXHAUSTED, 'x').code, Code.RESOURCE_EXHAUSTED)
})

const skip = process.getuid?.() !== 0
  ? 'needs root (loop devices, mounts)'
  : !existsSync('/dev/loop-control') ? 'no /dev/loop-control'
    : spawnSync('sh', ['-c', 'command -v mkfs.ext4 && command -v dd']).status !== 0 ? 'mkfs.ext4 or dd missing' : false

t.test('node data helpers on a full filesystem report ENOSPC and leave nothing behind', { skip }, async (t) => {
  const { dir, mounts } = loopRig(t)
  // tmpfs: one out of inodes (mkdir fails), one out of bytes (mkfs in a sparse image fails).
  const [noInodes, noBytes] = [path.join(dir, 'inodes'), path.join(dir, 'bytes')]
  for (const [m, opts] of [[noInodes, 'size=4m,nr_inodes=8'], [noBytes, 'size=512k']] as const) {
    mkdirSync(m)
    mounts.push(m)
    mount('tmpfs', m, 'tmpfs', 0, opts)
  }
  for (let i = 0; ; i++) try { writeFileSync(path.join(noInodes, `f${i}`), '') } catch { break }
  try { writeFileSync(path.join(noBytes, 'fill'), Buffer.alloc(MiB)) } catch { /* ENOSPC: full, as wanted */ }
  // Node's own recursive mkdir says ENOENT here, which would reach a client as NOT_FOUND.
  await t.rejects(mkdirs(path.join(noInodes, 'snapshots/x')), { code: 'ENOSPC' }, 'mkdirs: ENOSPC, not ENOENT')
  await t.rejects(prepareDataRoot(path.join(noInodes, 'volumes')), { code: 'ENOSPC' }, 'prepareDataRoot: ENOSPC')
  mkdirSync(path.join(noBytes, 'images'))
  const err = await ensureImage(path.join(noBytes, 'images/v.img'), BigInt(64 * MiB), 'ext4').catch((e) => e)
  t.equal(toCsiError(err).code, Code.RESOURCE_EXHAUSTED, `ensureImage: no room is RESOURCE_EXHAUSTED (${err?.message})`)
  t.same(readdirSync(path.join(noBytes, 'images')), [], 'no half-made image or temp file')
  // mkfs itself running out of space (the image fitted when checked, the pool filled meanwhile).
  const sparse = path.join(noBytes, 'sparse.img')
  writeFileSync(sparse, '')
  truncateSync(sparse, 64 * MiB)
  const mk = await mkfs(sparse, 'ext4').catch((e) => e)
  t.equal(mk?.code, Code.RESOURCE_EXHAUSTED, `mkfs out of space is RESOURCE_EXHAUSTED, not INTERNAL (${mk?.message})`)
})

t.test('the data root fills up', { skip }, async (t) => {
  t.setTimeout(240_000)
  const rig = testRig(t)
  const dir = realpathSync(rig.dir)
  // After the rig's teardown (processes killed, mounts under dir detached): block volumes' loop
  // devices are not autoclear, so a failure mid-test could leave one behind.
  t.teardown(() => {
    for (const l of listLoopDevices()) {
      if (parseBackingFile(l.backingFile).path.startsWith(dir + '/')) try { loopDetach(l.device) } catch { /* autoclear got it */ }
    }
  })
  const data = path.join(dir, 'data')
  const img = path.join(dir, 'pool.img')
  writeFileSync(img, '')
  truncateSync(img, 256 * MiB)
  mkdirSync(data)
  loopAttach(img, {
    autoclear: true,
    whileOpen: (a) => {
      const r = spawnSync('mkfs.ext4', ['-q', '-F', '-m', '0', a.device], { encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`mkfs.ext4: ${r.stderr}`)
      mount(a.device, data, 'ext4', 0, null)
    },
  })
  const freeBytes = (): number => Number(statvfs(data).bavail) * statvfs(data).fragmentSize
  const emptyFree = freeBytes()
  // Capacity reports come only from the node's own activity (debounced 1 s after each change), so
  // the controller's view of free space stays what it was before the writer filled the disk.
  const ctl = await start('controller', dir)
  const node = await start('node', dir, ['--capacity-interval', '10m'])
  rig.procs.push(ctl, node)
  const c = client('Controller', ctl.socket)
  const n = client('Node', node.socket)
  t.teardown(() => { c.close(); n.close() })

  let seq = 0
  const create = (name: string, params: Record<string, string>, size: number, cap: object = mountCap()) =>
    c.CreateVolume({ name, volume_capabilities: [cap], parameters: params, capacity_range: { required_bytes: String(size) } })
  /** Stages the volume and publishes it at a fresh pod target; block targets are files. */
  const publish = async (volume: any, cap: object) => {
    const base = { volume_id: volume.volume_id, volume_capability: cap, volume_context: volume.volume_context }
    const staging = path.join(dir, `stage-${volume.volume_id}`)
    mkdirSync(staging, { recursive: true })
    const target = path.join(dir, `pod-${++seq}`, 'vol')
    mkdirSync(path.dirname(target))
    await n.NodeStageVolume({ ...base, staging_target_path: staging })
    await n.NodePublishVolume({ ...base, staging_target_path: staging, target_path: target })
    return { base, staging, target }
  }
  const unpublish = async (v: { base: any; staging: string; target: string; mounted?: boolean }) => {
    await n.NodeUnpublishVolume({ volume_id: v.base.volume_id, target_path: v.target })
    await n.NodeUnstageVolume({ volume_id: v.base.volume_id, staging_target_path: v.staging })
    v.mounted = false
  }
  const available = async (params: Record<string, string> = {}) => BigInt((await c.GetCapacity({ parameters: params })).available_capacity)
  const until = async (what: string, ok: () => Promise<boolean>) => {
    for (const end = Date.now() + 30_000; !(await ok());) {
      if (Date.now() > end) throw new Error(`timed out waiting until ${what}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const storeDir = path.join(dir, 'state/store')
  const status = (kind: 'volumes' | 'snapshots', id: string) => {
    const f = path.join(storeDir, kind, `${id}.status.json`)
    return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : undefined
  }
  const leftovers = (sub: string, keep: string[]) => (existsSync(path.join(data, sub)) ? readdirSync(path.join(data, sub)) : []).filter((f) => !keep.includes(f))

  // Volumes that exist before the disk fills, with data synced to disk.
  type Vol = { volume: any; cap: object; base: any; staging: string; target: string; mounted: boolean }
  const existing = async (name: string, params: Record<string, string>, size: number, cap: object): Promise<Vol> => {
    const { volume } = await create(name, params, size, cap)
    return { volume, cap, ...(await publish(volume, cap)), mounted: true }
  }
  const republish = async (v: Vol) => {
    Object.assign(v, await publish(v.volume, v.cap))
    v.mounted = true
  }
  const vDir = await existing('keep-dir', {}, 8 * MiB, mountCap())
  const vImg = await existing('keep-img', { kind: 'image' }, 32 * MiB, mountCap())
  const vBlk = await existing('keep-blk', {}, 8 * MiB, blockCap)
  const content = randomBytes(MiB)
  const dataFile = (v: Vol) => (v === vBlk ? v.target : path.join(v.target, 'data'))
  const writeSynced = (file: string, flags = 'w') => {
    const fd = openSync(file, flags)
    try { writeSync(fd, content, 0, content.length, 0); fsyncSync(fd) } finally { closeSync(fd) }
  }
  const readData = (v: Vol) => {
    const b = Buffer.alloc(MiB)
    const fd = openSync(dataFile(v), 'r')
    try { readSync(fd, b, 0, MiB, 0) } finally { closeSync(fd) }
    return b
  }
  for (const v of [vDir, vImg, vBlk]) writeSynced(dataFile(v), v === vBlk ? 'r+' : 'w')
  // More than the 1 MiB the snapshot step frees, so copying either runs out of space midway.
  for (const v of [vDir, vImg]) spawnSync('dd', ['if=/dev/urandom', `of=${path.join(v.target, 'big')}`, 'bs=1M', 'count=3', 'conv=fsync'])
  const baseline = freeBytes()
  t.comment(`pool: ${Math.round(emptyFree / MiB)} MiB free when empty, ${Math.round(baseline / MiB)} MiB with the three volumes`)

  await t.test('the controller\'s accounting refuses what the pool cannot hold', async (t) => {
    await until('the node reported its capacity', async () => (await available()) > 0n)
    const room = await available()
    const err = await create('too-big', {}, Number(room) + MiB).catch((e) => e)
    t.equal(err.code, Code.RESOURCE_EXHAUSTED, `RESOURCE_EXHAUSTED: ${err.details}`)
    t.match(err.details, POOL, 'the message names the pool')
    t.notOk(existsSync(path.join(storeDir, 'volumes', `${volumeIdFor('too-big')}.spec.json`)), 'nothing was recorded for the refused volume')
  })

  // A dir volume without a quota: its writer is held by nothing but the disk.
  const fillerAt = Date.now()
  const filler = (await create('filler', { quota: 'off' }, MiB)).volume
  const pFill = await publish(filler, mountCap())
  // The node's (debounced) report after creating the filler must land before the fill, or the
  // controller would see part of it; after it, nothing makes the node report until a reconcile.
  const reported = () => Date.parse(JSON.parse(readFileSync(path.join(storeDir, 'nodes/e2e-node.status.json'), 'utf8')).updatedAt)
  await until('the node reported after creating the filler', async () => reported() > fillerAt)
  const roomBefore = await available({ kind: 'image' })
  const dd = (bs: string) => spawnSync('dd', ['if=/dev/zero', `of=${path.join(pFill.target, 'fill')}`, `bs=${bs}`, 'oflag=append', 'conv=notrunc,fsync'], { encoding: 'utf8' })
  const big = dd('1M')
  const tail = dd('4k') // what 1 MiB blocks could not fill
  // ext4 hands back blocks it had set aside for the writer's preallocations some time after the
  // writer is done (seen as 2-3 MiB coming free seconds later, once even in a run alone): write
  // again until the pool has stayed full through three looks a second apart, so what follows
  // starts from a really full pool. The bound only keeps a broken run from hanging.
  for (let stable = 0, i = 0; stable < 3 && i < 60; i++) {
    spawnSync('sync')
    await new Promise((r) => setTimeout(r, 1000))
    const before = freeBytes()
    dd('4k')
    stable = freeBytes() === before && before < MiB ? stable + 1 : 0
  }
  t.match(big.stderr + tail.stderr, /No space left on device/, 'the pod\'s writer ran into ENOSPC')
  t.ok(freeBytes() < MiB, `the pool is full (${freeBytes()} bytes free)`)
  t.equal(await available({ kind: 'image' }), roomBefore, 'the controller has not heard of it yet')

  await t.test('the node hits ENOSPC: RESOURCE_EXHAUSTED naming the pool, nothing half-made', async (t) => {
    // Both are placed at once on the stale view, so both really reach the node.
    const [img, dirv] = await Promise.all([
      create('late-img', { kind: 'image' }, 64 * MiB).catch((e) => e),
      create('late-dir', {}, MiB).catch((e) => e),
    ])
    t.equal(img.code, Code.RESOURCE_EXHAUSTED, `image: RESOURCE_EXHAUSTED, not UNKNOWN/INTERNAL (${img.code}: ${img.details})`)
    t.match(img.details, POOL, 'image: the message names the pool')
    t.match(img.details, /no room for an image|No space left on device/, 'image: and says what happened')
    t.match(status('volumes', volumeIdFor('late-img')), { phase: 'Failed', code: 'RESOURCE_EXHAUSTED' }, 'image: the node itself failed it (not the accounting)')
    t.same(leftovers('images', [`${vImg.volume.volume_id}.img`, `${vBlk.volume.volume_id}.img`]), [], 'no half-made image or temp file in images/')
    // The node checks the pool's free space against the volume's size before making it.
    t.equal(dirv.code, Code.RESOURCE_EXHAUSTED, `dir: RESOURCE_EXHAUSTED (${dirv.code}: ${dirv.details})`)
    if (dirv.code !== undefined) t.match(dirv.details, POOL, 'dir: the message names the pool')
  })

  await t.test('once the node reports, the accounting refuses new volumes', async (t) => {
    // ext4 can hand back 2-3 MiB after the stability loop above, and after the node's last report
    // (seen in two fresh-clone runs, with 3142656 bytes free afterwards); the node then tells the
    // controller the truth and this would wait for ever. So while waiting, fill what came back
    // and make the node report again, by asking once more for the volume it refused.
    let poke = 0
    await until('the controller sees the full pool', async () => {
      if ((await available()) < BigInt(MiB)) return true
      if (Date.now() >= poke) {
        poke = Date.now() + 2000
        dd('4k')
        spawnSync('sync')
        await create('late-dir', {}, MiB).catch(() => undefined)
      }
      return false
    })
    const err = await create('after-report', {}, MiB).catch((e) => e)
    t.equal(err.code, Code.RESOURCE_EXHAUSTED, `RESOURCE_EXHAUSTED: ${err.details}`)
    t.match(err.details, POOL)
  })

  // A sparse image's filesystem writes metadata (ext4's block bitmap at its checkpoint) into
  // blocks of the image file that were never allocated; on a full pool that write fails, ext4
  // aborts its journal at unmount, and the next mount fails with EIO until space is back.
  // Images are preallocated (node/datadir.ts), so a full pool cannot leave ext4 inside one
  // without room for its own journal: unstaged, it stages again.
  await t.test('existing volumes keep working', async (t) => {
    for (const [what, v] of [['dir', vDir], ['image', vImg], ['block', vBlk]] as const) {
      t.equal(sha(readData(v)), sha(content), `${what} volume: data reads back`)
      await unpublish(v)
      t.pass(`${what} volume: unpublished and unstaged`)
      const again = await republish(v).catch((e) => e)
      t.equal(again, undefined, `${what} volume: staged and published again (${again?.details ?? 'ok'})`)
      if (again === undefined) t.equal(sha(readData(v)), sha(content), `${what} volume: data intact through the new target`)
    }
  })

  await t.test('snapshots on a full pool: RESOURCE_EXHAUSTED naming the pool, no partial copy', async (t) => {
    // First with no byte free (refused before any copy), then with 1 MiB free, which the copy
    // fills and fails in (its temp copy must go).
    const attempts = [['snap-dir', vDir.volume], ['snap-img', vImg.volume], ['snap-dir-2', vDir.volume], ['snap-img-2', vImg.volume]] as const
    for (const [name, vol] of attempts) {
      if (name === 'snap-dir-2') {
        truncateSync(path.join(pFill.target, 'fill'), statSync(path.join(pFill.target, 'fill')).size - MiB)
        t.ok(freeBytes() >= MiB && freeBytes() < 2 * MiB, `the pod freed 1 MiB (${freeBytes()} bytes free)`)
      }
      const err = await c.CreateSnapshot({ name, source_volume_id: vol.volume_id, parameters: {} }).then(() => undefined, (e) => e)
      t.ok(err, `${name}: refused`)
      t.match(status('snapshots', snapshotIdFor(name)), { phase: 'Failed', code: 'RESOURCE_EXHAUSTED', message: POOL }, `${name}: the node failed it as RESOURCE_EXHAUSTED naming the pool`)
      t.equal(err?.code, Code.RESOURCE_EXHAUSTED, `${name}: the client gets RESOURCE_EXHAUSTED (${err?.code}: ${err?.details})`)
      t.same(leftovers('snapshots', []), [], `${name}: no partial snapshot or temp file`)
    }
  })

  await t.test('the store stays valid', async (t) => {
    const bad: string[] = []
    for (const coll of readdirSync(storeDir)) {
      for (const f of readdirSync(path.join(storeDir, coll))) {
        if (!f.endsWith('.json')) { bad.push(`${coll}/${f}: not a document`); continue }
        try { JSON.parse(readFileSync(path.join(storeDir, coll, f), 'utf8')) } catch (e) { bad.push(`${coll}/${f}: ${String(e)}`) }
      }
    }
    t.same(bad, [], 'every document parses and no temp file is left')
    const { entries } = await c.ListVolumes({})
    const abnormal = entries.filter((e: any) => e.status.volume_condition.abnormal).map((e: any) => e.volume.volume_id).sort()
    t.same(abnormal, [volumeIdFor('late-img'), ...(status('volumes', volumeIdFor('late-dir'))?.phase === 'Failed' ? [volumeIdFor('late-dir')] : [])].sort(),
      'only the volumes the node could not make are abnormal')
  })

  await t.test('deleting volumes gives the space back, and what failed then succeeds', async (t) => {
    await unpublish(pFill)
    await c.DeleteVolume({ volume_id: filler.volume_id })
    t.ok(freeBytes() >= baseline - MiB, `free space is back near the baseline (${Math.round(freeBytes() / MiB)} of ${Math.round(baseline / MiB)} MiB)`)
    await until('the controller sees the space', async () => (await available()) > BigInt(100 * MiB))
    const late = await create('late-img', { kind: 'image' }, 64 * MiB)
    const pLate = await publish(late.volume, mountCap())
    writeSynced(path.join(pLate.target, 'data'))
    t.equal(sha(readFileSync(path.join(pLate.target, 'data'))), sha(content), 'the image that failed is made, published and takes data')
    await unpublish(pLate)
    await create('late-dir', {}, MiB)
    t.pass('the dir volume that failed is made')
    for (const name of ['snap-dir', 'snap-img', 'snap-dir-2', 'snap-img-2']) {
      const ok = await c.CreateSnapshot({ name, source_volume_id: (name.startsWith('snap-dir') ? vDir : vImg).volume.volume_id, parameters: {} }).then(() => true, (e) => e)
      t.equal(ok, true, `${name}: retried with the same name, the snapshot is taken (${ok?.details ?? 'ok'})`)
      await c.DeleteSnapshot({ snapshot_id: snapshotIdFor(name) })
    }
    const fresh = await c.CreateSnapshot({ name: 'snap-fresh', source_volume_id: vImg.volume.volume_id, parameters: {} })
    t.equal(fresh.snapshot.ready_to_use, true, 'a new snapshot is taken')
    await c.DeleteSnapshot({ snapshot_id: fresh.snapshot.snapshot_id })
    t.same(leftovers('snapshots', []), [], 'deleted snapshots leave nothing')

    for (const [what, v] of [['dir', vDir], ['image', vImg], ['block', vBlk]] as const) {
      if (!v.mounted) {
        const again = await republish(v).catch((e) => e)
        t.equal(again, undefined, `${what} volume: with space back it stages again (${again?.details ?? 'ok'})`)
        if (!v.mounted) continue
      }
      t.equal(sha(readData(v)), sha(content), `${what} volume: its data survived the full pool`)
      await unpublish(v)
    }
    for (const id of [vDir, vImg, vBlk].map((v) => v.volume.volume_id).concat(late.volume.volume_id, volumeIdFor('late-dir'))) await c.DeleteVolume({ volume_id: id })
    t.ok(freeBytes() >= emptyFree - MiB, `with every volume gone the pool is as free as when empty (${Math.round(freeBytes() / MiB)} of ${Math.round(emptyFree / MiB)} MiB)`)
    t.same(mountsUnder(dir), [data], 'no mount left but the pool itself')
    t.same(listLoopDevices().filter((l) => parseBackingFile(l.backingFile).path.startsWith(data + '/')).map((l) => l.device), [], 'no loop device left')
  })
})
