// The guest itself: the kernel the suites claim to run on, the capability the host lacks, and
// the scratch disks mounted as the other suites expect them.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { readMountInfo } from '../../native/index.js'

t.test('the guest is what the kernel suites need', async (t) => {
  const release = readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()
  t.comment(`kernel ${release}`)
  t.match(release, /-amd64$/, 'a stock Debian kernel')
  const capEff = BigInt('0x' + /CapEff:\s*([0-9a-f]+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]!)
  t.equal((capEff >> 24n) & 1n, 1n, 'CAP_SYS_RESOURCE is effective')
  const mounts = readMountInfo()
  // The topmost mount at mp (a checkout under /tmp is bound on top of /tmp's xfs, not at it).
  const at = (mp: string) => mounts.filter((m) => m.mountPoint === mp).pop()
  t.equal(at('/')?.fsType, 'tmpfs', '/ is a real mount')
  t.equal(at('/scratch/xfs')?.fsType, 'xfs')
  t.match((at('/scratch/xfs')?.superOptions ?? []).join(','), /prjquota/)
  t.equal(at('/scratch/ext4')?.fsType, 'ext4')
  t.match((at('/scratch/ext4')?.superOptions ?? []).join(','), /prjquota/)
  t.equal(at('/scratch/plain')?.fsType, 'ext4')
  t.equal(at('/tmp')?.fsType, 'xfs', '/tmp on its own xfs')
  t.match((at('/tmp')?.superOptions ?? []).join(','), /prjquota/)
})
