// Project quotas through native/quota.ts. The pure parts (QCMD, units, struct
// encodings, the reasons given to users) are tested everywhere; as root, the
// detection and project-id ioctls run against real ext4/xfs/btrfs loop mounts.
// The enforcing path runs only where the kernel can mount with prjquota
// (this project's test machines cannot: no CONFIG_QFMT_V2, no
// CONFIG_XFS_QUOTA), and is skipped with that reason otherwise.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, realpathSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import {
  ErrnoError,
  MNT,
  fromNodeError,
  getProjectId,
  getProjectQuota,
  listLoopDevices,
  loopAttach,
  loopDetach,
  mount,
  parseBackingFile,
  projectQuotaSupport,
  setProjectId,
  setProjectQuota,
  statx,
  umount2,
} from '../native/index.js'
import {
  DQBLK_SIZE,
  FSXATTR_SIZE,
  PRJQUOTA,
  Q,
  QIF,
  bytesToQuotaBlocks,
  checkQuotaLayouts,
  decodeDqBlk,
  decodeFsXattr,
  encodeDqBlk,
  encodeFsXattr,
  limitsToDqBlk,
  parseKernelConfig,
  qcmd,
  quotaBlocksToBytes,
  quotaProbeReason,
} from '../native/quota.js'
import { ioc } from '../native/ioctl.js'
import { loopRig, unmountQuietly } from './helpers/loopfs.js'

const MiB = 1024 * 1024
const hasMkfs = (fs: string): boolean => spawnSync('sh', ['-c', `command -v mkfs.${fs}`]).status === 0

t.test('pure: QCMD and request numbers', async (t) => {
  // Values printed by a C program with <sys/quota.h>, <linux/dqblk_xfs.h>, <linux/fs.h>.
  t.equal(qcmd(Q.GETQUOTA, PRJQUOTA) >>> 0, 0x80000702, 'QCMD(Q_GETQUOTA, PRJQUOTA)')
  t.equal(qcmd(Q.SETQUOTA, PRJQUOTA) >>> 0, 0x80000802, 'QCMD(Q_SETQUOTA, PRJQUOTA)')
  t.equal(qcmd(Q.GETINFO, PRJQUOTA) >>> 0, 0x80000502, 'QCMD(Q_GETINFO, PRJQUOTA)')
  t.equal(qcmd(Q.XGETQSTATV, PRJQUOTA), 0x580802, 'QCMD(Q_XGETQSTATV, PRJQUOTA)')
  t.ok(qcmd(Q.GETQUOTA, PRJQUOTA) < 0, 'negative as a C int, which is what quotactl() takes')
  t.equal(ioc('r', 0x58, 31, FSXATTR_SIZE), 0x801c581f, 'FS_IOC_FSGETXATTR')
  t.equal(ioc('w', 0x58, 32, FSXATTR_SIZE), 0x401c5820, 'FS_IOC_FSSETXATTR')
})

t.test('pure: quota units are 1 KiB blocks, rounded up', async (t) => {
  t.equal(bytesToQuotaBlocks(0n), 0n)
  t.equal(bytesToQuotaBlocks(1n), 1n)
  t.equal(bytesToQuotaBlocks(1024n), 1n)
  t.equal(bytesToQuotaBlocks(1025n), 2n)
  t.equal(bytesToQuotaBlocks(64n * 1024n * 1024n), 65536n)
  t.equal(bytesToQuotaBlocks(1n << 60n), 1n << 50n, 'no precision loss for huge sizes')
  t.equal(quotaBlocksToBytes(65536n), 64n * 1024n * 1024n)
  t.throws(() => bytesToQuotaBlocks(-1n), RangeError)
})

t.test('pure: struct if_dqblk', async (t) => {
  const d = {
    bHardLimit: 1n, bSoftLimit: 2n, curSpace: 3n, iHardLimit: 4n, iSoftLimit: 5n,
    curInodes: 6n, bTime: 7n, iTime: 8n, valid: 0x3f,
  }
  const b = encodeDqBlk(d)
  t.equal(b.length, DQBLK_SIZE)
  t.equal(DQBLK_SIZE, 72, 'sizeof(struct if_dqblk) on LP64')
  for (let i = 0; i < 8; i++) t.equal(b.readBigUInt64LE(i * 8), BigInt(i + 1), `u64 field ${i} at ${i * 8}`)
  t.equal(b.readUInt32LE(64), 0x3f, 'dqb_valid at 64')
  t.same(decodeDqBlk(b), d, 'round trip')
  t.throws(() => decodeDqBlk(Buffer.alloc(68)), RangeError)

  t.same(limitsToDqBlk({ blockHardBytes: 64n * BigInt(MiB) }), {
    bHardLimit: 65536n, bSoftLimit: 0n, curSpace: 0n, iHardLimit: 0n, iSoftLimit: 0n,
    curInodes: 0n, bTime: 0n, iTime: 0n, valid: QIF.BLIMITS,
  }, 'block limit only: inode limits untouched')
  const both = limitsToDqBlk({ blockHardBytes: 1000n, inodeHard: 500n })
  t.equal(both.bHardLimit, 1n, '1000 bytes round up to one block')
  t.equal(both.iHardLimit, 500n)
  t.equal(both.valid, QIF.BLIMITS | QIF.ILIMITS)
  t.equal(limitsToDqBlk({ blockHardBytes: 0n, inodeHard: 0n }).valid, QIF.BLIMITS | QIF.ILIMITS, '0 = remove limits')
  t.throws(() => limitsToDqBlk({ blockHardBytes: 1n, inodeHard: -1n }), RangeError)
})

