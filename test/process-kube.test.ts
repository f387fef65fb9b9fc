// The Kubernetes store against a real kube-apiserver (and etcd), with the real controller and
// two real node plugins (node-a, node-b), each with its own data root on its own tmpfs so their
// free space differs. Nothing here is mocked.
import t from 'tap'
import { execFile } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import * as k8s from '@kubernetes/client-node'
import { MS, mount, statvfs } from '../native/index.js'
import { KUBECTL, startApiServer, type ApiServer } from './helpers/apiserver.js'
import { kubeSkipReason, kubeWorld } from './helpers/kube-world.js'
import { client, kill9, mountCap, ROOT, start } from './helpers/driver.js'

const run = promisify(execFile)
const skipWhy = kubeSkipReason()
const MiB = 1 << 20
const topo = (node: string) => ({ segments: { 'topology.tscsi.dev/node': node } })

if (skipWhy) {
  t.skip(skipWhy, () => {})
} else {
  t.setTimeout(300_000)
  t.test('two node plugins and a controller on the Kubernetes store', async (t) => {
    const { dir, kubeconfig, procs, mounts: tmpfs } = await kubeWorld(t)

    // node-a gets 64 MiB, node-b 256 MiB: Immediate binding must choose node-b.
    const nodeDirs: Record<string, string> = {}
    for (const [name, size] of [['node-a', 64], ['node-b', 256]] as const) {
      const d = path.join(dir, name)
      mkdirSync(path.join(d, 'data'), { recursive: true })
      mount('tmpfs', path.join(d, 'data'), 'tmpfs', MS.NOSUID | MS.NODEV, `size=${size}m`)
      tmpfs.push(path.join(d, 'data'))
      nodeDirs[name] = d
    }
    const kube = ['--store', 'kubernetes', '--kubeconfig', kubeconfig]
    const startNode = async (name: string) => {
      const p = await start('node', nodeDirs[name]!, ['--nodeid', name, ...kube])
      procs.push(p)
      return p
    }
    const startController = async () => {
      const p = await start('controller', path.join(dir, 'ctl'), [...kube, '--realise-timeout', '20s'])
      procs.push(p)
      return p
    }
    const nodeB = await startNode('node-b')
    await startNode('node-a')
    let ctl = await startController()
    let c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    const kc = new k8s.KubeConfig()
    kc.loadFromFile(kubeconfig)
    const custom = kc.makeApiClient(k8s.CustomObjectsApi)
    const objects = async () => ((await custom.listClusterCustomObject({ group: 'tscsi.dev', version: 'v1alpha1', plural: 'tscsivolumes' })) as { items: any[] }).items
    const volumesOn = (name: string) => readdirSync(path.join(nodeDirs[name]!, 'data/volumes'))

    // Both nodes registered their capacity.
    const waitNodes = async () => {
      for (let i = 0; i < 100; i++) {
        const n = (await custom.listClusterCustomObject({ group: 'tscsi.dev', version: 'v1alpha1', plural: 'tscsinodes' })) as { items: any[] }
        if (n.items.filter((x) => x.status).length === 2) return
        await new Promise((r) => setTimeout(r, 100))
      }
      throw new Error('node plugins did not register')
    }
    await waitNodes()

    const onA = await c.CreateVolume({ name: 'pvc-on-a', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(8 * MiB) },
      accessibility_requirements: { requisite: [topo('node-a'), topo('node-b')], preferred: [topo('node-a')] } })
    t.equal(onA.volume.volume_context['tscsi.dev/node'], 'node-a', 'the preferred node (the scheduler\'s choice) gets the volume')
    t.same(volumesOn('node-a'), [onA.volume.volume_id], 'its directory is under node-a\'s data root')
    t.same(volumesOn('node-b'), [], 'and never under node-b\'s')

    const immediate = await c.CreateVolume({ name: 'pvc-immediate', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(8 * MiB) } })
    t.equal(immediate.volume.volume_context['tscsi.dev/node'], 'node-b', 'without a preference the node with more free space wins')

    await t.rejects(c.CreateVolume({ name: 'pvc-too-big', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(100 * MiB) },
      accessibility_requirements: { requisite: [topo('node-a')] } }), { code: 11 }, 'a size node-a can never hold is OUT_OF_RANGE')

    for (const name of ['node-a', 'node-b']) {
      // Reported capacity is refreshed after each change; give the debounce its second.
      await new Promise((r) => setTimeout(r, 1500))
      const fs = statvfs(path.join(nodeDirs[name]!, 'data'))
      const unit = BigInt(fs.fragmentSize || fs.blockSize)
      const allocated = BigInt(8 * MiB)
      const unpromised = fs.blocks * unit - allocated
      const avail = fs.bavail * unit
      const want = unpromised < avail ? unpromised : avail
      const cap = await c.GetCapacity({ accessible_topology: topo(name) })
      t.equal(cap.available_capacity, want.toString(), `GetCapacity for ${name} is its statfs minus allocations`)
    }

    // Delete: the node removes the directory, releases the finalizer, and the object goes.
    await c.DeleteVolume({ volume_id: onA.volume.volume_id })
    t.same(volumesOn('node-a'), [], 'the directory is gone from node-a')
    t.notOk((await objects()).some((o) => o.metadata.name === onA.volume.volume_id), 'and so is the custom resource')

    // Controller killed in the middle of CreateVolume (node-b down, so the call is waiting).
    await kill9(nodeB)
    const req = { name: 'pvc-crash', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(4 * MiB) },
      accessibility_requirements: { requisite: [topo('node-b')] } }
    const pending = c.CreateVolume(req, 60_000).catch((e) => e)
    await new Promise((r) => setTimeout(r, 500))
    await kill9(ctl)
    await pending
    c.close()
    ctl = await startController()
    c = client('Controller', ctl.socket)
    await startNode('node-b')
    const first = await c.CreateVolume(req)
    const again = await c.CreateVolume(req)
    t.equal(again.volume.volume_id, first.volume.volume_id)
    t.equal((await objects()).filter((o) => o.spec.name === 'pvc-crash').length, 1, 'exactly one volume object')
    t.equal(volumesOn('node-b').filter((v) => v === first.volume.volume_id).length, 1, 'and one directory')

    // A delete from outside the driver (kubectl) still goes through the node: data first.
    await run(KUBECTL, ['--kubeconfig', kubeconfig, 'delete', 'tscsivolume', immediate.volume.volume_id, '--wait=true', '--timeout=30s'])
    t.notOk(existsSync(path.join(nodeDirs['node-b']!, 'data/volumes', immediate.volume.volume_id)), 'kubectl delete removed the data on node-b before the object went')
  })
}

