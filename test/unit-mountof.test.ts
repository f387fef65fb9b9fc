// node/quota.ts mountOf(): which mount holds a pool's folder, so quotas go to the filesystem the
// path really reaches. Found on a stock kernel in the VM suite: with a pool mounted over a folder
// that was already a mount point, the quota went to the covered filesystem below.
import t from 'tap'
import { parseMountInfo } from '../native/index.js'
import { mountOf } from '../node/quota.js'

const mi = (lines: string[]) => parseMountInfo(lines.join('\n'))
const ROOT = '1 0 253:1 / / rw - ext4 /dev/vda rw'

t.test('the longest mount point above the path wins', async (t) => {
  const table = mi([ROOT, '20 1 7:0 / /data rw - xfs /dev/loop0 rw', '21 1 7:1 / /data2 rw - xfs /dev/loop1 rw'])
  t.equal(mountOf(table, '/data/pools/default')?.source, '/dev/loop0')
  t.equal(mountOf(table, '/data2')?.source, '/dev/loop1', 'the mount point itself')
  t.equal(mountOf(table, '/datax/y')?.source, '/dev/vda', 'a sibling with a common prefix is not inside')
})

t.test('two mounts on one mount point: the one on top holds the path', async (t) => {
  const lower = '20 1 8:16 / /data rw - ext4 /dev/vdb rw'
  const upper = '30 20 7:0 / /data rw - xfs /dev/loop0 rw'
  t.equal(mountOf(mi([ROOT, lower, upper]), '/data/pool')?.source, '/dev/loop0', 'listed after the mount it covers')
  t.equal(mountOf(mi([ROOT, upper, lower]), '/data/pool')?.source, '/dev/loop0', 'listed before it: its parent tells')
  const third = '40 30 7:2 / /data rw - btrfs /dev/loop2 rw'
  t.equal(mountOf(mi([ROOT, lower, upper, third]), '/data/pool')?.source, '/dev/loop2', 'three deep: the topmost')
})
