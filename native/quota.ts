// Project quotas: a directory tree's project id (FS_IOC_FSGETXATTR /
// FS_IOC_FSSETXATTR) and the block/inode limits of that project (quotactl).
//
// Limits go through the generic VFS interface (Q_GETQUOTA/Q_SETQUOTA with
// struct if_dqblk), which serves ext4 and xfs alike: fs/quota/quota.c turns
// it into the filesystem's ->get_dqblk/->set_dqblk, and xfs implements those
// too (xfs_quotaops.c), so the xfs-only Q_XSETQLIM with its 512-byte basic
// blocks is not needed. Units in if_dqblk: dqb_bhardlimit/dqb_bsoftlimit in
// QIF_DQBLKSIZE (1 KiB) blocks (the kernel's qbtos() shifts by 10),
// dqb_curspace in bytes, inode fields in inodes.
//
// Neither ext4 nor xfs enforces anything unless the filesystem is mounted
// with prjquota (ext4 additionally needs the "project" and "quota" features
// and a kernel with CONFIG_QFMT_V2; xfs needs CONFIG_XFS_QUOTA). Check
// projectQuotaSupport() before promising a limit.

import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import { ErrnoError } from './errno.js'
import { O_CLOEXEC, O_DIRECTORY, O_NOFOLLOW, O_RDONLY, ioctl, withFd } from './ioctl.js'
import { checkPath, declare, sys } from './libc.js'
import { readMountInfo } from './mountinfo.js'
import {
  DQBLK_SIZE,
  DQINFO_SIZE,
  FSXATTR_SIZE,
  FS_IOC_FSGETXATTR,
  FS_IOC_FSSETXATTR,
  FS_QSTATV_VERSION1,
  FS_QUOTA,
  FS_XFLAG_PROJINHERIT,
  MAX_PROJECT_ID,
  PRJQUOTA,
  Q,
  STATV,
  STATV_SIZE,
  checkQuotaLayouts as checkLayouts,
  decodeDqBlk,
  decodeFsXattr,
  encodeDqBlk,
  encodeFsXattr,
  limitsToDqBlk,
  parseKernelConfig,
  qcmd,
  quotaBlocksToBytes,
  quotaProbeReason,
  type ProjectLimits,
  type SupportContext,
} from './quota-codec.js'
import { statx } from './stat.js'

export * from './quota-codec.js'

// Node's errno table has no ENOTBLK, so ErrnoError.code would read ERRNO_15.
const ENOTBLK = 15

/** errno name for reasons and QuotaSupport.code, including ENOTBLK. */
function codeOf(e: ErrnoError): string {
  return e.errno === ENOTBLK ? 'ENOTBLK' : e.code
}

const quotactlFn = declare<[cmd: number, special: string, id: number, addr: Buffer]>(
  'int quotactl(int cmd, const char *special, int id, void *addr)',
)

function checkProjectId(projectId: number): void {
  if (!Number.isInteger(projectId) || projectId < 0 || projectId > MAX_PROJECT_ID) {
    throw new RangeError(`invalid project id ${projectId}`)
  }
}

function quotactl(cmd: number, name: string, blockDevice: string, id: number, buf: Buffer): void {
  checkPath(blockDevice, 'quotactl')
  // qid_t is unsigned; `| 0` hands ids above 2^31 over as the same 32 bits.
  sys(quotactlFn, [qcmd(cmd, PRJQUOTA), blockDevice, id | 0, buf], `quotactl ${name}`, blockDevice)
}

const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC

/**
 * The project id of a directory and whether new entries inherit it
 * (FS_XFLAG_PROJINHERIT). Works on ext4 and xfs whether or not quotas are on.
 * `dir` must be a directory and not a symlink (ENOTDIR either way: the kernel
 * answers O_DIRECTORY|O_NOFOLLOW on a symlink with ENOTDIR).
 */
export function getProjectId(dir: string): { projectId: number; inherit: boolean } {
  checkLayouts()
  const b = Buffer.alloc(FSXATTR_SIZE)
  withFd(dir, DIR_FLAGS, (fd) => ioctl(fd, FS_IOC_FSGETXATTR, 'FS_IOC_FSGETXATTR', b, dir))
  const x = decodeFsXattr(b)
  return { projectId: x.projid, inherit: (x.xflags & FS_XFLAG_PROJINHERIT) !== 0 }
}

/**
 * Sets a directory's project id and PROJINHERIT flag, read-modify-write so
 * its other attributes are kept; on failure the attributes read are written
 * back, so nothing is half-applied. Only the directory itself changes: set it
 * while the directory is empty (at volume creation), since existing children
 * keep their old ids. ext4 refuses a non-zero id with EOPNOTSUPP unless the
 * filesystem has the "project" feature (mkfs.ext4 -O project).
 */
export function setProjectId(dir: string, projectId: number, inherit: boolean): void {
  checkProjectId(projectId)
  checkLayouts()
  const b = Buffer.alloc(FSXATTR_SIZE)
  withFd(dir, DIR_FLAGS, (fd) => {
    ioctl(fd, FS_IOC_FSGETXATTR, 'FS_IOC_FSGETXATTR', b, dir)
    const x = decodeFsXattr(b)
    x.projid = projectId
    x.xflags = inherit ? x.xflags | FS_XFLAG_PROJINHERIT : x.xflags & ~FS_XFLAG_PROJINHERIT
    try {
      ioctl(fd, FS_IOC_FSSETXATTR, 'FS_IOC_FSSETXATTR', encodeFsXattr(x), dir)
    } catch (e) {
      // ext4 applies the flags before it refuses the project id, so a failed
      // call can leave PROJINHERIT set: put back what we read.
      try {
        ioctl(fd, FS_IOC_FSSETXATTR, 'FS_IOC_FSSETXATTR', b, dir)
      } catch {
        /* the original error is the one to report */
      }
      throw e
    }
  })
}