t.test('pure: struct fsxattr', async (t) => {
  const x = { xflags: 0x200 | 0x8, extsize: 0, nextents: 3, projid: 0xfffffffe, cowextsize: 7 }
  const b = encodeFsXattr(x)
  t.equal(b.length, 28, 'sizeof(struct fsxattr)')
  t.equal(b.readUInt32LE(0), 0x208, 'fsx_xflags at 0')
  t.equal(b.readUInt32LE(12), 0xfffffffe, 'fsx_projid at 12')
  t.equal(b.readUInt32LE(16), 7, 'fsx_cowextsize at 16')
  t.ok(b.subarray(20).every((v) => v === 0), 'fsx_pad zero')
  t.same(decodeFsXattr(b), x)
})

t.test('pure: kernel config and the reasons users see', async (t) => {
  const cfg = parseKernelConfig('CONFIG_QUOTA=y\n# CONFIG_QFMT_V2 is not set\n# CONFIG_XFS_QUOTA is not set\nCONFIG_X="a b"\n')
  t.equal(cfg.get('CONFIG_QUOTA'), 'y')
  t.equal(cfg.get('CONFIG_QFMT_V2'), 'n')
  t.equal(cfg.get('CONFIG_X'), '"a b"')
  t.equal(cfg.get('CONFIG_NOPE'), undefined)
  const config = (n: string): string | undefined => cfg.get(n)
  const base = { mountPoint: '/m', blockDevice: '/dev/loop3', config }

  const ext4 = quotaProbeReason('ESRCH', { ...base, fsType: 'ext4' })
  t.match(ext4, /mount it with prjquota/)
  t.match(ext4, /tune2fs -O project,quota/)
  t.match(ext4, /lacks CONFIG_QFMT_V2/)
  t.notMatch(quotaProbeReason('ESRCH', { ...base, fsType: 'ext4', config: () => 'y' }), /QFMT_V2/, 'no false kernel blame')
  t.match(quotaProbeReason('ESRCH', { ...base, fsType: 'xfs' }), /^project quotas are not enabled on xfs at \/m \(\/dev\/loop3\): mount it with prjquota$/)
  t.match(quotaProbeReason('ENOSYS', { ...base, fsType: 'xfs' }), /no XFS quota support \(CONFIG_XFS_QUOTA is not set\)/)
  t.match(quotaProbeReason('ENOSYS', { ...base, fsType: 'btrfs', config: () => 'y' }), /btrfs has no VFS project quotas/)
  t.match(quotaProbeReason('ENOSYS', { ...base, fsType: 'xfs', config: () => undefined }), /no quota support for xfs/)
  t.match(quotaProbeReason('EINVAL', { ...base, fsType: 'vfat' }), /vfat .* does not support project quotas/)
  t.match(quotaProbeReason('ENOTBLK', { ...base, fsType: 'ext4' }), /\/dev\/loop3 is not a block device/)
  t.match(quotaProbeReason('ENODEV', { ...base, fsType: undefined }), /no filesystem is mounted from \/dev\/loop3/)
  t.match(quotaProbeReason('EPERM', { ...base, fsType: 'ext4' }), /CAP_SYS_ADMIN/)
  t.match(quotaProbeReason('EIO', { ...base, fsType: 'ext4' }), /quotactl failed .*: EIO/)
})

t.test('struct layouts agree with koffi', async (t) => {
  t.doesNotThrow(() => checkQuotaLayouts())
})

const rootSkip =
  process.platform !== 'linux'
    ? 'needs Linux'
    : process.getuid?.() !== 0
      ? 'needs root (loop devices, mount, quotactl); run as root to exercise it'
      : !existsSync('/dev/loop-control')
        ? 'no /dev/loop-control on this machine'
        : false
