// node/nfs-options.ts: the server, share and subDir checks, and the kernel's text options for an
// nfs4 mount(2). The hostile cases are issue 16's (option injection through server or share, a
// newline in share) and the path traversal of CVE-2026-3864/3865 (a "../" subDir).
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { MS } from '../native/index.js'
import { checkShare, checkSubDir, majorTimeoutMs, parseServer, planNfsMount, type NfsMountRequest } from '../node/nfs-options.js'

const base: NfsMountRequest = { serverAddress: '127.0.0.1', share: '/export', subDir: 'sub', mountOptions: [] }
const INVALID = (message: RegExp) => ({ code: status.INVALID_ARGUMENT, message })

t.test('the plan for a plain IPv4 server: source, fs type, flags and every driver option', async (t) => {
  const p = planNfsMount(base)
  t.equal(p.source, '127.0.0.1:/export/sub')
  t.equal(p.fsType, 'nfs4')
  t.equal(p.flags, MS.NOSUID | MS.NODEV)
  t.equal(p.data, 'vers=4.1,addr=127.0.0.1,clientaddr=0.0.0.0,proto=tcp,hard,timeo=100,retrans=3')
  t.equal(p.exportPath, '/export/sub')
  t.equal(p.majorTimeoutMs, (100 + 200 + 300) * 100, 'tries of 10, 20 and 30 s: the third ends past 4 x 10 s')
})

t.test('IPv6: brackets in the source, tcp6, the client address of the same family', async (t) => {
  const p = planNfsMount({ ...base, serverAddress: 'fd00::5', clientAddress: 'fd00::9' })
  t.equal(p.source, '[fd00::5]:/export/sub')
  t.match(p.data, /^vers=4\.1,addr=fd00::5,clientaddr=fd00::9,proto=tcp6,/)
  t.match(planNfsMount({ ...base, serverAddress: '::1' }).data, /clientaddr=::,/, 'the unspecified address by default')
  t.throws(() => planNfsMount({ ...base, serverAddress: 'fd00::5', clientAddress: '10.0.0.1' }), INVALID(/client address/))
})

t.test('share and subDir: the share itself, the root export, a space in a name', async (t) => {
  t.equal(planNfsMount({ ...base, subDir: '' }).source, '127.0.0.1:/export')
  t.equal(planNfsMount({ ...base, share: '/', subDir: 'a/b' }).source, '127.0.0.1:/a/b')
  t.equal(planNfsMount({ ...base, share: '/', subDir: '' }).source, '127.0.0.1:/')
  t.equal(planNfsMount({ ...base, subDir: 'ns/pvc 1' }).exportPath, '/export/ns/pvc 1')
})

t.test('user options: versions, recovery, bounded numbers, VFS flags', async (t) => {
  const p = planNfsMount({ ...base, mountOptions: ['nfsvers=4.2', 'soft,timeo=50', ' retrans=1 ', 'noatime', 'ro', 'nconnect=4', 'lookupcache=positive', 'noresvport', 'sec=sys', 'port=2049'] })
  t.equal(p.version, '4.2')
  t.equal(p.data, 'vers=4.2,addr=127.0.0.1,clientaddr=0.0.0.0,proto=tcp,soft,timeo=50,retrans=1,nconnect=4,port=2049,lookupcache=positive,noresvport,sec=sys')
  t.equal(p.flags, MS.NOSUID | MS.NODEV | MS.NOATIME | MS.RDONLY)
  t.equal(p.majorTimeoutMs, (50 + 100) * 100, 'tries of 5 and 10 s reach 2 x 5 s')
  t.equal(planNfsMount({ ...base, mountOptions: ['vers=4.1', 'hard'] }).version, '4.1')
  t.equal(planNfsMount({ ...base, mountOptions: ['ro', 'rw'] }).flags & MS.RDONLY, 0, 'a later rw undoes ro')
  t.equal(planNfsMount({ ...base, mountOptions: ['nosuid', 'nodev'] }).flags, MS.NOSUID | MS.NODEV, 'nosuid and nodev are on anyway')
  t.equal(majorTimeoutMs(600, 2), (600 + 1200) * 100, 'tries of 60 and 120 s reach 3 x 60 s')
  t.equal(majorTimeoutMs(600, 10), 6000 * 100 + 0, 'never past 600 s: the cap is the whole major timeout')
  t.equal(majorTimeoutMs(10, 0), 1000, 'no retries: one try')
  t.equal(majorTimeoutMs(10, 1), 3000, 'tries of 1 and 2 s reach 2 x 1 s')
})

t.test('hostile servers: option injection and anything but a host name or an address', async (t) => {
  for (const s of ['x,vers=2', 'x=y', 'host\nname', 'host\0', 'a b', 'host:2049', '/path', '', '-lead.example', 'fe80::1%eth0', '[::1', 'ex ample.com', 'a'.repeat(64) + '.com', 'exa_mple.com']) {
    t.throws(() => parseServer(s), INVALID(/^parameters\.server: /), JSON.stringify(s))
  }
  t.equal(parseServer('nfs.example.com.'), 'nfs.example.com')
  t.equal(parseServer('10.1.2.3'), '10.1.2.3')
  t.equal(parseServer('[fd00::1]'), 'fd00::1')
  t.equal(parseServer('fd00::1'), 'fd00::1')
  // planNfsMount takes only a resolved address: a name, or anything with separators, is refused.
  for (const a of ['x,vers=2', 'nfs.example.com', '127.0.0.1,vers=2', 'fe80::1%eth0', '']) {
    t.throws(() => planNfsMount({ ...base, serverAddress: a }), INVALID(/^server address: /), JSON.stringify(a))
  }
})

