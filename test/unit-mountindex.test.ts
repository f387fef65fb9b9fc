// node/mountindex.ts: finding our volumes' mounts in /proc/self/mountinfo fixtures, and the
// in-memory index the hot path uses instead.
import t from 'tap'
import { parseMountInfo } from '../native/index.js'
import { MountIndex, volumeMounts } from '../node/mountindex.js'

const A = 'v-' + 'a'.repeat(32)
const B = 'v-' + 'b'.repeat(32)
const C = 'v-' + 'c'.repeat(32)

let next = 100
/** One mountinfo line: id parent dev root mountpoint opts [optional] - fstype source superopts */
function line(dev: string, root: string, mountPoint: string, fs = 'ext4'): string {
  return `${next++} 1 ${dev} ${root} ${mountPoint} rw,relatime shared:1 - ${fs} /dev/x rw`
}

function found(lines: string[], volumesDir: string): Record<string, string[]> {
  return Object.fromEntries([...volumeMounts(parseMountInfo(lines.join('\n')), volumesDir)].map(([k, v]) => [k, [...v].sort()]))
}

const ROOT = line('253:1', '/', '/')

t.test('data root on /: bind mounts of volume dirs are found by their root', async (t) => {
  const vd = '/var/lib/tscsi/data/volumes'
  const got = found([
    ROOT,
    line('0:5', '/', '/dev', 'devtmpfs'),
    line('253:1', `${vd}/${A}`, '/var/lib/kubelet/plugins/kubernetes.io/csi/pv/pv-a/globalmount'),
    line('253:1', `${vd}/${A}`, '/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv-a/mount'),
    line('253:1', `${vd}/${B}`, '/var/lib/kubelet/pods/p2/volumes/kubernetes.io~csi/pv-b/mount'),
    line('253:1', vd, '/mnt/all-volumes'), // the volumes folder itself is no volume
    line('253:1', '/var/lib/tscsi/data/volumes-old/' + C, '/mnt/prefix-trap'),
    line('253:1', '/home/user', '/mnt/home'),
  ], vd)
  t.same(found([ROOT], vd), {})
  t.same(got, {
    [A]: ['/var/lib/kubelet/plugins/kubernetes.io/csi/pv/pv-a/globalmount', '/var/lib/kubelet/pods/p1/volumes/kubernetes.io~csi/pv-a/mount'],
    [B]: ['/var/lib/kubelet/pods/p2/volumes/kubernetes.io~csi/pv-b/mount'],
  })
})

t.test('data root on its own mount at /mnt/data: roots are relative to that filesystem', async (t) => {
  const got = found([
    ROOT,
    line('8:17', '/', '/mnt/data', 'xfs'),
    line('8:17', `/volumes/${A}`, '/var/lib/kubelet/pods/p1/mount', 'xfs'),
    line('253:1', `/volumes/${B}`, '/var/lib/kubelet/pods/p2/mount'), // same root string, other filesystem
    line('253:1', `/mnt/data/volumes/${C}`, '/var/lib/kubelet/pods/p3/mount'), // the hidden directory under the mount point
  ], '/mnt/data/volumes')
  t.same(got, { [A]: ['/var/lib/kubelet/pods/p1/mount'] })
})

t.test('data root inside a bind mount whose root is not /', async (t) => {
  const got = found([
    ROOT,
    line('8:17', '/', '/srv', 'xfs'),
    line('8:17', '/tscsi', '/var/lib/tscsi', 'xfs'),
    line('8:17', `/tscsi/data/volumes/${A}`, '/var/lib/kubelet/pods/p1/mount', 'xfs'),
    line('8:17', `/data/volumes/${B}`, '/var/lib/kubelet/pods/p2/mount', 'xfs'), // not under the bind's root
  ], '/var/lib/tscsi/data/volumes')
  t.same(got, { [A]: ['/var/lib/kubelet/pods/p1/mount'] })
})

t.test('volumes folder that is itself a mount point', async (t) => {
  const got = found([ROOT, line('8:17', '/', '/data/volumes', 'xfs'), line('8:17', `/${A}`, '/mnt/a', 'xfs')], '/data/volumes')
  t.same(got, { [A]: ['/mnt/a'] })
})

