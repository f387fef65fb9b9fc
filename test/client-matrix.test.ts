// Real clients against both real servers, over tcp and unix (issue 14, part 1). The seed 003
// walk-through drives tscsi with csc, whose grpc-go 1.19 sends the whole endpoint as :authority;
// Node's HTTP/2 layer refused every such call until common/h2front.ts. Each client here is a
// different implementation of gRPC on the wire:
//   csc-grpc119       grpc-go 1.19, dialled as csc dials (test/clients/csc-go)
//   csc-grpc-current  the same program on a current grpc-go (csi-sanity and the sidecars are too)
//   grpc-js           what the rest of the tests use
//   python            grpcio from PyPI
// The clients are built by scripts/client-tools.sh; a machine without Go skips with that reason,
// and a build that fails is a failure.
import t, { type Test } from 'tap'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { mountInfoOf, mountsUnder, spawnDriver, testRig } from './helpers/driver.js'
import { buildClients, csc119, cscCurrent, grpcJs, python, spawnTcp } from './helpers/clients.js'

const DRIVER = 'local.tscsi.dev'

interface Pair { transport: 'tcp' | 'unix'; dir: string; controller: string; node: string }

/** A controller and a node plugin sharing one store, on tcp:// or unix:// endpoints. */
async function pair(t: Parameters<typeof testRig>[0], transport: 'tcp' | 'unix'): Promise<Pair> {
  const rig = testRig(t)
  const dir = rig.dir
  if (transport === 'tcp') {
    const ctl = await spawnTcp('controller', dir)
    rig.procs.push(ctl)
    const node = await spawnTcp('node', dir)
    rig.procs.push(node)
    return { transport, dir, controller: ctl.endpoint, node: node.endpoint }
  }
  // Socket paths must stay under 108 bytes; test folders are long.
  const sockets = path.join('/tmp', `tscsi-cm-${process.pid}-${Math.random().toString(36).slice(2, 8)}`)
  mkdirSync(sockets, { recursive: true })
  t.teardown(() => import('node:fs').then((fs) => fs.rmSync(sockets, { recursive: true, force: true })))
  const ctl = await spawnDriver({ kind: 'controller', dir, socket: path.join(sockets, 'c.sock') })
  rig.procs.push(ctl)
  const node = await spawnDriver({ kind: 'node', dir, socket: path.join(sockets, 'n.sock') })
  rig.procs.push(node)
  return { transport, dir, controller: `unix://${ctl.socket}`, node: `unix://${node.socket}` }
}