t.test('hostile shares: injection, control characters, relative or non-normal paths', async (t) => {
  for (const s of ['/export,vers=2', '/ex=port', '/export\nsecond', '/export\0', 'export', '', '/export/', '/export//sub', '/export/../etc', '/..', '/./export', '/export/.', '/a\\b', '/' + 'a'.repeat(1100)]) {
    t.throws(() => checkShare(s), INVALID(/^parameters\.share: /), JSON.stringify(s))
    t.throws(() => planNfsMount({ ...base, share: s }), INVALID(/^parameters\.share: /), `${JSON.stringify(s)} through the plan`)
  }
})

t.test('hostile subDirs (CVE-2026-3864/3865): traversal, absolute, non-normal, injection', async (t) => {
  for (const s of ['..', '../x', 'a/../../etc', 'a/..', './a', 'a/./b', '/etc', 'a//b', 'a/', 'a,vers=2', 'a=b', 'a\nb', 'a\0b', '..\\x']) {
    t.throws(() => checkSubDir(s), INVALID(/^parameters\.subDir: /), JSON.stringify(s))
    t.throws(() => planNfsMount({ ...base, subDir: s }), INVALID(/^parameters\.subDir: /), `${JSON.stringify(s)} through the plan`)
  }
  t.equal(checkSubDir('...'), '...', 'three dots is a name, not a parent')
  t.equal(checkSubDir('a..b/c'), 'a..b/c')
  t.throws(() => checkSubDir('é'.repeat(600)), INVALID(/longer than 1024 bytes/), 'the bound is in bytes, not characters')
  t.throws(() => planNfsMount({ ...base, share: '/' + 'a'.repeat(600), subDir: 'b'.repeat(600) }), INVALID(/^parameters\.subDir: .*together/))
})

t.test('user options that override the driver or are not on the allow-list are refused, naming the entry', async (t) => {
  const F = 'volume_capability.mount.mount_flags'
  // [options, the entry named, what the message says]
  const cases: [string[], number, RegExp][] = [
    [['addr=10.0.0.66'], 0, /"addr=10\.0\.0\.66": addr may not be set/],
    [['hard', 'clientaddr=1.2.3.4'], 1, /"clientaddr=1\.2\.3\.4": clientaddr may not be set/],
    [['soft,proto=udp'], 0, /"proto=udp"/],
    [['udp'], 0, /"udp"/],
    [['mountport=20048'], 0, /"mountport=20048"/],
    [['vers=3'], 0, /only NFS 4\.1 and 4\.2/],
    [['nfsvers=4.0'], 0, /only NFS 4\.1 and 4\.2/],
    [['vers=2'], 0, /only NFS 4\.1 and 4\.2/],
    [['vers'], 0, /"vers" is not an NFS mount option/],
    [['timeo=0'], 0, /timeo must be a whole number from 10 to 600/],
    [['timeo=1e3'], 0, /timeo must be/],
    [['timeo=-5'], 0, /timeo must be/],
    [['retrans=99'], 0, /retrans must be a whole number from 0 to 10/],
    [['port=0'], 0, /port must be/],
    [['sec=krb5'], 0, /sec takes sys/],
    [['lookupcache=maybe'], 0, /lookupcache takes/],
    [['fsc'], 0, /"fsc" is not an NFS mount option/],
    [['noac', 'local_lock=all'], 1, /"local_lock=all"/],
    [['hard=1'], 0, /"hard=1"/],
    [['ro=1'], 0, /"ro=1"/],
    [['suid'], 0, /"suid"/], // nosuid and nodev are the driver's, always
    [['dev'], 0, /"dev"/],
    [['context=system_u:object_r:nfs_t:s0'], 0, /"context=/],
  ]
  for (const [opts, i, re] of cases) {
    t.throws(() => planNfsMount({ ...base, mountOptions: opts }), INVALID(new RegExp(`^${F.replace(/\./g, '\\.')}\\[${i}\\]: .*${re.source}`)), JSON.stringify(opts))
  }
})

t.test('uid= and gid=: the owner of a new volume directory, never a kernel option', async (t) => {
  const p = planNfsMount({ ...base, mountOptions: ['uid=500', 'gid=0'] })
  t.same(p.owner, { uid: 500, gid: 0 })
  t.notMatch(p.data, /uid|gid/, 'the kernel sees neither')
  t.same(planNfsMount(base).owner, {}, 'none by default')
  for (const bad of ['uid=-1', 'uid=4294967295', 'gid=abc', 'uid=', 'uid=12345678901']) {
    t.throws(() => planNfsMount({ ...base, mountOptions: [bad] }), INVALID(/numeric id from 0 to 4294967294/), bad)
  }
})