const needs = (...fss: string[]): string | false =>
  rootSkip || fss.map((f) => !hasMkfs(f) && `mkfs.${f} missing`).find(Boolean) || false

interface Mounted {
  mnt: string
  device: string
}

interface Env {
  dir: string
  /** A fresh loop-mounted filesystem, or the mount error (e.g. prjquota refused). */
  makeFs: (name: string, fs: string, size: number, mkfsArgs: string[], data?: string) => Mounted | ErrnoError
}

function setup(t: Test): Env {
  const { dir, mounts } = loopRig(t)
  return {
    dir,
    makeFs: (name, fs, size, mkfsArgs, data) => {
      const img = join(dir, `${name}.img`)
      writeFileSync(img, '')
      truncateSync(img, size)
      const mnt = join(dir, name)
      mkdirSync(mnt)
      mounts.push(mnt)
      let device = ''
      try {
        loopAttach(img, {
          autoclear: true,
          whileOpen: (a) => {
            device = a.device
            const r = spawnSync(`mkfs.${fs}`, [...mkfsArgs, a.device], { encoding: 'utf8' })
            if (r.status !== 0) throw new Error(`mkfs.${fs}: ${r.stderr}`)
            mount(a.device, mnt, fs, 0, data ?? null)
          },
        })
      } catch (e) {
        if (e instanceof ErrnoError && e.syscall === 'mount') return e
        throw e
      }
      return { mnt, device }
    },
  }
}


function mounted(m: Mounted | ErrnoError): Mounted {
  if (m instanceof ErrnoError) throw m
  return m
}

function errOf(fn: () => unknown): ErrnoError | undefined {
  try {
    fn()
  } catch (e) {
    return fromNodeError(e, 'test')
  }
  return undefined
}

const kernelConfig: Map<string, string> | undefined = (() => {
  try {
    return parseKernelConfig(gunzipSync(readFileSync('/proc/config.gz')).toString('utf8'))
  } catch {
    return undefined
  }
})()

t.test('ext4 without quotas: detection, project ids, quotactl errors', { skip: needs('ext4') }, async (t) => {
  const env = setup(t)
  const { mnt, device } = mounted(env.makeFs('ext4', 'ext4', 64 * MiB, ['-q', '-F']))
  const s = projectQuotaSupport(mnt, device)
  t.comment(`ext4: ${JSON.stringify(s)}`)
  t.equal(s.supported, false)
  t.equal(s.fsType, 'ext4')
  t.equal(s.code, 'ESRCH', 'quotas not enabled on this filesystem')
  t.match(s.reason, /prjquota/, 'reason names the mount option')
  if (kernelConfig?.get('CONFIG_QFMT_V2') === 'n') t.match(s.reason, /CONFIG_QFMT_V2/, 'and the missing kernel support')

  const vol = join(mnt, 'vol')
  mkdirSync(vol)
  t.same(getProjectId(vol), { projectId: 0, inherit: false }, 'FS_IOC_FSGETXATTR works without quotas')
  const e = errOf(() => setProjectId(vol, 42, true))
  if (e === undefined) {
    t.comment('setProjectId works on this ext4 (project feature present)')
    t.same(getProjectId(vol), { projectId: 42, inherit: true })
  } else {
    t.comment(`setProjectId on ext4 without the "project" feature: ${e.message}`)
    t.equal(e.code, 'ENOTSUP', 'EOPNOTSUPP: no "project" feature')
    t.equal(e.syscall, 'ioctl FS_IOC_FSSETXATTR')
    t.same(getProjectId(vol), { projectId: 0, inherit: false }, 'nothing half-applied (ext4 sets the flag before refusing the id; we undo it)')
  }
  t.doesNotThrow(() => setProjectId(vol, 0, false), 'setting project 0 is always accepted')

  t.equal(errOf(() => getProjectQuota(device, 42))?.code, 'ESRCH')
  t.equal(errOf(() => setProjectQuota(device, 42, { blockHardBytes: BigInt(MiB) }))?.code, 'ESRCH')
  t.equal(errOf(() => getProjectQuota(join(mnt, 'vol'), 42))?.errno, 15, 'not a block device: ENOTBLK')

  writeFileSync(join(mnt, 'file'), 'x')
  symlinkSync(vol, join(mnt, 'link'))
  t.equal(errOf(() => getProjectId(join(mnt, 'file')))?.code, 'ENOTDIR')
  t.equal(errOf(() => getProjectId(join(mnt, 'link')))?.code, 'ENOTDIR', 'symlinks are not followed (O_DIRECTORY|O_NOFOLLOW)')
  t.equal(errOf(() => setProjectId(join(mnt, 'link'), 5, true))?.code, 'ENOTDIR')
  t.same(getProjectId(vol), { projectId: 0, inherit: false }, 'target of the link untouched')
  t.throws(() => setProjectId(vol, -1, true), RangeError)
  t.throws(() => setProjectId(vol, 0xffffffff, true), RangeError, '(u32)-1 is INVALID_PROJID')
})