/**
 * Sets the hard limits of a project on the filesystem mounted from
 * `blockDevice` (Q_SETQUOTA, PRJQUOTA). ESRCH: project quotas not enabled on
 * that filesystem; ENOSYS: no kernel support; ENOTBLK/ENODEV: not the device
 * of a mounted filesystem. Idempotent.
 */
export function setProjectQuota(blockDevice: string, projectId: number, limits: ProjectLimits): void {
  checkProjectId(projectId)
  checkLayouts()
  quotactl(Q.SETQUOTA, 'Q_SETQUOTA', blockDevice, projectId, encodeDqBlk(limitsToDqBlk(limits)))
}

export interface ProjectQuota {
  usedBytes: bigint
  /** 0n: unlimited. */
  blockHardBytes: bigint
  usedInodes: bigint
  /** 0n: unlimited. */
  inodeHard: bigint
}

/** Usage and hard limits of a project (Q_GETQUOTA). Errors as for setProjectQuota. */
export function getProjectQuota(blockDevice: string, projectId: number): ProjectQuota {
  checkProjectId(projectId)
  checkLayouts()
  const b = Buffer.alloc(DQBLK_SIZE)
  quotactl(Q.GETQUOTA, 'Q_GETQUOTA', blockDevice, projectId, b)
  const d = decodeDqBlk(b)
  return {
    usedBytes: d.curSpace,
    blockHardBytes: quotaBlocksToBytes(d.bHardLimit),
    usedInodes: d.curInodes,
    inodeHard: d.iHardLimit,
  }
}

export interface QuotaSupport {
  supported: boolean
  reason: string
  fsType?: string
  /** errno name of the failed probe, e.g. 'ESRCH'. */
  code?: string
}

/**
 * Whether project quotas are enforced on the filesystem mounted at
 * `mountPoint` from `blockDevice`. Read-only probe: Q_GETINFO says whether
 * project accounting is active (ESRCH if not), Q_XGETQSTATV whether limits
 * are enforced. Never throws for a "no"; `reason` names what is missing.
 * Reads /proc/self/mountinfo once (for the fs type), so cache the answer.
 */
export function projectQuotaSupport(mountPoint: string, blockDevice: string): QuotaSupport {
  checkLayouts()
  const fsType = fsTypeOf(mountPoint)
  const ctx: SupportContext = { fsType, mountPoint, blockDevice, config: kernelConfig }
  const no = (code: string, reason: string): QuotaSupport =>
    fsType === undefined ? { supported: false, reason, code } : { supported: false, reason, code, fsType }
  // btrfs superblocks are not found by their block device (ENODEV), and
  // btrfs has no VFS quotas anyway; say the useful thing.
  if (fsType === 'btrfs') return no('ENOSYS', quotaProbeReason('ENOSYS', ctx))
  try {
    quotactl(Q.GETINFO, 'Q_GETINFO', blockDevice, 0, Buffer.alloc(DQINFO_SIZE))
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e
    return no(codeOf(e), quotaProbeReason(codeOf(e), ctx))
  }
  // Accounting is on. Is this the filesystem at mountPoint, and enforcing?
  try {
    const dev = statx(blockDevice, { follow: true })
    const mp = statx(mountPoint, { follow: true })
    if (dev.type !== 'block' || `${dev.rdevMajor}:${dev.rdevMinor}` !== mp.dev) {
      return no('EXDEV', `${mountPoint} is not the filesystem on ${blockDevice}`)
    }
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e
    return no(e.code, `cannot stat ${mountPoint} or ${blockDevice}: ${e.message}`)
  }
  const sv = Buffer.alloc(STATV_SIZE)
  sv.writeInt8(FS_QSTATV_VERSION1, STATV.qs_version)
  try {
    quotactl(Q.XGETQSTATV, 'Q_XGETQSTATV', blockDevice, 0, sv)
  } catch (e) {
    if (!(e instanceof ErrnoError)) throw e
    return no(e.code, `project quota state of ${fsType ?? 'the filesystem'} at ${mountPoint} unknown: ${e.message}`)
  }
  if ((sv.readUInt16LE(STATV.qs_flags) & FS_QUOTA.PDQ_ENFD) === 0) {
    return no('ENFORCEMENT_OFF', `project quotas on ${fsType ?? 'the filesystem'} at ${mountPoint} are accounted but not enforced (mounted with pqnoenforce?)`)
  }
  const ok: QuotaSupport = { supported: true, reason: `project quotas enforced on ${fsType ?? 'the filesystem'} at ${mountPoint}` }
  if (fsType !== undefined) ok.fsType = fsType
  return ok
}

function fsTypeOf(mountPoint: string): string | undefined {
  try {
    const id = Number(statx(mountPoint, { follow: true }).mntId)
    return readMountInfo().find((m) => m.mountId === id)?.fsType
  } catch {
    return undefined
  }
}

let kconfig: Map<string, string> | null | undefined
function kernelConfig(name: string): string | undefined {
  if (kconfig === undefined) {
    try {
      kconfig = parseKernelConfig(gunzipSync(readFileSync('/proc/config.gz')).toString('utf8'))
    } catch {
      kconfig = null
    }
  }
  return kconfig?.get(name)
}

