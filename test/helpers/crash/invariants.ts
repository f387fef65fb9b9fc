// The invariants checked after every round of a crash run, while no operation is in flight and
// both processes serve. Each returns plain sentences; an empty list means the round is clean.
//
// The rule for temporary names: at a checkpoint every operation the CO started has converged,
// so no copy, mkfs or removal may be under way, and a temporary name under the data root
// (`.<name>.tmp`) is a leak. In the store folders a write may be in flight at any time (the node
// reports its capacity on its own), so a temp file there is allowed only while its writer, named
// by the pid in it, is one of the live processes; a dead writer's temp must be swept by its
// successor when that opens the store.
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import path from 'node:path'
import { blockDeviceSize, freeze, isErrno, listLoopDevices, parseBackingFile, thaw } from '../../../native/index.js'
import { mountsUnder } from '../driver.js'
import type { Cluster } from './cluster.js'
import type { Model, Vol } from './model.js'
import { verifyData } from './ops.js'

const STORE_FILE = /^([A-Za-z0-9][A-Za-z0-9._-]*)\.(spec|status)\.json$/
const STORE_TEMP = /^\..+\.(\d+)\.\d+\.tmp$/

interface Doc { spec?: any; status?: any }

export async function checkInvariants(dir: string, model: Model, cluster: Cluster): Promise<string[]> {
  const bad: string[] = []
  const store = readStore(path.join(dir, 'state/store'), cluster, bad)
  checkStoreMatchesCo(store, model, bad)
  checkDisk(path.join(dir, 'data'), model, bad)
  checkMounts(dir, model, bad)
  await checkLoops(dir, model, bad)
  checkCoPaths(model, bad)
  for (const v of model.vols) bad.push(...(await dataOf(dir, v)))
  for (const s of model.snaps) {
    if (s.kind === 'image') continue // an ext4 image: checked when a restore of it is published
    const p = path.join(dir, 'data/snapshots', s.kind === 'block' ? `${s.id}.img` : s.id)
    if (existsSync(p)) bad.push(...(await verifyData(s, p, `snapshot ${s.name}'s data on disk`)))
  }
  return bad
}

/** Parses every document of the local store; a collection maps id → its parts. */
function readStore(root: string, cluster: Cluster, bad: string[]): Record<string, Map<string, Doc>> {
  const live = new Set([cluster.pid('controller'), cluster.pid('node')])
  const out: Record<string, Map<string, Doc>> = {}
  for (const coll of ['volumes', 'snapshots', 'nodes']) {
    const docs = new Map<string, Doc>()
    out[coll] = docs
    for (const name of readdirSync(path.join(root, coll))) {
      const temp = STORE_TEMP.exec(name)
      if (temp) {
        if (!live.has(Number(temp[1]))) bad.push(`store: ${coll}/${name} is a temp file of dead process ${temp[1]}; its successor should have swept it`)
        continue
      }
      const m = STORE_FILE.exec(name)
      if (!m) {
        bad.push(`store: ${coll}/${name} is no document of the store`)
        continue
      }
      let value
      try {
        value = JSON.parse(readFileSync(path.join(root, coll, name), 'utf8'))
      } catch (e) {
        // A racing rename cannot tear a document; a file gone meanwhile is a writer's business.
        if (isErrno(e, 'ENOENT') || (e as NodeJS.ErrnoException).code === 'ENOENT') continue
        bad.push(`store: ${coll}/${name} does not parse: ${(e as Error).message}`)
        continue
      }
      const d = docs.get(m[1]!) ?? {}
      d[m[2] as 'spec' | 'status'] = value
      docs.set(m[1]!, d)
    }
    for (const [id, d] of docs) if (!d.spec) bad.push(`store: ${coll}/${id} has a status but no spec (an orphan)`)
  }
  return out
}

/** The store holds exactly what the CO made, in the state the CO was told it is in. */
function checkStoreMatchesCo(store: Record<string, Map<string, Doc>>, model: Model, bad: string[]): void {
  const vols = store['volumes']!
  for (const [id, d] of vols) {
    const v = model.vols.find((x) => x.id === id)
    if (!v) {
      bad.push(`store: volume ${id} (${d.spec?.name}) is not one the CO has (deleted, or created twice)`)
      continue
    }
    const s = d.spec
    if (s.name !== v.name) bad.push(`store: volume ${id} is named ${s.name}, the CO made ${v.name}`)
    if (s.kind !== (v.kind === 'dir' ? 'dir' : 'image')) bad.push(`store: volume ${v.name} is of kind ${s.kind}, the CO made ${v.kind}`)
    if (BigInt(s.capacityBytes) !== v.capacity) bad.push(`store: volume ${v.name} has ${s.capacityBytes} bytes; the CO was told ${v.capacity}`)
    if (s.deletionRequestedAt) bad.push(`store: volume ${v.name} is marked for deletion, but the CO never deleted it (or its delete converged without removing it)`)
    const st = d.status
    if (st?.phase !== 'Ready' || st.observedGeneration < s.generation || st.deleteBlocked) {
      bad.push(`store: volume ${v.name} is not realised at its current generation ${s.generation}: ${JSON.stringify(st)}`)
    }
  }
  for (const v of model.vols) if (!vols.has(v.id)) bad.push(`store: volume ${v.name} (${v.id}) is gone from the store`)
  const snaps = store['snapshots']!
  for (const [id, d] of snaps) {
    const s = model.snaps.find((x) => x.id === id)
    if (!s) {
      bad.push(`store: snapshot ${id} (${d.spec?.name}) is not one the CO has`)
      continue
    }
    if (d.spec.sourceVolumeId !== s.sourceId) bad.push(`store: snapshot ${s.name} names source ${d.spec.sourceVolumeId}, not ${s.sourceId}`)
    if (d.spec.deletionRequestedAt) bad.push(`store: snapshot ${s.name} is marked for deletion, but the CO never deleted it`)
    if (d.status?.phase !== 'Ready' || d.status.observedGeneration < d.spec.generation) bad.push(`store: snapshot ${s.name} is not ready: ${JSON.stringify(d.status)}`)
  }
  for (const s of model.snaps) if (!snaps.has(s.id)) bad.push(`store: snapshot ${s.name} (${s.id}) is gone from the store`)
  if (!store['nodes']!.get('crash-node')?.spec) bad.push('store: the node crash-node is not registered')
}

