// Group snapshots (CreateVolumeGroupSnapshot and friends) with the real processes and real image
// filesystems: the members are consistent with each other, not merely each with itself. A writer
// process appends the same counter to two published image volumes, first A then B, without
// pause. The node freezes every member's filesystem before copying any of them, so in the
// restored pair A's last counter is B's or one more. Snapshots taken one after the other would
// leave B far ahead of A (or A of B): the copy of one runs while the writer goes on in the other.
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { silentLogger } from '../common/log.js'
import { LocalStore } from '../common/store/local.js'
import { groupIdFor, memberIdFor } from '../common/ids.js'
import { client, mountCap, startDriver } from './helpers/driver.js'

const MiB = 1 << 20

function lastCounter(file: string): number {
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n')
  return Number(lines[lines.length - 1])
}

if (process.getuid?.() !== 0) {
  t.skip('group snapshots freeze and copy image filesystems on the node, which needs root', () => {})
} else {
  t.setTimeout(300_000)
  t.test('a group snapshot of two image volumes in use is consistent across its members', async (t) => {
    const { dir, ctl, c, n } = await startDriver(t)
    const g = client('GroupController', ctl.socket)
    t.teardown(() => g.close())
    const caps = await g.GroupControllerGetCapabilities({})
    t.same(caps.capabilities.map((x: any) => x.rpc.type), ['CREATE_DELETE_GET_VOLUME_GROUP_SNAPSHOT'])

    // Two image volumes (ext4, each its own filesystem to freeze), staged where a pod would see them.
    const vols: { id: string; staging: string; context: Record<string, string> }[] = []
    for (const name of ['grp-a', 'grp-b']) {
      const v = (await c.CreateVolume({ name, volume_capabilities: [mountCap()], parameters: { kind: 'image', fsType: 'ext4' }, capacity_range: { required_bytes: String(32 * MiB) } })).volume
      const staging = path.join(dir, `${name}-staging`)
      mkdirSync(staging)
      await n.NodeStageVolume({ volume_id: v.volume_id, volume_capability: mountCap(), volume_context: v.volume_context, staging_target_path: staging })
      vols.push({ id: v.volume_id, staging, context: v.volume_context })
    }
    const [A, B] = vols as [typeof vols[0], typeof vols[0]]
    const writer = spawn('bash', ['-c', 'i=0; while :; do echo $i >> "$1/log"; echo $i >> "$2/log"; i=$((i+1)); done', 'writer', A.staging, B.staging], { stdio: 'ignore' })
    const stopWriter = async () => {
      if (writer.exitCode !== null || writer.signalCode !== null) return
      const gone = new Promise((r) => writer.once('exit', r))
      writer.kill('SIGKILL')
      await gone
    }
    t.teardown(stopWriter)
    // Let the writer get going, so a gap between two copies would show.
    while (!(readFileSync(path.join(B.staging, 'log'), { encoding: 'utf8', flag: 'a+' }).split('\n').length > 2000)) await new Promise((r) => setTimeout(r, 20))

    const req = { name: 'grp-1', source_volume_ids: [B.id, A.id] }
    const made = (await g.CreateVolumeGroupSnapshot(req)).group_snapshot
    t.match(made.group_snapshot_id, /^g-[0-9a-f]{32}$/, 'a group snapshot id')
    t.equal(made.ready_to_use, true, 'ready when the call answers')
    t.same(made.snapshots.map((s: any) => s.source_volume_id).sort(), [A.id, B.id].sort(), 'one member per volume')
    for (const s of made.snapshots) t.equal(s.group_snapshot_id, made.group_snapshot_id, `${s.snapshot_id} names its group`)
    await stopWriter()

    const again = (await g.CreateVolumeGroupSnapshot({ name: 'grp-1', source_volume_ids: [A.id, B.id, A.id] })).group_snapshot
    t.same(again.snapshots.map((s: any) => s.snapshot_id).sort(), made.snapshots.map((s: any) => s.snapshot_id).sort(), 'a repeat (any order, duplicates) is the same group')
    await t.rejects(g.CreateVolumeGroupSnapshot({ name: 'grp-1', source_volume_ids: [A.id] }), { code: 6 }, 'the name with other volumes is ALREADY_EXISTS')
    await t.rejects(g.CreateVolumeGroupSnapshot({ name: 'grp-2', source_volume_ids: [] }), { code: 3, details: /source_volume_ids/ }, 'no volume is INVALID_ARGUMENT naming the field')
    await t.rejects(g.CreateVolumeGroupSnapshot({ name: 'grp-3', source_volume_ids: [A.id, 'v-' + '0'.repeat(32)] }), { code: 5 }, 'a missing volume is NOT_FOUND')
    const got = (await g.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id })).group_snapshot
    t.equal(got.snapshots.length, 2, 'GetVolumeGroupSnapshot finds both members')

    // Restore each member and read the last counter each one holds.
    const last: number[] = []
    for (const s of made.snapshots.sort((x: any, y: any) => (x.source_volume_id === A.id ? -1 : y.source_volume_id === A.id ? 1 : 0))) {
      const r = (await c.CreateVolume({ name: `grp-restore-${s.source_volume_id}`, volume_capabilities: [mountCap()], parameters: { kind: 'image', fsType: 'ext4' },
        capacity_range: { required_bytes: String(32 * MiB) }, volume_content_source: { snapshot: { snapshot_id: s.snapshot_id } } })).volume
      const staging = path.join(dir, `restore-${r.volume_id}`)
      mkdirSync(staging)
      await n.NodeStageVolume({ volume_id: r.volume_id, volume_capability: mountCap(), volume_context: r.volume_context, staging_target_path: staging })
      last.push(lastCounter(path.join(staging, 'log')))
      await n.NodeUnstageVolume({ volume_id: r.volume_id, staging_target_path: staging })
      await c.DeleteVolume({ volume_id: r.volume_id })
    }
    const [a, b] = last as [number, number]
    t.ok(b > 1000, `the writer had written for a while (B's last counter ${b})`)
    t.ok(a === b || a === b + 1, `the members agree: A's last counter ${a}, B's ${b} (A is written first, so equal or one ahead)`)

    await g.DeleteVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id, snapshot_ids: made.snapshots.map((s: any) => s.snapshot_id) })
    t.same(await g.DeleteVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id }), {}, 'deleting it again is OK (idempotent)')
    await t.rejects(g.GetVolumeGroupSnapshot({ group_snapshot_id: made.group_snapshot_id }), { code: 5 }, 'then it is NOT_FOUND')
    t.same((await c.ListSnapshots({})).entries, [], 'and no member snapshot is left')
    for (const v of vols) {
      await n.NodeUnstageVolume({ volume_id: v.id, staging_target_path: v.staging })
      await c.DeleteVolume({ volume_id: v.id })
    }
  })

  // A controller stopped after writing some of a group's members: the node must not copy the
  // ones it sees (the group would not be one cut), and the CO's retry writes the rest.
  t.test('a group written only in part waits for its retry, then is taken whole', async (t) => {
    const { dir, ctl, c } = await startDriver(t)
    const g = client('GroupController', ctl.socket)
    t.teardown(() => g.close())
    const ids: string[] = []
    for (const name of ['part-a', 'part-b']) {
      ids.push((await c.CreateVolume({ name, volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) } })).volume.volume_id)
    }
    ids.sort()
    const gid = groupIdFor('part-1')
    const store = await LocalStore.open(path.join(dir, 'state', 'store'), silentLogger())
    t.teardown(() => store.close())
    const vol = (await store.volumes.refresh(ids[0]!))!.spec
    await store.snapshots.putSpec(memberIdFor(gid, ids[0]!), {
      name: `part-1/${ids[0]}`, sourceVolumeId: ids[0]!, node: vol.node, pool: vol.pool, kind: vol.kind, sizeBytes: vol.capacityBytes,
      accessType: vol.accessType, createdAt: new Date().toISOString(), generation: 1, groupId: gid, groupMembers: ids,
    })
    // Give the node time to act on the lone member, as it wrongly did before it waited.
    await new Promise((r) => setTimeout(r, 1500))
    t.equal((await store.snapshots.refresh(memberIdFor(gid, ids[0]!)))?.status, undefined, 'the node leaves a member of an incomplete group alone')
    const made = (await g.CreateVolumeGroupSnapshot({ name: 'part-1', source_volume_ids: ids })).group_snapshot
    t.equal(made.group_snapshot_id, gid)
    t.same(made.snapshots.map((s: any) => s.source_volume_id).sort(), ids, 'the retry wrote the missing member')
    t.equal(made.ready_to_use, true, 'and both were taken')
    await t.rejects(g.CreateVolumeGroupSnapshot({ name: 'part-1', source_volume_ids: [ids[0]!] }), { code: 6 }, 'the name with fewer volumes is still ALREADY_EXISTS')
    await g.DeleteVolumeGroupSnapshot({ group_snapshot_id: gid })
    for (const id of ids) await c.DeleteVolume({ volume_id: id })
  })
}