t.test('ext4 with project,quota features mounted prjquota', { skip: needs('ext4') }, async (t) => {
  const env = setup(t)
  const m = env.makeFs('ext4pq', 'ext4', 64 * MiB, ['-q', '-F', '-O', 'project,quota'], 'prjquota')
  if (m instanceof ErrnoError) {
    t.comment(`this kernel cannot mount ext4 with prjquota: ${m.message}`)
    t.equal(m.code, 'EINVAL')
    return
  }
  const s = projectQuotaSupport(m.mnt, m.device)
  t.same(s.supported, true, s.reason)
  await enforcement(t, m)
})

t.test('xfs without quota support: detection and project ids', { skip: needs('xfs') }, async (t) => {
  const env = setup(t)
  const { mnt, device } = mounted(env.makeFs('xfs', 'xfs', 512 * MiB, ['-q', '-f']))
  const s = projectQuotaSupport(mnt, device)
  t.comment(`xfs: ${JSON.stringify(s)}`)
  t.equal(s.supported, false)
  t.equal(s.fsType, 'xfs')
  if (kernelConfig?.get('CONFIG_XFS_QUOTA') === 'n') {
    t.equal(s.code, 'ENOSYS')
    t.match(s.reason, /CONFIG_XFS_QUOTA/, 'reason names the missing kernel support')
  } else {
    t.equal(s.code, 'ESRCH')
    t.match(s.reason, /prjquota/)
  }

  // xfs stores project ids whether or not quotas are on.
  const vol = join(mnt, 'vol')
  mkdirSync(vol)
  setProjectId(vol, 4242, true)
  t.same(getProjectId(vol), { projectId: 4242, inherit: true })
  mkdirSync(join(vol, 'child'))
  writeFileSync(join(vol, 'child', 'f'), 'x')
  t.same(getProjectId(join(vol, 'child')), { projectId: 4242, inherit: true }, 'new subdirectories inherit id and flag')
  setProjectId(vol, 4242, false)
  t.same(getProjectId(vol), { projectId: 4242, inherit: false }, 'inherit flag cleared, id kept')
  setProjectId(vol, 0xfffffffe, true)
  t.equal(getProjectId(vol).projectId, 0xfffffffe, 'full 32-bit project ids')

  const code = errOf(() => setProjectQuota(device, 4242, { blockHardBytes: BigInt(MiB) }))?.code
  t.ok(code === 'ENOSYS' || code === 'ESRCH', `Q_SETQUOTA refused (${code})`)
})

t.test('xfs mounted prjquota', { skip: needs('xfs') }, async (t) => {
  const env = setup(t)
  const m = env.makeFs('xfspq', 'xfs', 512 * MiB, ['-q', '-f'], 'prjquota')
  if (m instanceof ErrnoError) {
    t.comment(`this kernel cannot mount xfs with prjquota: ${m.message}`)
    t.equal(m.code, 'EINVAL')
    return
  }
  const s = projectQuotaSupport(m.mnt, m.device)
  t.same(s.supported, true, s.reason)
  await enforcement(t, m)
})

t.test('btrfs: no VFS project quotas', { skip: needs('btrfs') }, async (t) => {
  const env = setup(t)
  const { mnt, device } = mounted(env.makeFs('btrfs', 'btrfs', 256 * MiB, ['-q', '-f']))
  const s = projectQuotaSupport(mnt, device)
  t.equal(s.supported, false)
  t.equal(s.fsType, 'btrfs')
  t.match(s.reason, /btrfs/)
})

/** The enforcing path, on a filesystem mounted with prjquota. */
async function enforcement(t: Test, m: Mounted): Promise<void> {
  const vol = join(m.mnt, 'vol')
  mkdirSync(vol)
  setProjectId(vol, 77, true)
  setProjectQuota(m.device, 77, { blockHardBytes: 2n * BigInt(MiB), inodeHard: 100n })
  const q = getProjectQuota(m.device, 77)
  t.equal(q.blockHardBytes, 2n * BigInt(MiB))
  t.equal(q.inodeHard, 100n)
  writeFileSync(join(vol, 'a'), Buffer.alloc(MiB))
  const e = errOf(() => writeFileSync(join(vol, 'b'), Buffer.alloc(2 * MiB)))
  t.equal(e?.code, 'EDQUOT', 'the limit is enforced')
  t.ok(getProjectQuota(m.device, 77).usedBytes >= BigInt(MiB), 'usage is reported')
}
