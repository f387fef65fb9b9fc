// Issue 16's first step, proved on a stock kernel (this project's host kernel has neither an NFS
// client nor nfsd): the kernel's nfsd serves a directory of a scratch disk over the guest's
// loopback with Debian's userland (exportfs, rpc.mountd, rpc.nfsd; NFSv4.1/4.2 only, so no
// rpcbind or statd), and tscsi's own mount(2) (native/, on a worker thread), with the options
// node/nfs-options.ts plans, mounts it twice as two nodes would. No volume kind uses any of this
// yet: the suite proves the mount path, not an nfs StorageClass.
import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { MNT, MS, isErrno, mountAsync, readMountInfo, umount2Async } from '../../native/index.js'
import { planNfsMount, type NfsMountRequest } from '../../node/nfs-options.js'
import { kernelRelease, MiB, sha256 } from '../helpers/vm-rig.js'

const EXPORT = '/export' // on the guest's root tmpfs, with a scratch disk's folder bound onto it
const BACKING = '/scratch/plain/nfs-export'
const A = '/mnt/nfs-node-a'
const B = '/mnt/nfs-node-b'
const request: NfsMountRequest = { serverAddress: '127.0.0.1', share: EXPORT, subDir: 'sub', mountOptions: [], clientAddress: '127.0.0.1' }
// Lease and grace at the kernel's minimum: a fresh nfsd refuses OPENs for its grace period, and
// the default 90 s would only make the suite slower.
const NFSD_ARGS = ['-N', '3', '-V', '4.1', '-V', '4.2', '-L', '10', '-G', '10', '-H', '127.0.0.1', '4']

const at = (mp: string) => readMountInfo().filter((m) => m.mountPoint === mp).pop()
function run(t: Test, program: string, r: ReturnType<typeof spawnSync>): boolean {
  const ok = r.status === 0
  t.ok(ok, `${program} exits 0${ok ? '' : `: ${r.status ?? r.signal} ${String(r.stderr ?? '').trim()}`}`)
  return ok
}

/** mount(2) of a plan, raced with a deadline so a hang fails the test instead of the whole guest run. */
async function timedMount(req: NfsMountRequest, target: string, slackMs: number) {
  const plan = planNfsMount(req)
  const started = Date.now()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<'hung'>((res) => { timer = setTimeout(() => res('hung'), plan.majorTimeoutMs + slackMs) })
  const outcome = await Promise.race([
    mountAsync(plan.source, target, plan.fsType, plan.flags, plan.data).then(() => 'mounted' as const, (e: unknown) => e),
    deadline,
  ])
  clearTimeout(timer)
  return { plan, outcome, ms: Date.now() - started }
}

