// Pure planning of an NFS mount done by mount(2) itself: no mount.nfs helper runs on the node, so
// the node plugin does what that helper does (resolve the name, pick the version, write the
// kernel's text options) and nothing a user wrote reaches the kernel unchecked.
//
// Why the checks are this strict:
// - The kernel splits mount(2)'s option data at ',' and each option at '='. A server or share
//   carrying either (server "x,vers=2") would smuggle options in wherever one of them is
//   joined into that data, so both are refused outright, as are newlines and NUL (which end the
//   C string early, or make the mount table lie).
// - CVE-2026-3864 (csi-driver-nfs before v4.13.1) and CVE-2026-3865 (csi-driver-smb before
//   v1.20.1): the subDir read back from a volume id was not checked, so a PersistentVolume
//   written by hand with "../" in it made DeleteVolume remove directories outside the managed
//   path on the server. Here share and subDir must already be normal paths, checked by the same
//   function wherever they come from (StorageClass parameters at create, volume context or id at
//   stage and delete): no "..", no ".", no empty segment, nothing a join() would quietly fix up.
//   A symlink on the server side cannot be seen here; the code that walks the share must refuse
//   it when it finds one (FAILED_PRECONDITION).
// - addr= and clientaddr= are the driver's own: a user option could otherwise point the mount
//   at a different server than the one the volume records. Only the options on the allow-list
//   below pass, each with a bounded value.
import { invalid } from '../common/errors.js'
import { MS } from '../native/index.js'
import { checkShare, checkSubDir, ipFamily, MAX_PATH, SUBDIR_FIELD } from '../common/nfs-paths.js'

export { checkShare, checkSubDir, parseServer, SERVER_FIELD, SHARE_FIELD, SUBDIR_FIELD } from '../common/nfs-paths.js'

export type NfsVersion = '4.1' | '4.2'

export interface NfsMountRequest {
  /** The server as resolved by the node (dns.lookup): an IPv4 or IPv6 address, never a name. */
  serverAddress: string
  /** The export's absolute path on the server (StorageClass parameter `share`). */
  share: string
  /** The volume's directory below the share, relative; '' mounts the share itself. */
  subDir: string
  /** mountOptions from the StorageClass (volume_capability.mount.mount_flags). */
  mountOptions: string[]
  /**
   * The node's own address for the server's callbacks (NFSv4.0's clientaddr=). 4.1 and 4.2 call
   * back over the client's own connection, so the unspecified address of the server's family,
   * the default, is correct for them.
   */
  clientAddress?: string
}

export interface NfsMountPlan {
  /** mount(2)'s source: `addr:/path`, an IPv6 address in brackets. */
  source: string
  fsType: 'nfs4'
  /** MS_* bits for mount(2): the VFS flags among the options never go into `data`. */
  flags: number
  /** The kernel's text options for nfs4. */
  data: string
  version: NfsVersion
  /** share joined with subDir: the path on the server. */
  exportPath: string
  /**
   * How long one RPC may take before a soft mount fails it or a hard one reports "server not
   * responding" (see majorTimeoutMs). A caller's own deadline for a mount should exceed it.
   */
  majorTimeoutMs: number
  /**
   * uid= and gid= among the options: the owner the node gives a new volume directory. NFS has no
   * mount options by these names (the server decides ownership), so they never reach the kernel;
   * a class written for a local filesystem (seed 003's `--cap ...,uid=500`) keeps its meaning.
   */
  owner: { uid?: number; gid?: number }
}

export const OPTIONS_FIELD = 'volume_capability.mount.mount_flags'

// Defaults: hard (no silent data loss: the NFS default and what a database on a share expects),
// 10 s for the first try and 3 retries: a silent server fails a mount after 60 s (majorTimeoutMs),
// inside kubelet's 2-minute call timeout; mount.nfs's timeo=600,retrans=2 would take 6 minutes.
const DEFAULT_TIMEO = 100
const DEFAULT_RETRANS = 3
const BOUNDS = {
  timeo: [10, 600], // deciseconds; 600 is the kernel's own cap for TCP
  retrans: [0, 10],
  actimeo: [0, 3600],
  acregmin: [0, 3600],
  acregmax: [0, 3600],
  acdirmin: [0, 3600],
  acdirmax: [0, 3600],
  rsize: [4096, 1 << 20],
  wsize: [4096, 1 << 20],
  nconnect: [1, 16],
  port: [1, 65535],
} as const satisfies Record<string, readonly [number, number]>
type Numeric = keyof typeof BOUNDS

