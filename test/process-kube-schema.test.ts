// Nothing the driver stores is pruned by a real API server: objects of every kind with every
// optional field set (test/helpers/stored-objects.ts; test/unit-crds.test.ts proves they set every
// field) are written through the Kubernetes store and read back unchanged, fresh from the server.
// The API server prunes fields a CRD does not declare, without an error, so this is where a CRD
// that lagged behind the model would show before a cluster lost data. Also checked: the server
// serves the generated CRDs (through helm's render, deploy/kubernetes and kubectl), kubectl explain
// shows their descriptions, and a field a CRD lacks really is pruned (so the round trip would
// catch one).
import t from 'tap'
import * as k8s from '@kubernetes/client-node'
import { silentLogger } from '../common/log.js'
import { CRDS } from '../common/store/crds.js'
import { KubeStore } from '../common/store/kube-store.js'
import { GROUP, VERSION } from '../common/store/resources.js'
import { kubeSkipReason, kubeWorld } from './helpers/kube-world.js'
import { SAMPLES } from './helpers/stored-objects.js'

type Obj = Record<string, any>
const skipWhy = kubeSkipReason()

if (skipWhy) {
  t.skip(skipWhy, () => {})
} else {
  t.setTimeout(180_000)
  t.test('a real API server keeps every field of every stored object', async (t) => {
    const { kubeconfig, kubectl } = await kubeWorld(t)
    const kc = new k8s.KubeConfig()
    kc.loadFromFile(kubeconfig)
    const api = kc.makeApiClient(k8s.CustomObjectsApi)
    const plural = (kind: string) => CRDS.find((c) => c.kind === kind)!.plural
    const read = async (kind: string, name: string) => (await api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: plural(kind), name })) as Obj

    await t.test('the CRDs served are the generated ones', async (t) => {
      for (const c of CRDS) {
        const served = JSON.parse(await kubectl('get', 'crd', `${c.plural}.${GROUP}`, '-o', 'json')) as Obj
        const want = c.object['spec'] as Obj
        t.strictSame(served.spec.versions[0].schema, want.versions[0].schema, `${c.kind}: the schema, descriptions included`)
        t.match(served.spec.versions[0], { additionalPrinterColumns: want.versions[0].additionalPrinterColumns, subresources: want.versions[0].subresources }, `${c.kind}: columns and subresources`)
        t.match(served.spec, { group: want.group, scope: want.scope, names: want.names }, `${c.kind}: names`)
      }
      // The descriptions reach `kubectl explain` (once the server has published the CRDs' OpenAPI).
      let explained = ''
      for (let i = 0; i < 50 && !explained.includes('Bumped on every change'); i++) {
        explained = await kubectl('explain', 'tsv.spec.generation').catch(() => '')
        if (!explained.includes('Bumped on every change')) await new Promise((r) => setTimeout(r, 200))
      }
      t.match(explained, /Bumped on every change the node must act on/, 'kubectl explain shows a field\'s description')
    })

    const store = await KubeStore.open({ kubeconfig }, silentLogger())
    t.teardown(() => store.close())

    await t.test('volumes, snapshots and nodes: spec and status read back as written', async (t) => {
      const collections = { TscsiVolume: store.volumes, TscsiSnapshot: store.snapshots, TscsiNode: store.nodes } as const
      for (const kind of Object.keys(collections) as (keyof typeof collections)[]) {
        for (const o of SAMPLES[kind]) {
          // Each collection takes its own kind; the union of samples is typed per kind above.
          const c = collections[kind] as { putSpec(id: string, s: unknown): Promise<void>; putStatus(id: string, s: unknown): Promise<void> }
          await c.putSpec(o.id, o.spec)
          await c.putStatus(o.id, o.status)
          const back = await read(kind, o.id)
          t.strictSame(back.spec, o.spec, `${kind} ${o.id}: spec`)
          t.strictSame(back.status, o.status, `${kind} ${o.id}: status`)
        }
      }
    })

    await t.test('ledgers: the document reads back as written', async (t) => {
      for (const o of SAMPLES.TscsiLedger) {
        await store.ledger.update(o.id, () => ({ next: o.spec, result: undefined }))
        t.strictSame((await read('TscsiLedger', o.id)).spec, o.spec, o.id)
      }
    })

    await t.test('a field the CRD does not declare is dropped, so the checks above would see one', async (t) => {
      const [o] = SAMPLES.TscsiNode
      const body = { apiVersion: `${GROUP}/${VERSION}`, kind: 'TscsiNode', metadata: { name: 'node-pruned' }, spec: { ...o!.spec, notInTheCrd: 'lost' } }
      await api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: plural('TscsiNode'), body })
      t.strictSame((await read('TscsiNode', 'node-pruned')).spec, o!.spec)
    })
  })
}
