// Pure half of the project-quota support (see quota.ts): constants, units,
// struct encoders/decoders and the reasons shown to users, all testable
// without root or a quota-capable kernel. The struct offsets were printed
// with offsetof()/sizeof() against this kernel's uapi headers and are checked
// against koffi's layout rules at first native use (checkQuotaLayouts).

import { checkLayout, ioc, koffi } from './ioctl.js'

// ---- constants (<linux/quota.h>, <linux/dqblk_xfs.h>, <linux/fs.h>) ----

export const USRQUOTA = 0
export const GRPQUOTA = 1
export const PRJQUOTA = 2

/** quotactl sub-commands used here. */
export const Q = Object.freeze({
  GETINFO: 0x800005,
  GETQUOTA: 0x800007,
  SETQUOTA: 0x800008,
  /** XQM_CMD(8): ('X' << 8) + 8; served for ext4 too, via ->get_state. */
  XGETQSTATV: 0x5808,
} as const)

/** if_dqblk.dqb_valid bits. */
export const QIF = Object.freeze({
  BLIMITS: 1,
  SPACE: 2,
  ILIMITS: 4,
  INODES: 8,
  BTIME: 16,
  ITIME: 32,
} as const)

/** Unit of dqb_bhardlimit/dqb_bsoftlimit (QIF_DQBLKSIZE). */
export const QUOTA_BLOCK_SIZE = 1024n

/** fs_quota_statv.qs_flags bits. */
export const FS_QUOTA = Object.freeze({ PDQ_ACCT: 1 << 4, PDQ_ENFD: 1 << 5 } as const)

export const FS_XFLAG_PROJINHERIT = 0x200

/** _IOR('X', 31, struct fsxattr) */
export const FS_IOC_FSGETXATTR = ioc('r', 0x58, 31, 28)
/** _IOW('X', 32, struct fsxattr) */
export const FS_IOC_FSSETXATTR = ioc('w', 0x58, 32, 28)

/** Largest valid project id; (u32)-1 is INVALID_PROJID to the kernel. */
export const MAX_PROJECT_ID = 0xfffffffe

// ---- pure helpers ----

/**
 * QCMD(cmd, type): ((cmd << 8) | (type & 0xff)) as the C `int` quotactl()
 * takes, i.e. signed: QCMD(Q_GETQUOTA, PRJQUOTA) is 0x80000702, which is
 * negative as an int. Compare with `>>> 0` for the unsigned value.
 */
export function qcmd(cmd: number, type: number): number {
  return (cmd << 8) | (type & 0xff)
}

/** Bytes to quota blocks (1 KiB), rounded up so the limit never undercuts the request. */
export function bytesToQuotaBlocks(bytes: bigint): bigint {
  if (bytes < 0n) throw new RangeError(`quota: negative size ${bytes}`)
  return (bytes + QUOTA_BLOCK_SIZE - 1n) / QUOTA_BLOCK_SIZE
}

export function quotaBlocksToBytes(blocks: bigint): bigint {
  return blocks * QUOTA_BLOCK_SIZE
}

/** struct if_dqblk, field for field (limits in 1 KiB blocks, curSpace in bytes). */
export interface DqBlk {
  bHardLimit: bigint
  bSoftLimit: bigint
  curSpace: bigint
  iHardLimit: bigint
  iSoftLimit: bigint
  curInodes: bigint
  bTime: bigint
  iTime: bigint
  valid: number
}

const DQBLK = {
  dqb_bhardlimit: 0, dqb_bsoftlimit: 8, dqb_curspace: 16, dqb_ihardlimit: 24, dqb_isoftlimit: 32,
  dqb_curinodes: 40, dqb_btime: 48, dqb_itime: 56, dqb_valid: 64,
} as const
/** 68 bytes of fields, padded to the u64 alignment. */
export const DQBLK_SIZE = 72

export function encodeDqBlk(d: DqBlk): Buffer {
  const b = Buffer.alloc(DQBLK_SIZE)
  b.writeBigUInt64LE(d.bHardLimit, DQBLK.dqb_bhardlimit)
  b.writeBigUInt64LE(d.bSoftLimit, DQBLK.dqb_bsoftlimit)
  b.writeBigUInt64LE(d.curSpace, DQBLK.dqb_curspace)
  b.writeBigUInt64LE(d.iHardLimit, DQBLK.dqb_ihardlimit)
  b.writeBigUInt64LE(d.iSoftLimit, DQBLK.dqb_isoftlimit)
  b.writeBigUInt64LE(d.curInodes, DQBLK.dqb_curinodes)
  b.writeBigUInt64LE(d.bTime, DQBLK.dqb_btime)
  b.writeBigUInt64LE(d.iTime, DQBLK.dqb_itime)
  b.writeUInt32LE(d.valid, DQBLK.dqb_valid)
  return b
}