// Options that are the driver's to set, with why a user may not.
const RESERVED: Record<string, string> = {
  addr: 'the driver sets it from the server it resolved',
  clientaddr: 'the driver sets it',
  proto: 'the driver mounts over TCP (tcp or tcp6 by the server\'s address)',
  mounthost: 'NFSv4 has no MOUNT protocol',
  mountaddr: 'NFSv4 has no MOUNT protocol',
  mountport: 'NFSv4 has no MOUNT protocol',
  mountproto: 'NFSv4 has no MOUNT protocol',
  mountvers: 'NFSv4 has no MOUNT protocol',
  udp: 'the driver mounts over TCP',
  tcp: 'the driver mounts over TCP already',
  rdma: 'the driver mounts over TCP',
}
// VFS flags a StorageClass may carry; they become mount(2) flags, not NFS options. nosuid and
// nodev are always on, so saying them changes nothing.
const VFS_FLAGS: Record<string, (f: number) => number> = {
  nosuid: (f) => f,
  nodev: (f) => f,
  ro: (f) => f | MS.RDONLY,
  rw: (f) => f & ~MS.RDONLY,
  noatime: (f) => (f | MS.NOATIME) & ~MS.STRICTATIME,
  relatime: (f) => f & ~(MS.NOATIME | MS.STRICTATIME),
  nodiratime: (f) => f | MS.NODIRATIME,
  noexec: (f) => f | MS.NOEXEC,
  exec: (f) => f & ~MS.NOEXEC,
  sync: (f) => f | MS.SYNCHRONOUS,
  async: (f) => f & ~MS.SYNCHRONOUS,
}
// NFS options without a value that pass to the kernel as they are.
const FLAGS = new Set(['intr', 'nointr', 'ac', 'noac', 'cto', 'nocto', 'resvport', 'noresvport', 'sharecache', 'nosharecache', 'rdirplus', 'nordirplus'])
const WORDS: Record<string, readonly string[]> = {
  lookupcache: ['all', 'none', 'positive', 'pos'],
  // Kerberos needs rpc.gssd and keytabs on every node; nothing here provides them yet.
  sec: ['sys'],
}