t.test('"//deleted" roots still count: the mount outlives its directory', async (t) => {
  const vd = '/var/lib/tscsi/data/volumes'
  t.same(found([ROOT, line('253:1', `${vd}/${A}//deleted`, '/var/lib/kubelet/pods/p1/mount')], vd), { [A]: ['/var/lib/kubelet/pods/p1/mount'] })
})

t.test('escaped characters in mount points are decoded', async (t) => {
  const vd = '/var/lib/tscsi/data/volumes'
  t.same(found([ROOT, line('253:1', `${vd}/${A}`, '/var/lib/kubelet/pods/a\\040b/mount')], vd), { [A]: ['/var/lib/kubelet/pods/a b/mount'] })
})

t.test('roots under the volumes folder that are not our ids are ignored', async (t) => {
  const vd = '/var/lib/tscsi/data/volumes'
  const foreign = ['pvc-123', 'v-' + 'A'.repeat(32), 'v-' + 'a'.repeat(31), 'v-' + 'a'.repeat(33), 's-' + 'a'.repeat(32), '.hidden', 'lost+found']
  const got = found([ROOT, ...foreign.map((id, i) => line('253:1', `${vd}/${id}`, `/mnt/f${i}`))], vd)
  t.same(got, {})
})

t.test('a table without a mount holding the folder finds nothing', async (t) => {
  t.same(found([], '/var/lib/tscsi/data/volumes'), {})
  t.same(found([line('8:17', '/', '/srv', 'xfs'), line('8:17', `/${A}`, '/mnt/a', 'xfs')], '/data/volumes'), {})
})

t.test('MountIndex: add, remove, paths, volumes, replaceAll', async (t) => {
  const ix = new MountIndex()
  ix.add(A, '/s')
  ix.add(A, '/t')
  ix.add(A, '/t')
  ix.add(B, '/u')
  t.same(ix.paths(A).sort(), ['/s', '/t'], 'a path is listed once')
  t.same(ix.volumes().sort(), [A, B])
  ix.remove(A, '/s')
  ix.remove(A, '/never')
  ix.remove(C, '/x')
  t.same(ix.paths(A), ['/t'])
  ix.remove(A, '/t')
  t.same(ix.volumes(), [B], 'a volume without paths is dropped')
  t.same(ix.paths(A), [])
  ix.replaceAll(new Map([[C, ['/c1', '/c2']]]))
  t.same(ix.volumes(), [C])
  t.same(ix.paths(C), ['/c1', '/c2'])
})

t.test('mountAbove finds the nearest proper ancestor that is one of our mounts, by ancestors alone', async (t) => {
  const idx = new MountIndex()
  const A = `v-${'a'.repeat(32)}`
  const B = `v-${'b'.repeat(32)}`
  idx.add(A, '/var/lib/kubelet/plugins/x/globalmount')
  idx.add(B, '/var/lib/kubelet/pods/p1/volumes/b/mount')
  t.same(idx.mountAbove('/var/lib/kubelet/plugins/x/globalmount/sub/dir'), { volumeId: A, mountPoint: '/var/lib/kubelet/plugins/x/globalmount' })
  t.equal(idx.mountAbove('/var/lib/kubelet/plugins/x/globalmount'), undefined, 'the mount point itself is not inside it')
  t.equal(idx.mountAbove('/var/lib/kubelet/plugins/x/globalmount2/y'), undefined, 'a sibling that shares a prefix is not inside it')
  t.same(idx.mountAbove('/var/lib/kubelet/pods/p1/volumes/b/mount/x'), { volumeId: B, mountPoint: '/var/lib/kubelet/pods/p1/volumes/b/mount' })
  idx.remove(B, '/var/lib/kubelet/pods/p1/volumes/b/mount')
  t.equal(idx.mountAbove('/var/lib/kubelet/pods/p1/volumes/b/mount/x'), undefined, 'gone once removed')
  idx.replaceAll(new Map([[B, ['/mnt/b']]]))
  t.equal(idx.mountAbove('/var/lib/kubelet/plugins/x/globalmount/sub'), undefined, 'replaceAll forgets the old ones')
  t.same(idx.mountAbove('/mnt/b/c'), { volumeId: B, mountPoint: '/mnt/b' })
})
