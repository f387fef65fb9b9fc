import t from 'tap'
import { parseMountInfo, readMountInfo } from '../native/index.js'

t.test('typical lines, optional fields present and absent', async (t) => {
  const text = [
    '22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw',
    '27 1 253:1 / / rw,relatime shared:1 master:3 - ext4 /dev/mapper/root rw,errors=remount-ro',
    '30 27 0:25 / /run rw,nosuid,nodev - tmpfs tmpfs rw,size=1630240k,mode=755',
    '',
  ].join('\n')
  const m = parseMountInfo(text)
  t.equal(m.length, 3)
  t.same(m[0], {
    mountId: 22,
    parentId: 27,
    dev: '0:21',
    root: '/',
    mountPoint: '/proc',
    mountOptions: ['rw', 'nosuid', 'nodev', 'noexec', 'relatime'],
    optionalFields: ['shared:12'],
    fsType: 'proc',
    source: 'proc',
    superOptions: ['rw'],
  })
  t.same(m[1]!.optionalFields, ['shared:1', 'master:3'])
  t.equal(m[1]!.source, '/dev/mapper/root')
  t.same(m[1]!.superOptions, ['rw', 'errors=remount-ro'])
  t.same(m[2]!.optionalFields, [], 'no optional fields')
  t.equal(m[2]!.fsType, 'tmpfs')
})

t.test('octal escapes in root, mount point and source', async (t) => {
  const line =
    '100 27 8:1 /srv/my\\040data /var/lib/kubelet/pods/a\\040b/vol\\011tab\\012nl\\134bs rw,relatime shared:5 - ext4 /dev/disk\\040one rw'
  const [m] = parseMountInfo(line)
  t.ok(m)
  t.equal(m!.root, '/srv/my data')
  t.equal(m!.mountPoint, '/var/lib/kubelet/pods/a b/vol\ttab\nnl\\bs')
  t.equal(m!.source, '/dev/disk one')
  // A literal backslash that is not an escape stays as is.
  const [n] = parseMountInfo('5 1 0:3 / /x\\y rw - tmpfs none rw')
  t.equal(n!.mountPoint, '/x\\y')
  // Escaped comma inside an option value stays inside that option.
  const [o] = parseMountInfo('6 1 0:40 / /merged rw - overlay overlay rw,lowerdir=/a\\054b:/c,upperdir=/u')
  t.same(o!.superOptions, ['rw', 'lowerdir=/a,b:/c', 'upperdir=/u'])
})

t.test('bind mount with a non-/ root', async (t) => {
  const text =
    '845 27 253:1 /var/lib/tscsi/volumes/pvc-1 /var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/pvc-1/mount rw,nosuid,relatime shared:1 - ext4 /dev/mapper/root rw\n'
  const [m] = parseMountInfo(text)
  t.equal(m!.root, '/var/lib/tscsi/volumes/pvc-1')
  t.equal(m!.mountPoint, '/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/pvc-1/mount')
  t.equal(m!.dev, '253:1')
  t.equal(m!.mountId, 845)
})

t.test('empty source and CRLF are handled', async (t) => {
  const [m] = parseMountInfo('7 1 0:50 / /e rw - tmpfs  rw\r\n')
  t.ok(m)
  t.equal(m!.fsType, 'tmpfs')
  t.equal(m!.source, '')
  t.same(m!.superOptions, ['rw'])
})

t.test('malformed lines are skipped, not thrown', async (t) => {
  const good = '22 27 0:21 / /proc rw - proc proc rw'
  const bad = [
    'garbage',
    '22 27 0:21 / /proc rw proc proc rw', // no separator
    '22 27 0:21 / /proc rw - proc proc', // missing super options
    '22 27 0:21 / /proc rw - proc proc rw extra', // too many trailing fields
    'x 27 0:21 / /proc rw - proc proc rw', // non-numeric id
    '22 27 021 / /proc rw - proc proc rw', // bad dev
    '22 27 0:21 relative /proc rw - proc proc rw', // root not absolute
    '22 27 0:21 / /proc - proc proc rw', // too few fixed fields
    '22 27 0:21 / /proc rw -  proc rw', // empty fstype
  ]
  let m: ReturnType<typeof parseMountInfo> = []
  t.doesNotThrow(() => {
    m = parseMountInfo([bad[0], good, ...bad.slice(1), good].join('\n'))
  })
  t.equal(m.length, 2, 'only the two good lines survive')
  t.same(parseMountInfo(''), [])
})

t.test('readMountInfo parses the live table', { skip: process.platform !== 'linux' && 'Linux only' }, async (t) => {
  const m = readMountInfo()
  t.ok(m.length > 0)
  t.ok(m.some((x) => x.mountPoint === '/'), 'has a root mount')
  const ids = new Set(m.map((x) => x.mountId))
  t.equal(ids.size, m.length, 'mount ids are unique')
})
