// Issue 16's first step, proved on a stock kernel (this project's host kernel has neither an NFS
// client nor nfsd): the kernel's nfsd (test/helpers/nfs-server.ts) serves a directory of a
// scratch disk over the guest's loopback, and tscsi's own mount(2) (native/, on a worker thread),
// with the options node/nfs-options.ts plans, mounts it twice as two nodes would. This suite
// proves the mount path alone; test/vm/nfs-volumes.vm.ts drives nfs volumes through the driver.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { createServer, type Socket } from 'node:net'
import { MNT, isErrno, mountAsync, umount2Async } from '../../native/index.js'
import { planNfsMount, type NfsMountRequest } from '../../node/nfs-options.js'
import { BACKING, EXPORT, mountAt as at, startNfsServer, type NfsServer } from '../helpers/nfs-server.js'
import { kernelRelease, MiB, sha256 } from '../helpers/vm-rig.js'

const A = '/mnt/nfs-node-a'
const B = '/mnt/nfs-node-b'
const request: NfsMountRequest = { serverAddress: '127.0.0.1', share: EXPORT, subDir: 'sub', mountOptions: [], clientAddress: '127.0.0.1' }

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

t.test(`NFSv4 by mount(2) from the node's own options on ${kernelRelease()}`, async (t) => {
  t.teardown(async () => {
    for (const mp of [A, B]) if (at(mp)?.fsType === 'nfs4') await umount2Async(mp, MNT.DETACH).catch(() => {})
  })
  let server!: NfsServer
  await t.test('the server: nfsd, an export of a scratch disk\'s folder, rpc.mountd and rpc.nfsd', async (st) => {
    server = await startNfsServer(st, t, [`${BACKING}/sub`, A, B])
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
    server.stop(t)
    const down = await timedMount(request, A, 30_000)
    t.not(down.outcome, 'hung', `nfsd stopped: ${describe(down.outcome)} after ${down.ms} ms`)
    t.ok(isErrno(down.outcome), 'an errno from mount(2), not a mount')
    server.start(t)
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