export function decodeDqBlk(b: Buffer): DqBlk {
  if (b.length < DQBLK_SIZE) throw new RangeError(`if_dqblk needs ${DQBLK_SIZE} bytes, got ${b.length}`)
  return {
    bHardLimit: b.readBigUInt64LE(DQBLK.dqb_bhardlimit),
    bSoftLimit: b.readBigUInt64LE(DQBLK.dqb_bsoftlimit),
    curSpace: b.readBigUInt64LE(DQBLK.dqb_curspace),
    iHardLimit: b.readBigUInt64LE(DQBLK.dqb_ihardlimit),
    iSoftLimit: b.readBigUInt64LE(DQBLK.dqb_isoftlimit),
    curInodes: b.readBigUInt64LE(DQBLK.dqb_curinodes),
    bTime: b.readBigUInt64LE(DQBLK.dqb_btime),
    iTime: b.readBigUInt64LE(DQBLK.dqb_itime),
    valid: b.readUInt32LE(DQBLK.dqb_valid),
  }
}

export interface ProjectLimits {
  /** Hard block limit in bytes (rounded up to 1 KiB); 0n = unlimited. */
  blockHardBytes: bigint
  /** Hard inode limit; 0n = unlimited; absent = leave as is. */
  inodeHard?: bigint
}

/**
 * Pure: the if_dqblk for setProjectQuota. Only hard limits: QIF_BLIMITS sets
 * soft and hard together, and the soft one is cleared (0 = none), because a
 * soft limit with a grace period has no meaning for a volume size.
 */
export function limitsToDqBlk(l: ProjectLimits): DqBlk {
  let valid = QIF.BLIMITS
  const iHard = l.inodeHard ?? 0n
  if (iHard < 0n) throw new RangeError(`quota: negative inode limit ${iHard}`)
  if (l.inodeHard !== undefined) valid |= QIF.ILIMITS
  return {
    bHardLimit: bytesToQuotaBlocks(l.blockHardBytes),
    bSoftLimit: 0n,
    curSpace: 0n,
    iHardLimit: iHard,
    iSoftLimit: 0n,
    curInodes: 0n,
    bTime: 0n,
    iTime: 0n,
    valid,
  }
}

/** struct fsxattr (28 bytes). */
export interface FsXattr {
  xflags: number
  extsize: number
  nextents: number
  projid: number
  cowextsize: number
}

const FSXATTR = { fsx_xflags: 0, fsx_extsize: 4, fsx_nextents: 8, fsx_projid: 12, fsx_cowextsize: 16, fsx_pad: 20 } as const
export const FSXATTR_SIZE = 28

export function encodeFsXattr(x: FsXattr): Buffer {
  const b = Buffer.alloc(FSXATTR_SIZE) // fsx_pad stays zero
  b.writeUInt32LE(x.xflags >>> 0, FSXATTR.fsx_xflags)
  b.writeUInt32LE(x.extsize >>> 0, FSXATTR.fsx_extsize)
  b.writeUInt32LE(x.nextents >>> 0, FSXATTR.fsx_nextents)
  b.writeUInt32LE(x.projid >>> 0, FSXATTR.fsx_projid)
  b.writeUInt32LE(x.cowextsize >>> 0, FSXATTR.fsx_cowextsize)
  return b
}

export function decodeFsXattr(b: Buffer): FsXattr {
  if (b.length < FSXATTR_SIZE) throw new RangeError(`fsxattr needs ${FSXATTR_SIZE} bytes, got ${b.length}`)
  return {
    xflags: b.readUInt32LE(FSXATTR.fsx_xflags),
    extsize: b.readUInt32LE(FSXATTR.fsx_extsize),
    nextents: b.readUInt32LE(FSXATTR.fsx_nextents),
    projid: b.readUInt32LE(FSXATTR.fsx_projid),
    cowextsize: b.readUInt32LE(FSXATTR.fsx_cowextsize),
  }
}

// struct if_dqinfo (24 bytes) and struct fs_quota_statv (160 bytes): only the
// fields the support probe needs.
export const DQINFO_SIZE = 24
export const STATV = { qs_version: 0, qs_flags: 2, qs_pquota: 56 } as const
export const STATV_SIZE = 160
export const FS_QSTATV_VERSION1 = 1

/** Pure: "# CONFIG_X is not set" -> 'n'; CONFIG_X=y -> 'y'. */
export function parseKernelConfig(text: string): Map<string, string> {
  const m = new Map<string, string>()
  for (const line of text.split('\n')) {
    const set = /^(CONFIG_\w+)=(.*)$/.exec(line)
    if (set !== null) m.set(set[1]!, set[2]!)
    const unset = /^# (CONFIG_\w+) is not set$/.exec(line)
    if (unset !== null) m.set(unset[1]!, 'n')
  }
  return m
}

