// Two controller processes against one real kube-apiserver, as the Deployment's two replicas are
// during a failover (each sidecar elects its own leader). One node plugin serves a small pool;
// concurrent CreateVolume calls split across both controllers must never overcommit it nor hand
// out one project id twice, and a lost node is reported once, not once per replica. Nothing is
// mocked. Every wait is for a condition, never for a time.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import * as k8s from '@kubernetes/client-node'
import { MS, mount } from '../native/index.js'
import { KUBECTL } from './helpers/apiserver.js'
import { kubeSkipReason, kubeWorld } from './helpers/kube-world.js'
import { client, kill9, mountCap, start, type Proc } from './helpers/driver.js'

const run = promisify(execFile)
const skipWhy = kubeSkipReason()
const MiB = 1 << 20
const POOL_MIB = 16
const CALLS = 40

/** Polls until check() is true; the bound only keeps a broken run from hanging. */
async function until(what: string, check: () => Promise<boolean> | boolean, boundMs = 60_000): Promise<void> {
  const end = Date.now() + boundMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

if (skipWhy) {
  t.skip(skipWhy, () => {})
} else {
  t.setTimeout(300_000)
  t.test('two controllers, one small pool, one API server', async (t) => {
    const { dir, kubeconfig, procs, mounts } = await kubeWorld(t)
    const data = path.join(dir, 'node-a', 'data')
    mkdirSync(data, { recursive: true })
    mount('tmpfs', data, 'tmpfs', MS.NOSUID | MS.NODEV, `size=${POOL_MIB}m`)
    mounts.push(data)
    const kube = ['--store', 'kubernetes', '--kubeconfig', kubeconfig]
    const node = await start('node', path.join(dir, 'node-a'), ['--nodeid', 'node-a', ...kube])
    procs.push(node)
    const ctls: Proc[] = []
    for (const name of ['ctl-1', 'ctl-2']) {
      const p = await start('controller', path.join(dir, name), [...kube, '--realise-timeout', '30s', '--lost-node-interval', '200ms', '--log-level', 'debug'])
      procs.push(p)
      ctls.push(p)
    }
    const clients = ctls.map((p) => client('Controller', p.socket))
    t.teardown(() => { for (const c of clients) c.close() })
    const kc = new k8s.KubeConfig()
    kc.loadFromFile(kubeconfig)
    const custom = kc.makeApiClient(k8s.CustomObjectsApi)
    const core = kc.makeApiClient(k8s.CoreV1Api)
    const items = async (plural: string) => ((await custom.listClusterCustomObject({ group: 'tscsi.dev', version: 'v1alpha1', plural })) as { items: any[] }).items
    await until('node-a to report its pool', async () => (await items('tscsinodes')).some((n) => n.status))
    const poolBytes = BigInt((await items('tscsinodes'))[0].status.pools.default.totalBytes)

    // Both controllers must know the node before the burst, or one would answer "no node".
    for (const c of clients) await until('each controller to see node-a', async () => BigInt((await c.GetCapacity({})).available_capacity) > 0n)
    // One name sent to both controllers at once is one volume, and both answer it.
    const race = { name: 'pvc-race', volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) } }
    const twice = await Promise.all(clients.map((c) => c.CreateVolume(race)))
    t.equal(twice[0]!.volume.volume_id, twice[1]!.volume.volume_id, 'both controllers answer the same volume')
    t.equal((await items('tscsivolumes')).length, 1, 'and there is one TscsiVolume')

    const calls = Array.from({ length: CALLS }, (_, i) => clients[i % 2]!.CreateVolume({
      name: `pvc-${i}`, volume_capabilities: [mountCap()], capacity_range: { required_bytes: String(MiB) },
    }, 60_000))
    const settled = await Promise.allSettled(calls)
    const ok = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []))
    const codes = settled.flatMap((s) => (s.status === 'rejected' ? [(s.reason as { code: number }).code] : []))
    const accepted = ok.reduce((s, r) => s + BigInt(r.volume.capacity_bytes), BigInt(MiB))
    t.ok(accepted <= poolBytes, `accepted ${accepted} bytes of a ${poolBytes}-byte pool`)
    t.ok(ok.length > 0 && codes.length > 0, `some fit (${ok.length}), some did not (${codes.length})`)
    t.same([...new Set(codes)], [8], 'every refusal is RESOURCE_EXHAUSTED')
    const vols = await items('tscsivolumes')
    t.equal(vols.length, ok.length + 1, 'one TscsiVolume per accepted call (and pvc-race), none for refused ones')
    const pids = vols.map((v) => v.spec.projectId)
    t.ok(pids.every((p) => typeof p === 'number'), 'dir volumes under quota: auto all got a project id')
    t.equal(new Set(pids).size, pids.length, 'and no two share one')
    const [ledger] = (await items('tscsiledgers')).filter((l) => l.metadata.name === 'node.node-a')
    t.same(Object.keys(ledger.spec.claims).sort(), vols.map((v) => v.metadata.name).sort(), 'the ledger claims exactly the accepted volumes')
    t.equal(ledger.spec.projectIds?.default, Math.max(...pids), 'the API server keeps the high mark of project ids (the CRD schema holds it)')

    // The node leaves. Both replicas look every 200 ms; each volume is reported once in all.
    await kill9(node)
    await run(KUBECTL, ['--kubeconfig', kubeconfig, 'delete', 'tscsinode', 'node-a'])
    const lostEvents = async () => ((await core.listNamespacedEvent({ namespace: 'default' })).items).filter((e) => e.reason === 'NodeLost')
    await until('a NodeLost event for every volume', async () => new Set((await lostEvents()).map((e) => e.involvedObject.name)).size === vols.length)
    const checks = (p: Proc) => p.logs().split('\n').filter((l) => l.includes('"msg":"lost-node check"')).length
    const after = ctls.map(checks)
    await until('both replicas to check three more times', () => ctls.every((p, i) => checks(p) >= after[i]! + 3))
    const events = await lostEvents()
    t.equal(events.length, vols.length, `one NodeLost event per volume (${vols.length}), not one per replica`)
    const warned = ctls.map((p) => p.logs().split('\n').filter((l) => l.includes('no longer registered; its data is unreachable')).length)
    t.equal(warned[0]! + warned[1]!, vols.length, `one log line per volume across both replicas (${warned.join(' + ')})`)
  })
}