if (!skipWhy) {
  t.test('every manifest in deploy/kubernetes passes a server-side dry run', async (t) => {
    let api: ApiServer | undefined
    t.teardown(() => api?.stop())
    const dir = t.testdir()
    api = await startApiServer(dir)
    const kc = ['--kubeconfig', api.kubeconfigPath]
    // A dry run persists nothing, so the namespace the other objects live in must exist for real.
    await run(KUBECTL, [...kc, 'apply', '-f', path.join(ROOT, 'deploy/kubernetes/namespace.yaml')])
    const out = await run(KUBECTL, [...kc, 'apply', '--dry-run=server', '-k', path.join(ROOT, 'deploy/kubernetes')])
    t.match(out.stdout, /deployment.apps\/tscsi-controller .*\(server dry run\)/)
    t.match(out.stdout, /daemonset.apps\/tscsi-node .*\(server dry run\)/)
    t.match(out.stdout, /customresourcedefinition.apiextensions.k8s.io\/tscsivolumes.tscsi.dev .*\(server dry run\)/)
  })
}

if (!skipWhy) {
  t.test('pools, delete policies and lost nodes on the Kubernetes store', async (t) => {
    const { dir, kubeconfig, procs, mounts } = await kubeWorld(t)
    const fast = path.join(dir, 'fast')
    mkdirSync(fast)
    mount('tmpfs', fast, 'tmpfs', MS.NOSUID | MS.NODEV, 'size=32m')
    mounts.push(fast)
    const kube = ['--store', 'kubernetes', '--kubeconfig', kubeconfig]
    const node = await start('node', path.join(dir, 'node-a'), ['--nodeid', 'node-a', '--pool', `fast=${fast}`, ...kube])
    procs.push(node)
    const ctl = await start('controller', path.join(dir, 'ctl'), [...kube, '--realise-timeout', '20s'])
    procs.push(ctl)
    const c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    const kc = new k8s.KubeConfig()
    kc.loadFromFile(kubeconfig)
    const custom = kc.makeApiClient(k8s.CustomObjectsApi)
    const volumeObjects = async () => ((await custom.listClusterCustomObject({ group: 'tscsi.dev', version: 'v1alpha1', plural: 'tscsivolumes' })) as { items: any[] }).items

    const archived = await c.CreateVolume({ name: 'pvc-fast', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) }, parameters: { pool: 'fast', onDelete: 'archive' } })
    t.equal(archived.volume.volume_context['tscsi.dev/pool'], 'fast')
    t.ok(existsSync(path.join(fast, 'volumes', archived.volume.volume_id)), 'the volume lives in the fast pool\'s root')
    await t.rejects(c.CreateVolume({ name: 'pvc-nvme', volume_capabilities: [mountCap()], parameters: { pool: 'nvme' } }),
      { code: 8, details: /pool "nvme"/ }, 'a pool no node serves is RESOURCE_EXHAUSTED naming it')
    const cap = await c.GetCapacity({ parameters: { pool: 'fast' }, accessible_topology: topo('node-a') })
    t.ok(BigInt(cap.available_capacity) > 0n && BigInt(cap.available_capacity) <= 32n * BigInt(MiB), 'GetCapacity answers for the pool asked')

    await c.DeleteVolume({ volume_id: archived.volume.volume_id })
    t.notOk(existsSync(path.join(fast, 'volumes', archived.volume.volume_id)), 'onDelete: archive moves the data out of the volumes folder')
    const kept = readdirSync(path.join(fast, 'archive'))
    t.equal(kept.length, 1)
    t.ok(kept[0]!.startsWith(archived.volume.volume_id + '-'), `it is kept aside with a timestamp (${kept[0]})`)
    t.notOk((await volumeObjects()).some((o) => o.metadata.name === archived.volume.volume_id), 'and the object is gone')

    const retained = await c.CreateVolume({ name: 'pvc-retain', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) }, parameters: { onDelete: 'retain' } })
    await c.DeleteVolume({ volume_id: retained.volume.volume_id })
    t.ok(existsSync(path.join(dir, 'node-a/data/volumes', retained.volume.volume_id)), 'onDelete: retain keeps the data in place')

    // The node leaves: its plugin stops and its TscsiNode goes.
    const strict = await c.CreateVolume({ name: 'pvc-strict', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) } })
    const forgiving = await c.CreateVolume({ name: 'pvc-forget', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) }, parameters: { onLostNode: 'forget' } })
    await kill9(node)
    await run(KUBECTL, ['--kubeconfig', kubeconfig, 'delete', 'tscsinode', 'node-a'])
    for (let i = 0; i < 50 && (await c.GetCapacity({ accessible_topology: topo('node-a') })).available_capacity !== '0'; i++) await new Promise((r) => setTimeout(r, 100))
    await t.rejects(c.DeleteVolume({ volume_id: strict.volume.volume_id }, 10_000), { code: 9, details: /no longer registered/ },
      'deleting a volume of a lost node is FAILED_PRECONDITION at once, not a hang')
    await c.DeleteVolume({ volume_id: forgiving.volume.volume_id }, 10_000)
    t.notOk((await volumeObjects()).some((o) => o.metadata.name === forgiving.volume.volume_id), 'onLostNode: forget drops the object (finalizer included)')
  })
}
