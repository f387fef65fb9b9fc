// The guest's NFS server for the nfs suites (test/vm/nfs*.vm.ts): the kernel's nfsd serving a
// folder of the plain ext4 scratch disk over loopback, with Debian's userland (exportfs,
// rpc.mountd, rpc.nfsd; NFSv4.1/4.2 only, so no rpcbind or statd). This project's host kernel
// has neither nfsd nor an NFS client, so nothing here runs outside the guest.
import type { Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { MS, mountAsync, readMountInfo } from '../../native/index.js'

export const EXPORT = '/export' // on the guest's root tmpfs, with a scratch disk's folder bound onto it
export const BACKING = '/scratch/plain/nfs-export'
// Lease and grace at the kernel's minimum: a fresh nfsd refuses OPENs for its grace period, and
// the default 90 s would only make the suites slower.
const NFSD_ARGS = ['-N', '3', '-V', '4.1', '-V', '4.2', '-L', '10', '-G', '10', '-H', '127.0.0.1', '4']

export const mountAt = (mp: string) => readMountInfo().filter((m) => m.mountPoint === mp).pop()

export function run(t: Test, program: string, r: ReturnType<typeof spawnSync>): boolean {
  const ok = r.status === 0
  t.ok(ok, `${program} exits 0${ok ? '' : `: ${r.status ?? r.signal} ${String(r.stderr ?? '').trim()}`}`)
  return ok
}

export interface NfsServer {
  /** rpc.nfsd 0: the server stops answering; the export stays. */
  stop(t: Test): void
  /** nfsd's threads again (a grace period follows). */
  start(t: Test): void
}

/**
 * Brings the server up (idempotent: a second suite in the same boot finds it running), checking
 * each step on t, and registers its shutdown on owner (the suite, which outlives the subtest that
 * starts the server). `folders` are made first.
 */
export async function startNfsServer(t: Test, owner: { teardown(fn: () => unknown): void }, folders: string[] = []): Promise<NfsServer> {
  let mountd: ChildProcess | undefined
  owner.teardown(() => {
    spawnSync('rpc.nfsd', ['0'])
    spawnSync('exportfs', ['-u', `127.0.0.1:${EXPORT}`])
    mountd?.kill('SIGTERM')
  })
  // What nfsd and the client said (client tracking, grace): the console runs at loglevel 3.
  owner.teardown(() => {
    const log = spawnSync('dmesg', [], { encoding: 'utf8' }).stdout ?? ''
    for (const line of log.split('\n').filter((l) => /nfs|rpc|grace/i.test(l)).slice(-12)) t.comment(`dmesg: ${line}`)
  })
  // The guest's init brings no interface up; the export is served over loopback only.
  run(t, 'ip', spawnSync('ip', ['link', 'set', 'lo', 'up'], { encoding: 'utf8' }))
  if (mountAt('/proc/fs/nfsd')?.fsType !== 'nfsd') await mountAsync('nfsd', '/proc/fs/nfsd', 'nfsd', 0, null)
  t.equal(mountAt('/proc/fs/nfsd')?.fsType, 'nfsd', 'the nfsd filesystem is on /proc/fs/nfsd')
  // exportfs and rpc.mountd keep their tables here; the guest's root is a tmpfs, /etc is the host's (read-only).
  for (const d of ['/var/lib/nfs/v4recovery', BACKING, EXPORT, ...folders]) mkdirSync(d, { recursive: true })
  for (const f of ['/var/lib/nfs/etab', '/var/lib/nfs/rmtab']) writeFileSync(f, '', { flag: 'a' })
  if (mountAt(EXPORT)?.fsType !== 'ext4') await mountAsync(BACKING, EXPORT, null, MS.BIND, null)
  t.equal(mountAt(EXPORT)?.fsType, 'ext4', `${EXPORT} is the plain ext4 scratch disk's ${BACKING}`)
  // -i: the host's /etc/exports is not this test's; the one export is given here.
  run(t, 'exportfs', spawnSync('exportfs', ['-i', '-o', 'rw,sync,no_root_squash,no_subtree_check', `127.0.0.1:${EXPORT}`], { encoding: 'utf8' }))
  // NFSv4 still needs rpc.mountd: the kernel asks it (through /proc/net/rpc/*/channel) which
  // exports a client may see. -N 2 -N 3: v4 only, so it registers nothing with rpcbind.
  mountd = spawn('rpc.mountd', ['-F', '-N', '2', '-N', '3'], { stdio: ['ignore', 'inherit', 'inherit'] })
  const server: NfsServer = {
    stop: (t) => { run(t, 'rpc.nfsd', spawnSync('rpc.nfsd', ['0'], { encoding: 'utf8' })) },
    start: (t) => { run(t, 'rpc.nfsd', spawnSync('rpc.nfsd', NFSD_ARGS, { encoding: 'utf8' })) },
  }
  server.start(t)
  const versions = readFileSync('/proc/fs/nfsd/versions', 'utf8').trim()
  t.comment(`nfsd versions: ${versions}, threads: ${readFileSync('/proc/fs/nfsd/threads', 'utf8').trim()}`)
  t.match(versions, /-3/, 'NFSv3 is off (no rpcbind, no statd)')
  t.match(versions, /\+4\.1/, 'NFSv4.1 is on')
  return server
}