/** Every piece of data on disk belongs to a store object, in the form its kind says. */
function checkDisk(data: string, model: Model, bad: string[]): void {
  for (const name of readdirSync(data)) if (!['volumes', 'images', 'snapshots', 'staged'].includes(name)) bad.push(`disk: unexpected ${path.join(data, name)}`)
  const expect = (folder: string, want: Map<string, 'dir' | 'file'>, sizes: Map<string, bigint>): void => {
    const p = path.join(data, folder)
    const names = existsSync(p) ? readdirSync(p) : []
    for (const name of names) {
      const kind = want.get(name)
      const st = lstatSync(path.join(p, name))
      if (!kind) bad.push(`disk: ${folder}/${name} is owned by no store object${name.startsWith('.') ? ' (a temporary name, with nothing in flight)' : ''}`)
      else if (kind === 'dir' ? !st.isDirectory() : !st.isFile()) bad.push(`disk: ${folder}/${name} is not a ${kind === 'dir' ? 'directory' : 'regular file'}`)
      else if (sizes.has(name) && BigInt(st.size) !== sizes.get(name)) bad.push(`disk: ${folder}/${name} is ${st.size} bytes, the volume ${sizes.get(name)}`)
    }
    for (const name of want.keys()) if (!names.includes(name)) bad.push(`disk: ${folder}/${name} is missing`)
  }
  const isDir = (v: { kind: string }): boolean => v.kind === 'dir'
  expect('volumes', new Map(model.vols.filter(isDir).map((v) => [v.id, 'dir'])), new Map())
  const images = model.vols.filter((v) => !isDir(v))
  expect('images', new Map(images.map((v) => [`${v.id}.img`, 'file'])), new Map(images.map((v) => [`${v.id}.img`, v.capacity])))
  expect('snapshots', new Map(model.snaps.map((s) => (isDir(s) ? [s.id, 'dir'] : [`${s.id}.img`, 'file']))), new Map())
  // The node's notes of where each volume is staged (node/staging-notes.ts): one per staged volume. A
  // crash can leave one behind an unmount, but the CO's repeated NodeUnstageVolume drops it.
  const note = (v: Vol): string => `${v.id}@${createHash('sha256').update(v.staging).digest('hex')}`
  expect('staged', new Map(model.vols.filter((v) => v.staged).map((v) => [note(v), 'file'])), new Map())
}

/** Exactly the mounts the CO's staged and published volumes explain, each once (no stacking). */
function checkMounts(dir: string, model: Model, bad: string[]): void {
  const want: string[] = []
  for (const v of model.vols) {
    if (v.staged) want.push(v.kind === 'block' ? path.join(v.staging, 'device') : v.staging)
    if (v.published) want.push(v.target)
  }
  const got = mountsUnder(dir)
  const count = (a: string[]): Map<string, number> => a.reduce((m, p) => m.set(p, (m.get(p) ?? 0) + 1), new Map<string, number>())
  const [w, g] = [count(want), count(got)]
  for (const [p, n] of g) {
    const owner = model.vols.find((v) => p.startsWith(path.dirname(v.staging) + '/'))
    if (!w.has(p)) bad.push(`mounts: ${p} is mounted, but no staged or published volume explains it (${owner ? `${owner.name}: staged=${owner.staged} published=${owner.published}` : 'no volume'})`)
    else if (n > 1) bad.push(`mounts: ${p} is mounted ${n} times (stacked)`)
  }
  for (const p of w.keys()) if (!g.has(p)) bad.push(`mounts: ${p} should be mounted and is not`)
}

/**
 * One loop device per staged image or block volume, backed by its image; none other backed by
 * the test's files. An image's device is autoclear and the kernel may clear it a moment after
 * the last unmount, so a mismatch is looked at again for up to 2 s before it counts. A mount
 * namespace created elsewhere on the machine while the image was mounted holds a copy of that
 * mount (and so the device) until it goes away: while the only holders are such foreign copies,
 * the check waits up to 20 s more, and a copy still there then is reported with its holder.
 */
