// Project quotas, enforced, on a stock kernel (this host's kernel has no QFMT_V2 and no XFS
// quota, so test/process-quota.test.ts can only prove the refusal there). One controller and node
// plugin serve two pools: default on xfs mounted prjquota (/dev/vda), ext4 on ext4 made with
// -O project,quota and mounted prjquota (/dev/vdb); scripts/vm/guest.sh mounts both.
// Writers run as a pod's processes do, without CAP_SYS_RESOURCE (see asPod). A full project
// quota answers EDQUOT on ext4 and ENOSPC on xfs (xfs reports project quotas as a full disk).
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { rmSync, statfsSync } from 'node:fs'
import path from 'node:path'
import { getProjectId, getProjectQuota } from '../../native/index.js'
import { MiB, VmDriver, createAndPublish, kernelRelease, mountCap, podFill, podTouch, type Published } from '../helpers/vm-rig.js'

const pools = [
  { fs: 'xfs', pool: 'default', root: '/scratch/xfs/quota/data', device: '/dev/vda', full: 'ENOSPC' },
  { fs: 'ext4', pool: 'ext4', root: '/scratch/ext4/quota', device: '/dev/vdb', full: 'EDQUOT' },
]
const paramsOf = (pool: string, extra: Record<string, string> = {}) => ({ ...(pool !== 'default' && { pool }), quota: 'required', ...extra })
const bytesOf = (usage: Array<{ unit: string; total: string; used: string; available: string }>, unit: string) => {
  const u = usage.find((x) => x.unit === unit)
  return u && { total: Number(u.total), used: Number(u.used), available: Number(u.available) }
}
const dfSize = (p: string): number => Number(spawnSync('df', ['-B1', '--output=size', p], { encoding: 'utf8' }).stdout.trim().split('\n').pop())
const statfsBytes = (p: string): number => statfsSync(p).blocks * statfsSync(p).bsize

// A pool whose filesystem is mounted over another mount at the same point (an xfs, here on a
// loop device, over a tmpfs): the filesystem that holds the pool is the topmost one.
const STACKED = '/scratch/stacked'
function stackMounts(): void {
  const sh = (script: string) => spawnSync('sh', ['-ec', script], { encoding: 'utf8' })
  const r = sh(`mkdir -p ${STACKED}; mount -t tmpfs under ${STACKED}
truncate -s 512M /scratch/plain/stacked.img; mkfs.xfs -q -f /scratch/plain/stacked.img
mount -o loop,prjquota /scratch/plain/stacked.img ${STACKED}`)
  if (r.status !== 0) throw new Error(`cannot stack the mounts at ${STACKED}: ${r.stderr}`)
}

