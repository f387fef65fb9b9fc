// Process-level behaviour of the real entrypoints: no TCP port on the privileged node plugin,
// clean SIGTERM, stale sockets, flag errors.
import t from 'tap'
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, chmodSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { client, ROOT, start, testRig } from './helpers/driver.js'

/** Socket inodes a process holds open. */
function socketInodes(pid: number): Set<string> {
  const out = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m?.[1]) out.add(m[1])
    } catch { /* fd closed meanwhile */ }
  }
  return out
}

/** Inodes of TCP sockets in the process's network namespace (column 10 of /proc/PID/net/tcp*). */
function tcpInodes(pid: number): Set<string> {
  const out = new Set<string>()
  for (const f of ['tcp', 'tcp6']) {
    const lines = readFileSync(`/proc/${pid}/net/${f}`, 'utf8').trim().split('\n').slice(1)
    for (const l of lines) out.add(l.trim().split(/\s+/)[9] ?? '')
  }
  return out
}

if (process.getuid?.() !== 0) {
  t.skip('process tests start the node plugin, which needs root', () => {})
} else {
  t.test('the node plugin opens no TCP socket; its CSI and metrics endpoints are unix sockets', async (t) => {
    const rig = testRig(t)
    const node = await start('node', rig.dir)
    rig.procs.push(node)
    const pid = node.child.pid!
    const mine = socketInodes(pid)
    t.ok(mine.size > 0, 'the process holds sockets')
    const tcp = tcpInodes(pid)
    t.same([...mine].filter((i) => tcp.has(i)), [], 'none of them is a TCP socket')
    const unixListening = readFileSync('/proc/net/unix', 'utf8')
    t.ok(unixListening.includes(node.socket), 'the CSI socket is a unix socket')
    t.ok(unixListening.includes(node.socket.replace(/\.sock$/, '-metrics.sock')), 'the metrics socket sits beside it')
  })

  t.test('SIGTERM drains and exits 0, removing the socket; a stale socket does not block a restart', async (t) => {
    const rig = testRig(t)
    const ctl = await start('controller', rig.dir)
    rig.procs.push(ctl)
    const id = client('Identity', ctl.socket)
    const info = await id.GetPluginInfo({})
    id.close()
    t.equal(info.name, 'local.tscsi.dev')
    ctl.child.kill('SIGTERM')
    t.equal(await ctl.exited, 0, 'exit code 0 after SIGTERM')
    t.notOk(existsSync(ctl.socket), 'the socket file is removed')

    const again = await start('controller', rig.dir)
    rig.procs.push(again)
    again.child.kill('SIGKILL')
    await again.exited
    t.ok(existsSync(again.socket), 'kill -9 leaves a stale socket file behind')
    const third = await start('controller', rig.dir)
    rig.procs.push(third)
    t.pass('a new process starts over the stale socket')
  })

  t.test('flag errors are reported with the flag name and exit code 2', async (t) => {
    for (const [args, want] of [
      [['--endpoint', 'relative.sock'], /--endpoint/],
      [['--realise-timeout', 'soon'], /--realise-timeout/],
      [['--drivername', 'Not_Valid'], /--drivername/],
      [['--no-such-flag'], /no-such-flag/],
    ] as const) {
      const r = spawnSync(process.execPath, [path.join(ROOT, 'dist/controller/main.js'), ...args], { encoding: 'utf8' })
      t.equal(r.status, 2, `exit 2 for ${args.join(' ')}`)
      t.match(r.stderr, want)
    }
  })
}

t.test('--socket-group lets a non-root sidecar in that group connect, and nobody else', { skip: process.getuid?.() === 0 ? false : 'needs root' }, async (t) => {
  const rig = testRig(t)
  const node = await start('node', rig.dir, ['--socket-group', '65532'])
  rig.procs.push(node)
  const metricsSock = node.socket.replace(/\.sock$/, '-metrics.sock')
  for (const sock of [node.socket, metricsSock]) {
    const st = statSync(sock)
    t.equal(st.mode & 0o777, 0o660, `${path.basename(sock)} has mode 0660`)
    t.equal(st.gid, 65532, `${path.basename(sock)} belongs to group 65532`)
  }
  // A real connect(2) as uid 65532 in and out of that group: only the member gets through. The
  // test's socket folder is 0700 (mkdtemp); kubelet's plugin folders are searchable.
  chmodSync(path.dirname(node.socket), 0o711)
  const probe = (gid: number) => spawnSync(process.execPath, ['-e', `require('net').connect(${JSON.stringify(node.socket)}).on('connect', () => process.exit(0)).on('error', (e) => { console.log(e.code); process.exit(1) })`], { uid: 65532, gid, timeout: 10_000, encoding: 'utf8' })
  t.equal(probe(65532).status, 0, 'uid 65532 in group 65532 connects')
  const other = probe(65533)
  t.equal(other.status, 1, 'uid 65532 in another group is refused')
  t.match(other.stdout, /EACCES/, '... with EACCES')
})