async function checkLoops(dir: string, model: Model, bad: string[]): Promise<void> {
  const want = new Map(model.vols.filter((v) => v.staged && v.kind !== 'dir').map((v) => [path.join(dir, 'data/images', `${v.id}.img`), v]))
  let found: string[] = []
  for (let i = 0; i < 440; i++) {
    if (i >= 40 && !found.every((f) => holders(f).foreign)) break
    found = []
    const seen = new Map<string, number>()
    for (const l of listLoopDevices()) {
      const { path: file } = parseBackingFile(l.backingFile)
      if (!file.startsWith(dir + '/')) continue
      seen.set(file, (seen.get(file) ?? 0) + 1)
      if (!want.has(file) || l.deleted) found.push(`loops: ${l.device} backed by ${file}${l.deleted ? ' (deleted)' : ''} is explained by no staged volume`)
      else if (seen.get(file)! > 1) found.push(`loops: ${l.device} is a second device for ${want.get(file)!.name}`)
    }
    for (const [file, v] of want) if (!seen.has(file)) found.push(`loops: staged volume ${v.name} has no loop device`)
    if (found.length === 0) return
    await new Promise((r) => setTimeout(r, 50))
  }
  bad.push(...found.map((f) => `${f}; ${holders(f).text}`))
}

/** Who keeps the loop device named in a finding alive: mounts of it in any mount namespace, open fds. */
function holders(finding: string): { text: string; foreign: boolean } {
  const n = /\/dev\/loop(\d+)/.exec(finding)?.[1]
  if (n === undefined) return { text: '', foreign: false }
  const ours = readlinkSync('/proc/self/ns/mnt')
  const out = new Set<string>()
  let foreign = false
  let local = false
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      for (const l of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
        const f = l.split(' ')
        if (f[2] !== `7:${n}`) continue
        const ns = readlinkSync(`/proc/${pid}/ns/mnt`)
        if (ns === ours) local = true
        else foreign = true
        out.add(`mounted at ${f[4]} in ${ns === ours ? 'our' : 'another'} mount namespace (${ns}, pid ${pid} ${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`)
      }
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`) !== `/dev/loop${n}`) continue
        local = true
        out.add(`open in pid ${pid} (${readFileSync(`/proc/${pid}/comm`, 'utf8').trim()})`)
      }
    } catch { /* gone meanwhile */ }
  }
  const sb = existsSync(`/sys/fs/ext4/loop${n}`) ? 'an ext4 superblock on it is alive' : 'no ext4 superblock on it'
  return { text: `${sb}; ${out.size > 0 ? [...out].slice(0, 6).join('; ') : 'no mount or fd of it in any process'}`, foreign: foreign && !local }
}

/**
 * What the driver made at CO paths is gone once the CO undid it (targets, block device files),
 * sizes of block devices follow expansions, and no staged filesystem is left frozen (a node
 * plugin killed mid-snapshot must not leave writers hanging).
 */
function checkCoPaths(model: Model, bad: string[]): void {
  for (const v of model.vols) {
    if (!v.published && existsSync(v.target)) bad.push(`co: target ${v.target} of unpublished ${v.name} still exists`)
    const device = path.join(v.staging, 'device')
    if (!v.staged && existsSync(device)) bad.push(`co: ${device} of unstaged ${v.name} still exists`)
    if (!v.staged && readdirSync(v.staging).length > 0) bad.push(`co: the staging folder of unstaged ${v.name} is not empty (or still mounted)`)
    if (v.kind === 'block' && v.staged && !v.deviceStale) {
      for (const p of v.published ? [device, v.target] : [device]) {
        const size = blockDeviceSize(p)
        if (size !== v.capacity) bad.push(`co: block device at ${p} of ${v.name} is ${size} bytes, the volume ${v.capacity}`)
      }
    }
    if (v.kind === 'image' && v.staged) {
      try {
        freeze(v.staging)
        thaw(v.staging)
      } catch (e) {
        if (!isErrno(e, 'EBUSY')) throw e
        bad.push(`co: the filesystem of ${v.name} staged at ${v.staging} is frozen with no snapshot in flight (thawed now so the run can go on)`)
        thaw(v.staging)
      }
    }
  }
}

/** What was written through the volume reads back the same, through the mount or from disk. */
async function dataOf(dir: string, v: Vol): Promise<string[]> {
  if (v.data.size === 0) return []
  if (v.published) return verifyData(v, v.target, 'its target')
  if (v.staged) return verifyData(v, v.kind === 'block' ? path.join(v.staging, 'device') : v.staging, 'its staging mount')
  if (v.kind === 'dir') return verifyData(v, path.join(dir, 'data/volumes', v.id), 'its data directory')
  if (v.kind === 'block') return verifyData(v, path.join(dir, 'data/images', `${v.id}.img`), 'its image file')
  return [] // an unstaged ext4 image: read back when next published
}
