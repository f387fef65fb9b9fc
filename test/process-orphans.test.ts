// Data no store object owns, with the real controller and node plugin: it is reported (a log line
// naming the path, and the gauge tscsi_node_orphaned_data), left alone by default, and removed
// only with --remove-orphans-after once it stayed unowned that long. What is owned (a live
// volume, a snapshot's copy, data kept by onDelete: retain) and names the driver never makes
// (lost+found) are never removed.
import t from 'tap'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { metricsSocketFor } from '../common/process-metrics.js'
import { client, kill9, mountCap, start, testRig, type Proc } from './helpers/driver.js'

const root = process.getuid?.() === 0

function metricsOf(p: Proc): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ socketPath: metricsSocketFor(p.socket), path: '/metrics' }, (res) => {
      let body = ''
      res.on('data', (b) => (body += b))
      res.on('end', () => resolve(body))
    }).on('error', reject)
  })
}

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

t.test('orphaned data is reported, kept by default, and removed only with --remove-orphans-after', { skip: root ? false : 'needs root (the node plugin mounts)' }, async (t) => {
  const rig = testRig(t)
  const dir = rig.dir
  const data = path.join(dir, 'data')
  const fast = ['--capacity-interval', '300ms']
  const ctl = await start('controller', dir)
  let node = await start('node', dir, fast)
  rig.procs.push(ctl, node)
  const c = client('Controller', ctl.socket)
  t.teardown(() => c.close())

  // Owned: a live dir volume, a snapshot of it, and a volume deleted with onDelete: retain.
  const create = async (name: string, parameters: Record<string, string> = {}) =>
    (await c.CreateVolume({ name, volume_capabilities: [mountCap()], parameters, capacity_range: { required_bytes: String(1 << 20) } })).volume
  const live = await create('live')
  const snap = (await c.CreateSnapshot({ name: 'snap', source_volume_id: live.volume_id })).snapshot
  await until('the snapshot to be ready', async () => (await c.ListSnapshots({ snapshot_id: snap.snapshot_id })).entries[0]?.snapshot.ready_to_use === true)
  const kept = await create('kept', { onDelete: 'retain' })
  await c.DeleteVolume({ volume_id: kept.volume_id })
  t.ok(existsSync(path.join(data, 'volumes', kept.volume_id)), 'onDelete: retain kept the data in place')

  // Unowned: what a crashed plugin or a hand-deleted TscsiVolume leaves behind.
  const lostDir = path.join(data, 'volumes', `v-${'1'.repeat(32)}`)
  mkdirSync(lostDir)
  writeFileSync(path.join(lostDir, 'db.bin'), 'pod data')
  const lostImage = path.join(data, 'images', `v-${'2'.repeat(32)}.img`)
  writeFileSync(lostImage, Buffer.alloc(4096))
  const lostSnap = path.join(data, 'snapshots', `s-${'3'.repeat(32)}`)
  mkdirSync(lostSnap, { recursive: true })
  const foreign = path.join(data, 'volumes', 'lost+found')
  mkdirSync(foreign)

  await until('the three orphans and the foreign folder to be reported', () =>
    [lostDir, lostImage, lostSnap, foreign].every((p) => node.logs().includes(p)))
  const m = await metricsOf(node)
  t.match(m, /tscsi_node_orphaned_data\{pool="default",kind="volume"[^}]*\} 1\b/, 'the gauge counts the orphaned volume directory')
  t.match(m, /tscsi_node_orphaned_data\{pool="default",kind="image"[^}]*\} 1\b/, '... the image')
  t.match(m, /tscsi_node_orphaned_data\{pool="default",kind="snapshot"[^}]*\} 1\b/, '... the snapshot copy')
  t.match(m, /tscsi_node_orphaned_data\{pool="default",kind="unknown"[^}]*\} 1\b/, '... and the folder the driver never makes')
  const reported = node.logs().split('\n').filter((l) => l.includes('no volume or snapshot owns')).join('\n')
  for (const owned of [live.volume_id, kept.volume_id, snap.snapshot_id]) t.notMatch(reported, owned, `${owned} is owned and never reported`)
  await new Promise((r) => setTimeout(r, 1500))
  t.ok([lostDir, lostImage, lostSnap, foreign].every(existsSync), 'without --remove-orphans-after nothing is removed')

  // With the flag: removed once unowned for 1 s (the clock starts when this process first sees it).
  await kill9(node)
  node = await start('node', dir, [...fast, '--remove-orphans-after', '1s'])
  rig.procs.push(node)
  await until('the orphans to be removed', () => ![lostDir, lostImage, lostSnap].some(existsSync))
  t.match(node.logs(), /removed data no volume or snapshot owned/, 'each removal is logged')
  t.ok(existsSync(foreign), 'a name the driver never makes is never removed')
  t.ok(existsSync(path.join(data, 'volumes', live.volume_id)), 'the live volume is untouched')
  t.ok(existsSync(path.join(data, 'volumes', kept.volume_id)), 'the retained data is untouched')
  t.ok(existsSync(path.join(data, 'snapshots', snap.snapshot_id)), "the snapshot's copy is untouched")

  // A volume of the same name as the retained one takes its data back, and it stays owned.
  const again = await create('kept')
  t.equal(again.volume_id, kept.volume_id, 'the same name is the same volume id')
  await c.DeleteSnapshot({ snapshot_id: snap.snapshot_id })
  for (const v of [live, again]) await c.DeleteVolume({ volume_id: v.volume_id })
})