/** Plans the mount; throws INVALID_ARGUMENT naming the field for anything it will not pass on. */
export function planNfsMount(req: NfsMountRequest, optionsField = OPTIONS_FIELD): NfsMountPlan {
  const family = ipFamily(req.serverAddress)
  if (family === 0) {
    throw invalid('server address', `${JSON.stringify(req.serverAddress)} is not a resolved IP address`)
  }
  const share = checkShare(req.share)
  const subDir = checkSubDir(req.subDir)
  const exportPath = subDir === '' ? share : `${share === '/' ? '' : share}/${subDir}`
  if (Buffer.byteLength(exportPath) > MAX_PATH) throw invalid(SUBDIR_FIELD, `the share and subDir together are longer than ${MAX_PATH} bytes`)
  const client = req.clientAddress ?? (family === 4 ? '0.0.0.0' : '::')
  if (ipFamily(client) !== family) {
    throw invalid('client address', `${JSON.stringify(client)} is not an IPv${family} address like the server's`)
  }

  let version: NfsVersion = '4.1'
  let flags = MS.NOSUID | MS.NODEV // a remote server's set-uid files and device nodes mean nothing to a pod
  let recovery: 'hard' | 'soft' | 'softerr' = 'hard'
  const numbers = new Map<Numeric, number>()
  const passed: string[] = []
  const owner: NfsMountPlan['owner'] = {}
  req.mountOptions.forEach((raw, i) => {
    const at = `${optionsField}[${i}]`
    if (typeof raw !== 'string') throw invalid(at, 'must be a string')
    // StorageClass mountOptions sometimes arrive comma-joined in one entry.
    for (const opt of raw.split(',').map((s) => s.trim()).filter(Boolean)) {
      const eq = opt.indexOf('=')
      const key = eq < 0 ? opt : opt.slice(0, eq)
      const val = eq < 0 ? undefined : opt.slice(eq + 1)
      if (Object.hasOwn(RESERVED, key)) throw invalid(at, `${JSON.stringify(opt)}: ${key} may not be set, ${RESERVED[key]}`)
      if (val === undefined && Object.hasOwn(VFS_FLAGS, key)) { flags = VFS_FLAGS[key]!(flags); continue }
      if (val === undefined && (key === 'hard' || key === 'soft' || key === 'softerr')) { recovery = key; continue }
      if (val === undefined && FLAGS.has(key)) { passed.push(key); continue }
      if ((key === 'uid' || key === 'gid') && val !== undefined) {
        // 2^32-1 is (uid_t)-1, "no change" to chown(2): not an owner.
        if (!/^[0-9]{1,10}$/.test(val) || Number(val) > 0xfffffffe) throw invalid(at, `${JSON.stringify(opt)}: ${key} must be a numeric id from 0 to 4294967294`)
        owner[key] = Number(val)
        continue
      }
      if ((key === 'vers' || key === 'nfsvers') && val !== undefined) {
        if (val !== '4.1' && val !== '4.2') throw invalid(at, `${JSON.stringify(opt)}: only NFS 4.1 and 4.2 are supported`)
        version = val
        continue
      }
      if (val !== undefined && Object.hasOwn(WORDS, key)) {
        if (!WORDS[key]!.includes(val)) throw invalid(at, `${JSON.stringify(opt)}: ${key} takes ${WORDS[key]!.join(', ')}`)
        passed.push(`${key}=${val}`)
        continue
      }
      if (val !== undefined && Object.hasOwn(BOUNDS, key)) {
        const [lo, hi] = BOUNDS[key as Numeric]
        if (!/^[0-9]{1,7}$/.test(val) || Number(val) < lo || Number(val) > hi) throw invalid(at, `${JSON.stringify(opt)}: ${key} must be a whole number from ${lo} to ${hi}`)
        numbers.set(key as Numeric, Number(val))
        continue
      }
      throw invalid(at, `${JSON.stringify(opt)} is not an NFS mount option this driver passes on`)
    }
  })

  const timeo = numbers.get('timeo') ?? DEFAULT_TIMEO
  const retrans = numbers.get('retrans') ?? DEFAULT_RETRANS
  numbers.delete('timeo')
  numbers.delete('retrans')
  const data = [
    `vers=${version}`,
    `addr=${req.serverAddress}`,
    `clientaddr=${client}`,
    family === 4 ? 'proto=tcp' : 'proto=tcp6',
    recovery,
    `timeo=${timeo}`,
    `retrans=${retrans}`,
    ...[...numbers].map(([k, v]) => `${k}=${v}`),
    ...passed,
  ].join(',')
  const host = family === 6 ? `[${req.serverAddress}]` : req.serverAddress
  return { source: `${host}:${exportPath}`, fsType: 'nfs4', flags, data, version, exportPath, majorTimeoutMs: majorTimeoutMs(timeo, retrans), owner }
}

/**
 * When the kernel gives up on one RPC over TCP (net/sunrpc/xprt.c, fs/nfs/client.c's
 * nfs_init_timeout_values): each try waits timeo longer than the last (linear, capped at
 * timeo * (retrans + 1) and at 600 s), and the major timeout falls at the end of the first try
 * that ends past timeo * (retrans + 1). A soft RPC fails there; mount(2) pings the server with a
 * soft RPC even on a hard mount, so a silent server fails a mount within this time.
 */
export function majorTimeoutMs(timeo: number, retrans: number): number {
  const major = Math.min(timeo * (retrans + 1), 6000)
  let elapsed = 0
  for (let k = 0; elapsed < major; k++) elapsed += Math.min(timeo * (k + 1), major)
  return elapsed * 100
}