t.test(`NFSv4 by mount(2) from the node's own options on ${kernelRelease()} (no nfs volume kind yet)`, async (t) => {
  let mountd: ChildProcess | undefined
  t.teardown(async () => {
    for (const mp of [A, B]) if (at(mp)?.fsType === 'nfs4') await umount2Async(mp, MNT.DETACH).catch(() => {})
    spawnSync('rpc.nfsd', ['0'])
    spawnSync('exportfs', ['-u', `127.0.0.1:${EXPORT}`])
    mountd?.kill('SIGTERM')
  })
  // What nfsd and the client said (client tracking, grace): the console runs at loglevel 3.
  t.teardown(() => {
    const log = spawnSync('dmesg', [], { encoding: 'utf8' }).stdout ?? ''
    for (const line of log.split('\n').filter((l) => /nfs|rpc|grace/i.test(l)).slice(-12)) t.comment(`dmesg: ${line}`)
  })

  await t.test('the server: nfsd, an export of a scratch disk\'s folder, rpc.mountd and rpc.nfsd', async (t) => {
    // The guest's init brings no interface up; the export is served over loopback only.
    run(t, 'ip', spawnSync('ip', ['link', 'set', 'lo', 'up'], { encoding: 'utf8' }))
    if (at('/proc/fs/nfsd')?.fsType !== 'nfsd') await mountAsync('nfsd', '/proc/fs/nfsd', 'nfsd', 0, null)
    t.equal(at('/proc/fs/nfsd')?.fsType, 'nfsd', 'the nfsd filesystem is on /proc/fs/nfsd')
    // exportfs and rpc.mountd keep their tables here; the guest's root is a tmpfs, /etc is the host's (read-only).
    for (const d of ['/var/lib/nfs/v4recovery', `${BACKING}/sub`, EXPORT, A, B]) mkdirSync(d, { recursive: true })
    for (const f of ['/var/lib/nfs/etab', '/var/lib/nfs/rmtab']) writeFileSync(f, '', { flag: 'a' })
    if (at(EXPORT)?.fsType !== 'ext4') await mountAsync(BACKING, EXPORT, null, MS.BIND, null)
    t.equal(at(EXPORT)?.fsType, 'ext4', `${EXPORT} is the plain ext4 scratch disk's ${BACKING}`)
    // -i: the host's /etc/exports is not this test's; the one export is given here.
    run(t, 'exportfs', spawnSync('exportfs', ['-i', '-o', 'rw,sync,no_root_squash,no_subtree_check', `127.0.0.1:${EXPORT}`], { encoding: 'utf8' }))
    // NFSv4 still needs rpc.mountd: the kernel asks it (through /proc/net/rpc/*/channel) which
    // exports a client may see. -N 2 -N 3: v4 only, so it registers nothing with rpcbind.
    mountd = spawn('rpc.mountd', ['-F', '-N', '2', '-N', '3'], { stdio: ['ignore', 'inherit', 'inherit'] })
    run(t, 'rpc.nfsd', spawnSync('rpc.nfsd', NFSD_ARGS, { encoding: 'utf8' }))
    const versions = readFileSync('/proc/fs/nfsd/versions', 'utf8').trim()
    t.comment(`nfsd versions: ${versions}, threads: ${readFileSync('/proc/fs/nfsd/threads', 'utf8').trim()}`)
    t.match(versions, /-3/, 'NFSv3 is off (no rpcbind, no statd)')
    t.match(versions, /\+4\.1/, 'NFSv4.1 is on')
  })

  const bytes = randomBytes(4 * MiB)
  await t.test('two mounts of 127.0.0.1:/export/sub as two nodes: what one writes, the other reads', async (t) => {
    const a = await timedMount(request, A, 60_000)
    t.equal(a.outcome, 'mounted', `node a: mount(2) ${a.plan.source} -o ${a.plan.data} (${a.ms} ms)`)
    // nosharecache: a superblock and page cache of its own, as a second node has; the bytes must cross the server.
    const b = await timedMount({ ...request, mountOptions: ['nosharecache', 'nfsvers=4.2'] }, B, 60_000)
    t.equal(b.outcome, 'mounted', `node b: mount(2) -o ${b.plan.data} (${b.ms} ms)`)
    if (a.outcome !== 'mounted' || b.outcome !== 'mounted') return
    const ma = at(A)!
    const mb = at(B)!
    t.equal(ma.fsType, 'nfs4', 'node a\'s mount is nfs4')
    t.equal(ma.source, '127.0.0.1:/export/sub', 'the mount table shows the planned source')
    t.match(ma.superOptions.join(','), /vers=4\.1.*hard.*proto=tcp.*timeo=100.*retrans=3.*addr=127\.0\.0\.1/, 'the kernel took the planned options')
    t.match(mb.superOptions.join(','), /vers=4\.2/)
    t.not(ma.dev, mb.dev, 'two superblocks, not one shared cache')
    t.ok(ma.mountOptions.includes('nosuid') && ma.mountOptions.includes('nodev'), 'nosuid,nodev from the plan\'s flags')

    const writing = Date.now()
    writeFileSync(`${A}/from-a`, bytes) // closed on return: close-to-open makes it visible to other clients
    // The first OPEN waits out the fresh server's grace period (NFS4ERR_GRACE, retried by the client).
    t.comment(`the first write took ${Date.now() - writing} ms`)
    t.equal(sha256(`${B}/from-a`), sha256Of(bytes), 'node b reads the 4 MiB node a wrote')
    t.equal(sha256(`${BACKING}/sub/from-a`), sha256Of(bytes), 'and they are on the server\'s disk')
    writeFileSync(`${B}/from-b`, 'written by node b\n')
    t.equal(readFileSync(`${A}/from-b`, 'utf8'), 'written by node b\n', 'and the other way round')
    for (const mp of [A, B]) await umount2Async(mp, MNT.UMOUNT_NOFOLLOW)
    t.equal(at(A), undefined, 'both unmounted')
  })

  await t.test('an unreachable server fails the mount within the planned time, with an error', async (t) => {
    // A port nothing listens on: the kernel's first RPC (a soft, soft-connect ping) is refused.
    const refused = await timedMount({ ...request, mountOptions: ['port=2050'] }, A, 30_000)
    t.not(refused.outcome, 'hung', `nothing on port 2050: ${describe(refused.outcome)} after ${refused.ms} ms`)
    t.ok(isErrno(refused.outcome), 'an errno from mount(2), not a mount')
    // A server that accepts the connection and never answers: only the timeouts end it.
    const held: Socket[] = []
    const silent = createServer((s) => { held.push(s) })
    await new Promise<void>((res) => silent.listen(2051, '127.0.0.1', res))
    const quiet = await timedMount({ ...request, mountOptions: ['port=2051', 'timeo=10', 'retrans=1'] }, A, 30_000)
    t.not(quiet.outcome, 'hung', `a silent server (timeo=10,retrans=1, planned ${quiet.plan.majorTimeoutMs} ms): ${describe(quiet.outcome)} after ${quiet.ms} ms`)
    t.ok(isErrno(quiet.outcome), 'an errno from mount(2), not a mount')
    for (const s of held) s.destroy()
    await new Promise((res) => silent.close(res))
    t.equal(at(A), undefined, 'nothing was mounted')
  })

  await t.test('the server stopped: the mount fails within the planned time; once it is back, the data is there', async (t) => {
    run(t, 'rpc.nfsd', spawnSync('rpc.nfsd', ['0'], { encoding: 'utf8' }))
    const down = await timedMount(request, A, 30_000)
    t.not(down.outcome, 'hung', `nfsd stopped: ${describe(down.outcome)} after ${down.ms} ms`)
    t.ok(isErrno(down.outcome), 'an errno from mount(2), not a mount')
    run(t, 'rpc.nfsd', spawnSync('rpc.nfsd', NFSD_ARGS, { encoding: 'utf8' }))
    const back = await timedMount(request, A, 60_000)
    t.equal(back.outcome, 'mounted', `nfsd started again: mounted after ${back.ms} ms`)
    if (back.outcome !== 'mounted') return
    t.equal(sha256(`${A}/from-a`), sha256Of(bytes), 'the bytes written before the stop')
    await umount2Async(A, MNT.UMOUNT_NOFOLLOW)
  })
})

function sha256Of(b: Buffer): string {
  writeFileSync('/tmp/nfs-expected', b)
  return sha256('/tmp/nfs-expected')
}
function describe(outcome: unknown): string {
  if (outcome instanceof Error) return outcome.message // an ErrnoError names the errno: "mount(...): ECONNREFUSED (...)"
  return String(outcome)
}