t.test(`project quotas on ${kernelRelease()}`, async (t) => {
  stackMounts()
  const d = await new VmDriver('/scratch/xfs/quota', ['--pool', 'ext4=/scratch/ext4/quota', '--pool', `stacked=${STACKED}/data`]).start()
  t.teardown(() => d.kill())
  const unpublishAndDelete = async (p: Published) => {
    await d.n.NodeUnpublishVolume({ volume_id: p.volume.volume_id, target_path: p.target })
    await d.n.NodeUnstageVolume({ volume_id: p.volume.volume_id, staging_target_path: p.staging })
    await d.c.DeleteVolume({ volume_id: p.volume.volume_id }, 300_000)
  }

  for (const { fs, pool, root, full } of pools) {
    await t.test(`${fs}: a 64 MiB dir volume is held to 64 MiB, grows online, and limits files`, async (t) => {
      const p = await createAndPublish(d, `q-${fs}`, mountCap(), paramsOf(pool), 64 * MiB)
      const id = p.volume.volume_id
      t.equal(p.volume.volume_context['tscsi.dev/quota'], 'enforced', 'quota: required succeeds, and the volume says it is enforced')
      const projectId = getProjectId(path.join(root, 'volumes', id))
      t.ok(projectId.projectId >= 1_000_000 && projectId.inherit, `the volume folder carries its own project id, inherited (${projectId.projectId})`)
      t.equal(statfsBytes(p.target), 64 * MiB, 'statfs in the target shows 64 MiB, not the disk')
      t.equal(dfSize(p.target), 64 * MiB, 'so does df')

      const big = path.join(p.target, 'big')
      const filled = podFill(big, 80)
      t.equal(filled.capSysResource, false, 'the writer runs without CAP_SYS_RESOURCE, as a pod does')
      t.equal(filled.code, full, `writing stops with ${full} (after ${filled.written / MiB} MiB)`)
      t.ok(filled.written >= 63 * MiB && filled.written <= 64 * MiB, `the 65th MiB is refused, not an earlier one (${filled.written / MiB} MiB written)`)

      const stats = await d.n.NodeGetVolumeStats({ volume_id: id, volume_path: p.target })
      const bytes = bytesOf(stats.usage, 'BYTES')
      t.equal(bytes?.total, 64 * MiB, 'NodeGetVolumeStats: the quota is the total')
      t.ok(bytes && bytes.used >= filled.written && bytes.used <= 64 * MiB, `NodeGetVolumeStats: the quota's usage is the used bytes (${bytes?.used})`)
      t.equal(bytes && bytes.total - bytes.used, bytes?.available, 'available is what the quota leaves')
      t.equal(stats.volume_condition?.abnormal, false, 'the volume condition is normal')

      rmSync(big)
      const grown = await d.c.ControllerExpandVolume({ volume_id: id, capacity_range: { required_bytes: String(128 * MiB) } }, 300_000)
      t.equal(grown.capacity_bytes, String(128 * MiB), 'ControllerExpandVolume answers 128 MiB')
      if (grown.node_expansion_required) {
        await d.n.NodeExpandVolume({ volume_id: id, volume_path: p.target, staging_target_path: p.staging, capacity_range: { required_bytes: String(128 * MiB) } })
      }
      t.equal(statfsBytes(p.target), 128 * MiB, 'while published, statfs shows the new 128 MiB')
      const more = podFill(big, 160)
      t.equal(more.code, full, 'the grown volume is still held to its size')
      t.ok(more.written >= 127 * MiB && more.written <= 128 * MiB, `the limit is now 128 MiB (${more.written / MiB} MiB written)`)
      rmSync(big)

      await d.c.ControllerModifyVolume({ volume_id: id, mutable_parameters: { quotaInodes: '40' } }, 300_000)
      const touched = podTouch(p.target, 100)
      t.equal(touched.code, full, `quotaInodes: 40 stops file creation with ${full} (after ${touched.made} files)`)
      t.ok(touched.made >= 38 && touched.made <= 40, `at the 40th inode, the volume's own folder included (${touched.made} files)`)
      const inodes = bytesOf((await d.n.NodeGetVolumeStats({ volume_id: id, volume_path: p.target })).usage, 'INODES')
      t.equal(inodes?.total, 40, 'NodeGetVolumeStats reports the inode limit')
      t.ok(inodes && inodes.used >= touched.made, `and the inodes in use (${inodes?.used})`)
      await unpublishAndDelete(p)
    })
  }

  await t.test('a pool on a filesystem mounted over another mount gets quotas', async (t) => {
    const res = await d.c.CreateVolume({ name: 'q-stacked', volume_capabilities: [mountCap()], parameters: paramsOf('stacked'), capacity_range: { required_bytes: String(64 * MiB) } }, 300_000)
      .catch((e: { details?: string }) => ({ error: e.details }))
    t.equal('error' in res ? res.error : res.volume.volume_context['tscsi.dev/quota'], 'enforced',
      'quota: required on the topmost filesystem (xfs, prjquota) at the pool\'s mount point')
    if (!('error' in res)) await d.c.DeleteVolume({ volume_id: res.volume.volume_id }, 300_000)
  })

  await t.test('project ids: never given twice on a filesystem, across a restart of both processes', async (t) => {
    const idsOf = new Map<string, Map<string, number>>(pools.map((p) => [p.fs, new Map()]))
    const create = async (round: string) => {
      for (const { fs, pool, root } of pools) {
        for (let i = 0; i < 3; i++) {
          const { volume } = await d.c.CreateVolume({ name: `ids-${fs}-${round}-${i}`, volume_capabilities: [mountCap()], parameters: paramsOf(pool), capacity_range: { required_bytes: String(16 * MiB) } }, 300_000)
          idsOf.get(fs)!.set(volume.volume_id, getProjectId(path.join(root, 'volumes', volume.volume_id)).projectId)
        }
      }
    }
    await create('a')
    await d.kill()
    await d.start()
    await create('b')
    for (const { fs, root } of pools) {
      const ids = idsOf.get(fs)!
      t.equal(new Set(ids.values()).size, ids.size, `${fs}: ${ids.size} volumes, ${ids.size} project ids (${[...ids.values()].join(' ')})`)
      for (const [vol, pid] of ids) t.equal(getProjectId(path.join(root, 'volumes', vol)).projectId, pid, `${fs}: ${vol} kept its id across the restart`)
      for (const vol of ids.keys()) await d.c.DeleteVolume({ volume_id: vol }, 300_000)
    }
  })

  // onDelete: retain leaves the folder, tagged with its project id and counted in that
  // project's usage; a new volume given the same id would share the old data's quota.
  await t.test("project ids: a retained volume's data keeps its id to itself", async (t) => {
    for (const { fs, pool, root, device } of pools) {
      const r = await createAndPublish(d, `keep-${fs}`, mountCap(), paramsOf(pool, { onDelete: 'retain' }), 32 * MiB)
      t.equal(podFill(path.join(r.target, 'kept'), 8).written, 8 * MiB, `${fs}: 8 MiB written to the volume that will be retained`)
      await unpublishAndDelete(r)
      const retained = getProjectId(path.join(root, 'volumes', r.volume.volume_id)).projectId
      t.ok(getProjectQuota(device, retained).usedBytes >= 8n * BigInt(MiB), `${fs}: the retained data still counts against project ${retained}`)
      const next = await createAndPublish(d, `after-keep-${fs}`, mountCap(), paramsOf(pool), 32 * MiB)
      const nextId = getProjectId(path.join(root, 'volumes', next.volume.volume_id)).projectId
      t.not(nextId, retained, `${fs}: a new volume does not get the retained data's project id (${nextId})`)
      const used = bytesOf((await d.n.NodeGetVolumeStats({ volume_id: next.volume.volume_id, volume_path: next.target })).usage, 'BYTES')?.used ?? -1
      t.ok(used < MiB, `${fs}: a new, empty volume reports nothing used (${used} bytes)`)
      const w = podFill(path.join(next.target, 'x'), 31)
      t.equal(w.code, undefined, `${fs}: the new volume holds 31 of its 32 MiB (${w.written / MiB} MiB written, ${w.code ?? 'no error'})`)
      await unpublishAndDelete(next)
    }
  })
})
