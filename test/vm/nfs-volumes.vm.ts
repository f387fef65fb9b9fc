// kind: nfs end to end on a stock kernel (issue 16): the real controller and two node plugins
// with different node ids (one local store, two data roots), the guest's own nfsd serving the
// export over loopback. A volume made through the controller is mounted by both nodes at once
// (MULTI_NODE_MULTI_WRITER): what one node writes the other reads. onDelete's three policies,
// the hostile inputs of the issue (option injection, a newline, "..", a symlink planted on the
// server), and a stopped server (a clear error in bounded time, then recovery) are checked
// against the export's real disk.
import t from 'tap'
import { status } from '@grpc/grpc-js'
import { randomBytes } from 'node:crypto'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, statfsSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { CONTEXT } from '../../common/keys.js'
import { client, spawnDriver, type AccessMode, type CsiClient, type Proc } from '../helpers/driver.js'
import type { VolumeCapability } from '../../proto/gen/csi/v1/VolumeCapability.js'
import { BACKING, EXPORT, mountAt, startNfsServer, type NfsServer } from '../helpers/nfs-server.js'
import { outcome, codeName } from '../helpers/rpc-outcome.js'
import { run } from '../helpers/clients.js'
import { kernelRelease, MiB, PROJECT, sha256 } from '../helpers/vm-rig.js'
import { writeTree } from '../helpers/tree.js'
import { treeDigest } from '../../node/digest.js'
import type { VolumeContentSource } from '../../proto/gen/csi/v1/VolumeContentSource.js'

const DIR = '/scratch/plain/nfs-driver'
const CSC = path.join(PROJECT, '.tools/bin/csc-grpc-current')
const LONG = 300_000
const cap = (mode: AccessMode = 'MULTI_NODE_MULTI_WRITER', flags: string[] = []): VolumeCapability =>
  ({ mount: { fs_type: '', mount_flags: flags, volume_mount_group: '' }, access_mode: { mode }, access_type: 'mount' })
const PVC = { 'csi.storage.k8s.io/pvc/namespace': 'shop', 'csi.storage.k8s.io/pv/name': 'unused' }
const params = (extra: Record<string, string> = {}) => ({ kind: 'nfs', server: '127.0.0.1', share: EXPORT, subDir: '${pvc.namespace}/${pvc.name}', ...PVC, ...extra })

interface Node { id: string; proc: Proc; n: CsiClient<'Node'> }

