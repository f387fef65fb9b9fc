// Smoke test of the real-API-server rig (test/helpers/apiserver.ts): etcd plus kube-apiserver,
// @kubernetes/client-node against it, and kubectl's server-side dry run. The binaries come from
// `bash scripts/k8s-tools.sh`; without them the test is skipped locally and fails under CI.
import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { promisify } from 'node:util'
import * as k8s from '@kubernetes/client-node'
import { KUBECTL, missingApiServerBinaries, startApiServer, type ApiServer } from './helpers/apiserver.js'

const run = promisify(execFile)
const ci = !!process.env.CI && process.env.CI !== 'false'
const missing = missingApiServerBinaries()

const GROUP = 'smoke.tscsi.dev'
const NS = 'tscsi-smoke'

if (process.getuid?.() !== 0) {
  t.skip('real API server tests run as root only', () => {})
} else if (missing.length && !ci) {
  t.skip(`real API server tests need ${missing.map((f) => path.basename(f)).join(', ')}: run \`bash scripts/k8s-tools.sh\``, () => {})
} else {
  // A cold start on 2 cores takes seconds; leave room beyond .taprc's per-file timeout.
  t.setTimeout(240_000)

  t.test('a real API server serves namespaces, CRDs, custom objects, RBAC and kubectl dry runs', async (t) => {
    let api: ApiServer | undefined
    t.teardown(() => api?.stop()) // before t.testdir(), so it runs before tap removes the folder
    const dir = t.testdir()
    api = await startApiServer(dir) // under CI, missing binaries fail here with the fix in the message
    t.comment(`API server at ${api.server} ready in ${api.startupMs} ms`)

    const kc = new k8s.KubeConfig()
    kc.loadFromFile(api.kubeconfigPath)
    const core = kc.makeApiClient(k8s.CoreV1Api)
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api)
    const custom = kc.makeApiClient(k8s.CustomObjectsApi)

    const ns = await core.createNamespace({ body: { metadata: { name: NS } } })
    t.equal(ns.metadata?.name, NS, 'created a namespace')
    t.ok(ns.metadata?.uid, 'the server assigned it a uid')

    await ext.createCustomResourceDefinition({
      body: {
        apiVersion: 'apiextensions.k8s.io/v1',
        kind: 'CustomResourceDefinition',
        metadata: { name: `widgets.${GROUP}` },
        spec: {
          group: GROUP,
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
          versions: [{
            name: 'v1',
            served: true,
            storage: true,
            schema: {
              openAPIV3Schema: {
                type: 'object',
                properties: { spec: { type: 'object', properties: { size: { type: 'integer' }, owner: { type: 'string' } } } },
              },
            },
          }],
        },
      },
    })
    await eventually('the CRD is Established', async () => {
      const crd = await ext.readCustomResourceDefinition({ name: `widgets.${GROUP}` })
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ?? false
    })
    t.pass('the CRD became Established')

    const ref = { group: GROUP, version: 'v1', namespace: NS, plural: 'widgets' }
    const created = await custom.createNamespacedCustomObject({
      ...ref,
      body: { apiVersion: `${GROUP}/v1`, kind: 'Widget', metadata: { name: 'w1', labels: { app: 'tscsi' } }, spec: { size: 3, owner: 'node-a' } },
    })
    t.ok(created.metadata.resourceVersion, 'created a custom object')
    const got = await custom.getNamespacedCustomObject({ ...ref, name: 'w1' })
    t.same(got.spec, { size: 3, owner: 'node-a' }, 'read it back')
    t.equal(got.metadata.uid, created.metadata.uid)
    await t.rejects(
      custom.createNamespacedCustomObject({ ...ref, body: { apiVersion: `${GROUP}/v1`, kind: 'Widget', metadata: { name: 'w2' }, spec: { size: 'big' } } }),
      { code: 422 },
      'the server validates custom objects against the CRD schema',
    )

    // Service-account tokens are signed with the generated key, and RBAC denies what is not granted.
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'nobody' } } })
    const tr = await core.createNamespacedServiceAccountToken({ namespace: NS, name: 'nobody', body: { spec: { audiences: [], expirationSeconds: 600 } } })
    t.ok(tr.status?.token, 'issued a service-account token')
    const saKc = new k8s.KubeConfig()
    saKc.loadFromOptions({
      clusters: [{ name: 'c', server: api.server, skipTLSVerify: true }],
      users: [{ name: 'nobody', token: tr.status!.token }],
      contexts: [{ name: 'c', cluster: 'c', user: 'nobody' }],
      currentContext: 'c',
    })
    await t.rejects(saKc.makeApiClient(k8s.CoreV1Api).listNamespace(), { code: 403 }, 'a service account without roles is forbidden by RBAC')

    // kubectl: a server-side dry run, from a file and from a kustomization.
    const kdir = path.join(dir, 'kustomize')
    mkdirSync(kdir)
    const manifest = path.join(kdir, 'configmap.yaml')
    writeFileSync(manifest, [
      'apiVersion: v1',
      'kind: ConfigMap',
      'metadata:',
      '  name: smoke-config',
      `  namespace: ${NS}`,
      'data:',
      '  hello: world',
      '',
    ].join('\n'))
    const dry = await run(KUBECTL, ['--kubeconfig', api.kubeconfigPath, 'apply', '--dry-run=server', '-f', manifest])
    t.match(dry.stdout, /configmap\/smoke-config created \(server dry run\)/, 'kubectl apply --dry-run=server -f')
    writeFileSync(path.join(kdir, 'kustomization.yaml'), `namespace: ${NS}\nresources:\n- configmap.yaml\n`)
    const dryK = await run(KUBECTL, ['--kubeconfig', api.kubeconfigPath, 'apply', '--dry-run=server', '-k', kdir])
    t.match(dryK.stdout, /configmap\/smoke-config created \(server dry run\)/, 'kubectl apply --dry-run=server -k')
    await t.rejects(core.readNamespacedConfigMap({ namespace: NS, name: 'smoke-config' }), { code: 404 }, 'a dry run stores nothing')
  })
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