// How each client names an endpoint: csc takes seed 003's tcp:// form (and, for unix, both a
// unix:// URL and a bare path, as gocsi does); grpc-js and grpcio take HOST:PORT or unix:///path.
const grpcTarget = (endpoint: string): string => endpoint.replace(/^tcp:\/\//, '')
const cscTargets = (endpoint: string): string[] => (endpoint.startsWith('unix://') ? [endpoint, endpoint.slice('unix://'.length)] : [endpoint])

const built = buildClients()
if (built?.skip) {
  t.test('the client matrix', { skip: `its clients cannot be built here: ${built.skip}` }, () => {})
} else if (built?.fail) {
  t.fail(built.fail)
} else {
  for (const transport of ['tcp', 'unix'] as const) {
    t.test(`every client gets answers from both servers over ${transport}`, async (t) => {
      const p = await pair(t, transport)
      for (const [server, endpoint] of [['controller', p.controller], ['node', p.node]] as const) {
        for (const [client, csc] of [['csc-grpc119', csc119], ['csc-grpc-current', cscCurrent]] as const) {
          for (const target of cscTargets(endpoint)) {
            const name = `${client} ${server} ${target === endpoint ? transport : 'bare socket path'}`
            const info = await csc(target, 'identity', 'plugin-info')
            t.same({ code: info.code, name: info.out?.name }, { code: 0, name: DRIVER }, `${name}: plugin-info (${info.err})`)
            // Twenty calls on one connection: after the first, grpc-go refers to :authority by its
            // index in HPACK's dynamic table, which the repair must have kept in step.
            const probe = await csc(target, '--count', '20', 'identity', 'probe')
            t.same({ code: probe.code, ready: probe.out?.ready?.value }, { code: 0, ready: true }, `${name}: 20 probes on one connection (${probe.err})`)
          }
        }
        const js = await grpcJs(grpcTarget(endpoint), 'Identity', 'GetPluginInfo')
        t.same({ code: js.code, name: js.out?.name }, { code: 0, name: DRIVER }, `grpc-js ${server} over ${transport} (${js.err})`)
        const py = await python(grpcTarget(endpoint), 'Identity', 'GetPluginInfo')
        t.same({ code: py.code, name: py.out?.name }, { code: 0, name: DRIVER }, `grpcio ${server} over ${transport} (${py.err})`)
      }
      // A refusal must come back as the driver's status, not as a transport error, through each.
      const bad = { name: 'pvc-mnmw', volume_capabilities: [{ mount: {}, access_mode: { mode: 'MULTI_NODE_MULTI_WRITER' } }] }
      const py = await python(grpcTarget(p.controller), 'Controller', 'CreateVolume', bad)
      t.equal(py.code, 3, `grpcio: a refused CreateVolume is INVALID_ARGUMENT (${py.err})`)
      const js = await grpcJs(grpcTarget(p.controller), 'Controller', 'CreateVolume', bad)
      t.equal(js.code, 3, `grpc-js: a refused CreateVolume is INVALID_ARGUMENT (${js.err})`)
    })
  }

  if (process.getuid?.() !== 0) {
    t.test('seed 003\'s walk-through', { skip: 'it stages and publishes with real mounts, which needs root' }, () => {})
  } else {
    for (const transport of ['tcp', 'unix'] as const) {
      t.test(`seed 003's walk-through with csc on grpc-go 1.19 over ${transport}`, async (t) => walkThrough(t, await pair(t, transport)))
    }
  }
}

async function walkThrough(t: Test, p: Pair): Promise<void> {
  const ctl = (...args: string[]) => csc119(p.controller, ...args)
  const node = (...args: string[]) => csc119(p.node, ...args)
  const ok = (r: { code: number; err: string }, what: string): void => void t.equal(r.code, 0, `${what} (${r.err})`)

  // $ csc identity plugin-info --endpoint tcp://127.0.0.1:10000
  for (const r of [await ctl('identity', 'plugin-info'), await node('identity', 'plugin-info')]) t.equal(r.out?.name, DRIVER, `plugin-info (${r.err})`)
  // $ csc node get-info
  const info = await node('node', 'get-info')
  t.equal(info.out?.node_id, 'e2e-node', `node get-info names the node (${info.err})`)

  // $ csc controller new --cap MULTI_NODE_MULTI_WRITER,mount,xfs,uid=500 NAME: seed 003's exact
  // call. A node-local volume cannot be shared across nodes, so tscsi refuses the mode by name.
  const refused = await ctl('--cap', 'MULTI_NODE_MULTI_WRITER,mount,xfs,uid=500', 'controller', 'new', 'pvc-seed003')
  t.equal(refused.code, 3, 'MULTI_NODE_MULTI_WRITER is INVALID_ARGUMENT')
  t.match(refused.err, /access mode MULTI_NODE_MULTI_WRITER is not supported/, 'and the message names the mode')
  t.match(refused.err, /accept SINGLE_NODE_WRITER, SINGLE_NODE_READER_ONLY, SINGLE_NODE_SINGLE_WRITER, SINGLE_NODE_MULTI_WRITER/, 'and the modes it accepts')

  const cap = ['--cap', 'SINGLE_NODE_WRITER,mount']
  const created = await ctl(...cap, '--req-bytes', String(64 << 20), 'controller', 'new', 'pvc-seed003')
  ok(created, 'controller new')
  const vol = created.out?.volume ?? {}
  t.match(vol.volume_id, /^v-[0-9a-f]{32}$/, 'a volume id')
  t.equal(vol.capacity_bytes, 64 << 20, 'of the size asked for')
  const volDir = path.join(p.dir, 'data/volumes', vol.volume_id)
  t.ok(existsSync(volDir), 'the node plugin made the volume directory')
  // csc passes the volume context back by hand, as kubelet does from the PV.
  const context = Object.entries(vol.volume_context ?? {}).map(([k, v]) => `${k}=${v}`).join(',')
  const withContext = context ? ['--vol-context', context] : []

  const staging = path.join(p.dir, 'plugins/globalmount')
  const target = path.join(p.dir, 'pods/uid-1/volumes/mount')
  mkdirSync(staging, { recursive: true })
  mkdirSync(path.dirname(target), { recursive: true })
  ok(await node(...cap, ...withContext, '--staging-target-path', staging, 'node', 'stage', vol.volume_id), 'node stage')
  ok(await node(...cap, ...withContext, '--staging-target-path', staging, '--target-path', target, 'node', 'publish', vol.volume_id), 'node publish')
  t.ok(mountInfoOf(target)?.[3]?.endsWith(`/volumes/${vol.volume_id}`), 'the target is a mount of the volume directory')
  writeFileSync(path.join(target, 'hello.txt'), 'I am here')
  t.equal(readFileSync(path.join(volDir, 'hello.txt'), 'utf8'), 'I am here', 'a file written through the target lands in the volume')

  ok(await node('--target-path', target, 'node', 'unpublish', vol.volume_id), 'node unpublish')
  t.notOk(existsSync(target), 'unpublish removed the target it made')
  ok(await node('--staging-target-path', staging, 'node', 'unstage', vol.volume_id), 'node unstage')
  t.same(mountsUnder(p.dir), [], 'no mount is left')

  const listed = await ctl('controller', 'list-volumes')
  t.same(listed.out?.entries?.map((e: any) => e.volume?.volume_id), [vol.volume_id], `list-volumes shows the volume (${listed.err})`)
  ok(await ctl('controller', 'del', vol.volume_id), 'controller del')
  t.notOk(existsSync(volDir), 'the volume directory is gone')
  const after = await ctl('controller', 'list-volumes')
  t.same({ code: after.code, entries: after.out?.entries ?? [] }, { code: 0, entries: [] }, 'list-volumes is empty again')
}