t.test(`nfs volumes through the controller and two node plugins on ${kernelRelease()}`, async (t) => {
  const procs: Proc[] = []
  t.teardown(async () => {
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
  })
  let server!: NfsServer
  await t.test('the server', async (st) => { server = await startNfsServer(st, t) })

  rmSync(DIR, { recursive: true, force: true })
  const sockets = path.join('/tmp', 'tscsi-nfs-sockets')
  mkdirSync(sockets, { recursive: true })
  const launch = async (kind: 'controller' | 'node', id = 'ctl', extra: string[] = []) => {
    const proc = await spawnDriver({ kind, dir: DIR, extra, distRoot: PROJECT, socket: path.join(sockets, `${id}.sock`), nodeId: id, readyTimeoutMs: LONG, pollMs: 200 })
    procs.push(proc)
    return proc
  }
  const ctl = await launch('controller')
  const c = client('Controller', ctl.socket)
  // Two nodes: one store (the state dir), each its own data root, as two machines would have.
  const nodes: Node[] = []
  for (const id of ['vm-a', 'vm-b']) {
    const proc = await launch('node', id, ['--data-root', path.join(DIR, `data-${id}`)])
    nodes.push({ id, proc, n: client('Node', proc.socket) })
  }
  t.teardown(() => { c.close(); for (const n of nodes) n.n.close() })

  const stage = (node: Node, v: { volume_id: string; volume_context: Record<string, string> }, name: string, mode?: AccessMode, flags?: string[]) => {
    const staging = path.join(DIR, 'kubelet', node.id, `${name}-staging`)
    const target = path.join(DIR, 'kubelet', node.id, `${name}-pod`, 'vol')
    mkdirSync(staging, { recursive: true })
    mkdirSync(path.dirname(target), { recursive: true })
    const base = { volume_id: v.volume_id, volume_capability: cap(mode, flags), volume_context: v.volume_context }
    return {
      staging, target, base,
      up: async () => {
        await node.n.NodeStageVolume({ ...base, staging_target_path: staging }, LONG)
        await node.n.NodePublishVolume({ ...base, staging_target_path: staging, target_path: target }, LONG)
      },
      down: async () => {
        await node.n.NodeUnpublishVolume({ volume_id: v.volume_id, target_path: target }, LONG)
        await node.n.NodeUnstageVolume({ volume_id: v.volume_id, staging_target_path: staging }, LONG)
      },
    }
  }
  const create = (name: string, extra: Record<string, string> = {}, mode?: AccessMode, flags?: string[], source?: VolumeContentSource) =>
    c.CreateVolume({
      name, volume_capabilities: [cap(mode, flags)], parameters: params({ 'csi.storage.k8s.io/pvc/name': name, ...extra }), capacity_range: { required_bytes: String(64 * MiB) },
      ...(source && { volume_content_source: source }),
    }, LONG)

  await t.test('CreateVolume makes <share>/shop/<claim> on the server, with no topology', async (t) => {
    const started = Date.now()
    const { volume } = await create('data')
    t.comment(`CreateVolume took ${Date.now() - started} ms`)
    t.same(volume.accessible_topology, [], 'accessible from every node')
    t.same(volume.volume_context, { [CONTEXT.kind]: 'nfs', [CONTEXT.server]: '127.0.0.1', [CONTEXT.share]: EXPORT, [CONTEXT.subDir]: 'shop/data' })
    const st = lstatSync(`${BACKING}/shop/data`)
    t.ok(st.isDirectory(), 'the directory is on the export\'s disk')
    t.equal(st.mode & 0o777, 0o777, 'mode 0777: pods run as any user')
    const again = await create('data')
    t.equal(again.volume.volume_id, volume.volume_id, 'a repeated CreateVolume answers the same volume')
    const clash = await outcome(create('data', { subDir: 'shop' }))
    t.equal(codeName(clash.code), 'ALREADY_EXISTS', `the same name with another subDir: ${clash.message}`)
    const nested = await outcome(create('other', { subDir: 'shop/data/inner' }))
    t.equal(codeName(nested.code), 'INVALID_ARGUMENT', `a directory inside another volume's: ${nested.message}`)
    t.match(nested.message, /overlaps volume/)
  })

  await t.test('GetCapacity of the class: the export\'s free space, as a node that mounts it sees it', async (t) => {
    const req = { parameters: params(), volume_capabilities: [cap()] }
    const started = Date.now()
    const got = await c.GetCapacity(req, LONG)
    t.comment(`GetCapacity took ${Date.now() - started} ms (a node mounted the share, took its statfs, unmounted)`)
    const disk = statfsSync(BACKING, { bigint: true })
    const free = disk.bavail * disk.bsize
    const off = BigInt(got.available_capacity) - free
    t.ok(off > -16n * 1048576n && off < 16n * 1048576n, `${got.available_capacity} bytes free; the server's disk says ${free}`)
    t.equal(got.maximum_volume_size?.value, got.available_capacity, 'one volume may take all of it')
    const again = await c.GetCapacity({ ...req, accessible_topology: { segments: { 'topology.tscsi.dev/node': 'vm-b' } } }, LONG)
    t.equal(again.available_capacity, got.available_capacity, 'the same for any segment, from the measurement just taken')
    t.same(readdirSync(path.join(DIR, 'data-vm-a')).filter((f) => f === 'nfs-work').flatMap(() => readdirSync(path.join(DIR, 'data-vm-a/nfs-work'))), [], 'no work mount left')
  })

  await t.test('MULTI_NODE_MULTI_WRITER: both nodes mount it; what one writes, the other reads', async (t) => {
    const { volume } = await create('data')
    const [a, b] = nodes as [Node, Node]
    const sa = stage(a, volume, 'data')
    const sb = stage(b, volume, 'data', 'MULTI_NODE_MULTI_WRITER', ['nfsvers=4.2', 'nosharecache'])
    await sa.up()
    await sb.up()
    t.equal(mountAt(sa.staging)?.fsType, 'nfs4', 'node a staged it with mount(2), nfs4')
    t.equal(mountAt(sa.staging)?.source, `127.0.0.1:${EXPORT}/shop/data`)
    t.match((mountAt(sb.staging)?.superOptions ?? []).join(','), /vers=4\.2/, 'node b with the class\'s own options')
    t.not(mountAt(sa.staging)?.dev, mountAt(sb.staging)?.dev, 'two superblocks: the bytes cross the server')
    await a.n.NodeStageVolume({ ...sa.base, staging_target_path: sa.staging }, LONG)
    await a.n.NodePublishVolume({ ...sa.base, staging_target_path: sa.staging, target_path: sa.target }, LONG)
    t.pass('stage and publish again are idempotent')

    const bytes = randomBytes(4 * MiB)
    writeFileSync(`${sa.target}/from-a`, bytes)
    writeFileSync('/tmp/nfs-expected', bytes)
    t.equal(sha256(`${sb.target}/from-a`), sha256('/tmp/nfs-expected'), 'node b reads the 4 MiB node a wrote')
    writeFileSync(`${sb.target}/from-b`, 'written on node b\n')
    t.equal(readFileSync(`${sa.target}/from-b`, 'utf8'), 'written on node b\n', 'and the other way round')
    t.equal(sha256(`${BACKING}/shop/data/from-a`), sha256('/tmp/nfs-expected'), 'on the server\'s disk')

    const stats = await a.n.NodeGetVolumeStats({ volume_id: volume.volume_id, volume_path: sa.target }, LONG)
    t.equal(stats.volume_condition.abnormal, false, stats.volume_condition.message)
    t.match(stats.volume_condition.message, /no per-volume limit/)
    t.ok(BigInt(stats.usage[0]!.total) > 0n, `the export's size: ${stats.usage[0]!.total} bytes`)

    // The node plugin restarts (an upgrade): it finds its nfs mounts again and unpublishes them.
    a.proc.child.kill('SIGKILL')
    await a.proc.exited
    a.proc = await launch('node', 'vm-a', ['--data-root', path.join(DIR, 'data-vm-a')])
    a.n.close()
    a.n = client('Node', a.proc.socket)
    await sa.down()
    await sb.down()
    t.equal(mountAt(sa.target), undefined, 'node a\'s publication is gone, after a restart')
    t.equal(mountAt(sa.staging), undefined, 'and its staging mount')
    t.equal(mountAt(sb.staging), undefined, 'node b\'s too')
    t.notOk(existsSync(path.join(DIR, 'data-vm-a', 'nfs', volume.volume_id)), 'the stage note went with the last mount')

    await c.DeleteVolume({ volume_id: volume.volume_id }, LONG)
    t.notOk(existsSync(`${BACKING}/shop/data`), 'onDelete: delete removed the directory from the server')
    t.ok(existsSync(`${BACKING}/shop`), 'and left its parent, which other claims of the namespace share')
  })

  await t.test('onDelete: retain keeps the directory; archive renames it beside itself', async (t) => {
    for (const policy of ['retain', 'archive']) {
      const { volume } = await create(`keep-${policy}`, { onDelete: policy })
      writeFileSync(`${BACKING}/shop/keep-${policy}/file`, policy)
      await c.DeleteVolume({ volume_id: volume.volume_id }, LONG)
      if (policy === 'retain') {
        t.equal(readFileSync(`${BACKING}/shop/keep-retain/file`, 'utf8'), 'retain', 'retain: the data stays where it was')
      } else {
        t.notOk(existsSync(`${BACKING}/shop/keep-archive`), 'archive: the directory is no longer at its name')
        const archived = readdirSync(`${BACKING}/shop`).filter((n) => n.startsWith('archived-keep-archive-'))
        t.equal(archived.length, 1, `archived as ${archived[0]}`)
        t.equal(readFileSync(`${BACKING}/shop/${archived[0]}/file`, 'utf8'), 'archive', 'with its data')
      }
    }
  })

  await t.test('a snapshot on the export restores bit for bit, metadata included; a clone too', async (t) => {
    // NFS 4.2: user xattrs and SEEK_DATA/SEEK_HOLE cross the wire (4.1 has neither).
    const v42 = ['nfsvers=4.2']
    const { volume } = await create('snapped', {}, undefined, v42)
    const src = `${BACKING}/shop/snapped`
    writeTree(src)
    const before = await treeDigest(src)
    const snap = (await c.CreateSnapshot({ name: 'nfs-snap-1', source_volume_id: volume.volume_id }, LONG)).snapshot
    for (let i = 0; i < 300 && !snap.ready_to_use; i++) {
      await new Promise((r) => setTimeout(r, 1000))
      snap.ready_to_use = (await c.ListSnapshots({ snapshot_id: snap.snapshot_id })).entries[0]?.snapshot.ready_to_use ?? false
    }
    t.ok(snap.ready_to_use, 'the snapshot becomes ready')
    const copy = `${BACKING}/.tscsi-snapshots/${snap.snapshot_id}`
    t.equal(await treeDigest(copy), before, 'the snapshot on the server equals the volume as it was')
    writeFileSync(`${src}/after-the-snapshot`, 'later')
    const restored = await create('restored', {}, undefined, v42, { snapshot: { snapshot_id: snap.snapshot_id } })
    t.match(restored.volume.content_source, { snapshot: { snapshot_id: snap.snapshot_id } }, 'the restore names its snapshot')
    const cloneOf = await treeDigest(src)
    const cloned = await create('cloned', {}, undefined, v42, { volume: { volume_id: volume.volume_id } })
    t.ok(cloned.volume.volume_id, 'a clone of the live volume')
    // The new directories are 0777 like any volume's, as the source's own is: the digests match.
    t.equal(await treeDigest(`${BACKING}/shop/restored`), before, 'the restore equals the snapshot, bit for bit')
    t.equal(await treeDigest(`${BACKING}/shop/cloned`), cloneOf, 'the clone equals its source as it was then')
    const local = await outcome(c.CreateVolume({ name: 'into-dir', volume_capabilities: [cap('SINGLE_NODE_WRITER')], parameters: { kind: 'dir' }, volume_content_source: { snapshot: { snapshot_id: snap.snapshot_id } } }, LONG))
    t.equal(codeName(local.code), 'INVALID_ARGUMENT', `nfs data restored into a dir volume: ${local.message}`)
    await c.DeleteSnapshot({ snapshot_id: snap.snapshot_id }, LONG)
    t.notOk(existsSync(copy), 'DeleteSnapshot removes the copy from the server')
    for (const v of [restored.volume, cloned.volume, volume]) await c.DeleteVolume({ volume_id: v.volume_id }, LONG)
    t.same(readdirSync(`${BACKING}/shop`).filter((n) => ['snapped', 'restored', 'cloned'].includes(n)), [], 'and the volumes their directories')
  })

  await t.test('seed 003\'s csc walk-through on an nfs class: MULTI_NODE_MULTI_WRITER,mount,xfs,uid=500', async (t) => {
    // The project's csc-style client (test/clients/csc-go), built by scripts/client-tools.sh
    // (scripts/test-vm.sh builds it before booting the guest).
    const csc = (sock: string, ...args: string[]) => run(CSC, ['--endpoint', `unix://${sock}`, ...args])
    const ok = (r: { code: number; err: string }, what: string): void => void t.equal(r.code, 0, `${what} (${r.err})`)
    const seedCap = ['--cap', 'MULTI_NODE_MULTI_WRITER,mount,xfs,uid=500']
    for (const sock of [ctl.socket, ...nodes.map((n) => n.proc.socket)]) t.equal((await csc(sock, 'identity', 'plugin-info')).out?.name, 'local.tscsi.dev', 'identity plugin-info')
    const created = await csc(ctl.socket, ...seedCap, '--params', `kind=nfs,server=127.0.0.1,share=${EXPORT},subDir=seed003`, '--req-bytes', String(64 * MiB), 'controller', 'new', 'pvc-seed003')
    ok(created, 'controller new')
    const vol = created.out?.volume ?? {}
    const st = lstatSync(`${BACKING}/seed003`)
    t.equal(st.uid, 500, 'uid=500: the new directory belongs to uid 500 (NFS has no such mount option; the node chowns the directory)')
    const context = ['--vol-context', Object.entries(vol.volume_context ?? {}).map(([k, v]) => `${k}=${v}`).join(',')]
    const paths = nodes.map((n) => ({ staging: path.join(DIR, 'kubelet', n.id, 'seed003-staging'), target: path.join(DIR, 'kubelet', n.id, 'seed003-pod', 'mount') }))
    for (const [i, n] of nodes.entries()) {
      const { staging, target } = paths[i]!
      mkdirSync(staging, { recursive: true })
      mkdirSync(path.dirname(target), { recursive: true })
      ok(await csc(n.proc.socket, ...seedCap, ...context, '--staging-target-path', staging, 'node', 'stage', vol.volume_id), `node ${n.id}: node stage`)
      ok(await csc(n.proc.socket, ...seedCap, ...context, '--staging-target-path', staging, '--target-path', target, 'node', 'publish', vol.volume_id), `node ${n.id}: node publish`)
    }
    writeFileSync(`${paths[0]!.target}/hello.txt`, 'I am here')
    t.equal(readFileSync(`${paths[1]!.target}/hello.txt`, 'utf8'), 'I am here', 'written on one node, read on the other')
    for (const [i, n] of nodes.entries()) {
      ok(await csc(n.proc.socket, '--target-path', paths[i]!.target, 'node', 'unpublish', vol.volume_id), `node ${n.id}: node unpublish`)
      ok(await csc(n.proc.socket, '--staging-target-path', paths[i]!.staging, 'node', 'unstage', vol.volume_id), `node ${n.id}: node unstage`)
    }
    t.same((await csc(ctl.socket, 'controller', 'list-volumes')).out?.entries?.map((e: { volume?: { volume_id?: string } }) => e.volume?.volume_id), [vol.volume_id], 'list-volumes')
    ok(await csc(ctl.socket, 'controller', 'del', vol.volume_id), 'controller del')
    t.notOk(existsSync(`${BACKING}/seed003`), 'the directory is gone from the server')
  })

  await t.test('hostile input: refused with the field named, nothing made outside the share', async (t) => {
    const cases: [Record<string, string>, string, RegExp][] = [
      [{ server: 'x,vers=2' }, 'INVALID_ARGUMENT', /parameters\[server\]/],
      [{ share: `${EXPORT}\n/etc` }, 'INVALID_ARGUMENT', /parameters\[share\]/],
      [{ subDir: '../escape' }, 'INVALID_ARGUMENT', /parameters\[subDir\]/],
      [{ 'csi.storage.k8s.io/pvc/name': '..' }, 'INVALID_ARGUMENT', /not one plain directory name/],
    ]
    for (const [extra, code, re] of cases) {
      const out = await outcome(c.CreateVolume({ name: 'hostile', volume_capabilities: [cap()], parameters: { ...params({ 'csi.storage.k8s.io/pvc/name': 'hostile' }), ...extra } }, LONG))
      t.equal(codeName(out.code), code, `${JSON.stringify(extra)}: ${out.message}`)
      t.match(out.message, re)
    }
    // A symlink planted on the server (by anyone who can write the export) would resolve on the
    // node, as root: the walk refuses it.
    symlinkSync('/', `${BACKING}/evil`)
    const planted = await outcome(c.CreateVolume({ name: 'planted', volume_capabilities: [cap()], parameters: params({ subDir: 'evil/planted' }) }, LONG))
    t.equal(codeName(planted.code), 'FAILED_PRECONDITION', `a symlink in the path on the server: ${planted.message}`)
    t.match(planted.message, /symbolic link/)
    t.notOk(existsSync('/planted'), 'nothing was made at the link\'s target on the node')
    // A volume context written by hand (a PersistentVolume made without the controller).
    const [a] = nodes as [Node]
    const s = stage(a, { volume_id: 'v-0123456789abcdef0123456789abcdef', volume_context: {} }, 'forged')
    const forged: [Record<string, string>, RegExp][] = [
      [{ [CONTEXT.subDir]: '../../etc' }, /volume_context\[tscsi\.dev\/subDir\]/],
      [{ [CONTEXT.server]: '127.0.0.1,port=1' }, /volume_context\[tscsi\.dev\/server\]/],
      [{ [CONTEXT.share]: '/export\nx' }, /volume_context\[tscsi\.dev\/share\]/],
    ]
    for (const [ctx, re] of forged) {
      const volume_context = { [CONTEXT.kind]: 'nfs', [CONTEXT.server]: '127.0.0.1', [CONTEXT.share]: EXPORT, [CONTEXT.subDir]: 'x', ...ctx }
      const out = await outcome(a.n.NodeStageVolume({ ...s.base, volume_context, staging_target_path: s.staging }, LONG))
      t.equal(codeName(out.code), 'INVALID_ARGUMENT', `stage with ${JSON.stringify(ctx)}: ${out.message}`)
      t.match(out.message, re)
    }
    const opt = await outcome(a.n.NodeStageVolume({ ...s.base, volume_capability: cap(undefined, ['addr=10.0.0.1']), staging_target_path: s.staging,
      volume_context: { [CONTEXT.kind]: 'nfs', [CONTEXT.server]: '127.0.0.1', [CONTEXT.share]: EXPORT, [CONTEXT.subDir]: 'x' } }, LONG))
    t.equal(opt.code, status.INVALID_ARGUMENT, `a mount option that would redirect the mount: ${opt.message}`)
    t.equal(mountAt(s.staging), undefined, 'nothing was mounted')
  })

  await t.test('a stopped server: CreateVolume fails in bounded time with the server\'s error; then recovers', async (t) => {
    server.stop(t)
    const started = Date.now()
    const down = await outcome(create('while-down'))
    const ms = Date.now() - started
    t.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(codeName(down.code)), `${codeName(down.code)} after ${ms} ms: ${down.message}`)
    t.ok(ms < 60_000, 'within the controller\'s wait')
    // Other options: another export object, so no answer from before the stop is reused.
    const capReq = { parameters: params(), volume_capabilities: [cap('MULTI_NODE_MULTI_WRITER', ['nfsvers=4.1'])] }
    const noCap = await outcome(c.GetCapacity(capReq, LONG))
    t.ok(['UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(codeName(noCap.code)), `GetCapacity: ${codeName(noCap.code)}: ${noCap.message}`)
    server.start(t)
    t.ok(BigInt((await c.GetCapacity(capReq, LONG)).available_capacity) > 0n, 'and GetCapacity answers once the server is back')
    const back = await create('while-down')
    t.ok(lstatSync(`${BACKING}/shop/while-down`).isDirectory(), 'the retry, once the server is back, makes the directory')
    await c.DeleteVolume({ volume_id: back.volume.volume_id }, LONG)
    t.notOk(existsSync(`${BACKING}/shop/while-down`), 'and DeleteVolume removes it')
  })

  await t.test('a server that dies under a hard mount: unpublish and unstage still finish, and the plugin keeps answering', async (t) => {
    const { volume } = await create('dies')
    const a = nodes[0]!
    const sa = stage(a, volume, 'dies')
    await sa.up()
    writeFileSync(`${sa.target}/before`, 'written before the server died\n')
    t.match((mountAt(sa.staging)?.superOptions ?? []).join(','), /\bhard\b/, 'the volume is mounted hard (the default)')
    server.stop(t)
    // While the node tears the mounts down, the plugin must go on serving: every second a cheap
    // call, each with its own deadline.
    let probing = true
    const probes: (number | string)[] = []
    const prober = (async () => {
      while (probing) {
        const at = Date.now()
        probes.push(await a.n.NodeGetCapabilities({}, 10_000).then(() => Date.now() - at, (e: Error) => e.message))
        await new Promise((r) => setTimeout(r, 1000))
      }
    })()
    const started = Date.now()
    const unpub = await outcome(a.n.NodeUnpublishVolume({ volume_id: volume.volume_id, target_path: sa.target }, 120_000))
    const unpubMs = Date.now() - started
    const unstage = await outcome(a.n.NodeUnstageVolume({ volume_id: volume.volume_id, staging_target_path: sa.staging }, 120_000))
    const allMs = Date.now() - started
    probing = false
    await prober
    t.comment(`unpublish: ${codeName(unpub.code)} after ${unpubMs} ms; unstage: ${codeName(unstage.code)} after ${allMs - unpubMs} ms; probes (ms): ${probes.join(' ')}`)
    t.equal(codeName(unpub.code), 'OK', `NodeUnpublishVolume: ${unpub.message}`)
    t.equal(codeName(unstage.code), 'OK', `NodeUnstageVolume: ${unstage.message}`)
    t.notOk(mountAt(sa.target), 'nothing mounted at the target')
    t.notOk(mountAt(sa.staging), 'nothing mounted at the staging path')
    t.ok(probes.length > 0 && probes.every((p) => typeof p === 'number'), 'the plugin answered every call meanwhile')
    server.start(t)
    await c.DeleteVolume({ volume_id: volume.volume_id }, LONG)
    t.notOk(existsSync(`${BACKING}/shop/dies`), 'once the server is back, DeleteVolume removes the directory')
  })
})