export interface SupportContext {
  fsType: string | undefined
  mountPoint: string
  blockDevice: string
  /** Kernel config lookup, when /proc/config.gz is available. */
  config?: (name: string) => string | undefined
}


/** Pure: the human reason for a failed project-quota probe, by errno name. */
export function quotaProbeReason(code: string, ctx: SupportContext): string {
  const fs = ctx.fsType ?? 'the filesystem'
  const where = `${fs} at ${ctx.mountPoint} (${ctx.blockDevice})`
  const off = (name: string): boolean => ctx.config?.(name) === 'n'
  switch (code) {
    case 'ESRCH': {
      let r = `project quotas are not enabled on ${where}: mount it with prjquota`
      if (ctx.fsType === 'ext4') {
        r += ' (the filesystem also needs the "project" and "quota" features: tune2fs -O project,quota)'
        if (off('CONFIG_QFMT_V2')) r += '; and this kernel lacks CONFIG_QFMT_V2, without which ext4 cannot mount with quotas at all'
      }
      return r
    }
    case 'ENOSYS': {
      if (ctx.fsType === 'xfs' && off('CONFIG_XFS_QUOTA')) return `the kernel has no XFS quota support (CONFIG_XFS_QUOTA is not set), so ${where} cannot enforce project quotas`
      if (off('CONFIG_QUOTA') || off('CONFIG_QUOTACTL')) return `the kernel has no quota support (CONFIG_QUOTA/CONFIG_QUOTACTL not set), so ${where} cannot enforce project quotas`
      if (ctx.fsType === 'btrfs') return `btrfs has no VFS project quotas (its qgroups are a different mechanism), so ${where} cannot enforce them`
      return `the kernel has no quota support for ${where} (quotactl: ENOSYS)`
    }
    case 'EINVAL':
      return `${where} does not support project quotas (or the kernel predates PRJQUOTA, Linux 4.1)`
    case 'ENOTBLK':
      return `${ctx.blockDevice} is not a block device, so quotactl cannot address ${fs} at ${ctx.mountPoint}`
    case 'ENODEV':
      return `no filesystem is mounted from ${ctx.blockDevice} (is it the device of ${fs} at ${ctx.mountPoint}?)`
    case 'ENOENT':
      return `${ctx.blockDevice} does not exist`
    case 'EPERM':
    case 'EACCES':
      return `not allowed to query quotas on ${where} (needs CAP_SYS_ADMIN)`
    default:
      return `quotactl failed on ${where}: ${code}`
  }
}

let layoutChecked = false
/** Verifies the offsets above against koffi's layout of the C structs (needs koffi, not root). */
export function checkQuotaLayouts(): void {
  if (layoutChecked) return
  const k = koffi()
  const u64 = 'uint64_t'
  checkLayout('struct if_dqblk', k.struct({
    dqb_bhardlimit: u64, dqb_bsoftlimit: u64, dqb_curspace: u64, dqb_ihardlimit: u64, dqb_isoftlimit: u64,
    dqb_curinodes: u64, dqb_btime: u64, dqb_itime: u64, dqb_valid: 'uint32_t',
  }), DQBLK_SIZE, DQBLK)
  checkLayout('struct fsxattr', k.struct({
    fsx_xflags: 'uint32_t', fsx_extsize: 'uint32_t', fsx_nextents: 'uint32_t', fsx_projid: 'uint32_t',
    fsx_cowextsize: 'uint32_t', fsx_pad: k.array('uint8_t', 8),
  }), FSXATTR_SIZE, FSXATTR)
  checkLayout('struct if_dqinfo', k.struct({
    dqi_bgrace: u64, dqi_igrace: u64, dqi_flags: 'uint32_t', dqi_valid: 'uint32_t',
  }), DQINFO_SIZE, {})
  const filestatv = k.struct({ qfs_ino: u64, qfs_nblks: u64, qfs_nextents: 'uint32_t', qfs_pad: 'uint32_t' })
  checkLayout('struct fs_quota_statv', k.struct({
    qs_version: 'int8_t', qs_pad1: 'uint8_t', qs_flags: 'uint16_t', qs_incoredqs: 'uint32_t',
    qs_uquota: filestatv, qs_gquota: filestatv, qs_pquota: filestatv, qs_btimelimit: 'int32_t',
    qs_itimelimit: 'int32_t', qs_rtbtimelimit: 'int32_t', qs_bwarnlimit: 'uint16_t', qs_iwarnlimit: 'uint16_t',
    qs_rtbwarnlimit: 'uint16_t', qs_pad3: 'uint16_t', qs_pad4: 'uint32_t', qs_pad2: k.array(u64, 7),
  }), STATV_SIZE, STATV)
  layoutChecked = true
}

