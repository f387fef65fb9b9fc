// The Helm chart (deploy/helm/tscsi): helm lint passes, the kustomize manifests and monitoring
// files are exactly what scripts/render-manifests.sh makes of it (so they cannot drift by hand),
// each value reaches the objects it should, and install, upgrade, uninstall and a second install
// work against a real kube-apiserver (no kubelet: objects, not pods; the e2e runs the pods). helm
// comes from .tools/bin (scripts/helm-tools.sh builds it from the Go module proxy when missing).
import t from 'tap'
import { execFile, spawnSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { loadAllYaml } from '@kubernetes/client-node'
import { promisify } from 'node:util'
import { KUBECTL, missingApiServerBinaries, startApiServer, type ApiServer } from './helpers/apiserver.js'
import { ROOT } from './helpers/driver.js'

type Obj = Record<string, any>

const CHART = path.join(ROOT, 'deploy/helm/tscsi')
const HELM = path.join(ROOT, '.tools/bin/helm')
const DEPLOY = path.join(ROOT, 'deploy')
// What the generator sets beyond the chart's defaults (scripts/render-manifests.sh says why).
const KUSTOMIZE_EXTRAS = ['--set', 'namespace.create=true',
  '--api-versions', 'snapshot.storage.k8s.io/v1/VolumeSnapshotClass',
  '--api-versions', 'groupsnapshot.storage.k8s.io/v1beta1/VolumeGroupSnapshotClass']
const MONITORING_FILES = ['podmonitor.yaml', 'prometheusrule.yaml', 'prometheus-rules.yaml', 'grafana-dashboard.json']

function run(cmd: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.error) throw r.error
  return { code: r.status, out: `${r.stdout}${r.stderr}` }
}

/** The objects `helm template` renders for release tscsi in namespace NS with these extra flags. */
function render(flags: string[] = [], ns = 'tscsi'): Obj[] {
  const r = spawnSync(HELM, ['template', 'tscsi', CHART, '--namespace', ns, ...flags], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`helm template ${flags.join(' ')} failed:\n${r.stderr}`)
  return parse(r.stdout)
}

// loadAllYaml types known kinds through client-node's models, which keeps every field the API
// defines; the byte comparison of the generated files is what catches anything else.
const parse = (text: string): Obj[] => (loadAllYaml(text) as Obj[]).filter(Boolean).map((o) => JSON.parse(JSON.stringify(o)) as Obj)

const key = (o: Obj): string => `${o.kind}/${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`
const byKey = (objs: Obj[]): Record<string, Obj> => Object.fromEntries(objs.map((o) => [key(o), o]))
const one = (objs: Obj[], kind: string, name?: string): Obj | undefined => objs.find((o) => o.kind === kind && (name === undefined || o.metadata.name === name))
const pod = (objs: Obj[], kind: 'Deployment' | 'DaemonSet'): Obj => one(objs, kind)!.spec.template.spec
const container = (objs: Obj[], kind: 'Deployment' | 'DaemonSet', name: string): Obj => (pod(objs, kind).containers as Obj[]).find((c) => c.name === name)!

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => statSync(path.join(dir, f)).isDirectory() ? filesUnder(path.join(dir, f)).map((g) => `${f}/${g}`) : [f]).sort()
}

// A cold build of helm takes minutes on two cores; the default file timeout would kill it.
if (!existsSync(HELM)) t.setTimeout(1_800_000)

t.before(() => {
  const r = run('bash', [path.join(ROOT, 'scripts/helm-tools.sh')])
  if (r.code !== 0) throw new Error(`scripts/helm-tools.sh failed:\n${r.out}`)
})

t.test('helm lint passes, with the defaults and with every option on', async (t) => {
  const lint = run(HELM, ['lint', '--strict', CHART])
  t.equal(lint.code, 0, lint.out)
  const all = run(HELM, ['lint', '--strict', CHART, '--set', 'monitoring.podMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true',
    '--set', 'pools[0].name=fast,pools[0].path=/mnt/fast', '--set', 'namespace.create=true'])
  t.equal(all.code, 0, all.out)
})

t.test('values the driver would refuse are refused at install time (values.schema.json)', async (t) => {
  for (const bad of ['logLevel=loud', 'kubeletDir=var/lib/kubelet', 'dataRoot=', 'controller.replicas=-1', 'pools[0].name=Fast,pools[0].path=/mnt/fast', 'pools[0].name=fast,pools[0].path=relative']) {
    const r = run(HELM, ['template', 'tscsi', CHART, '--set', bad])
    t.not(r.code, 0, `--set ${bad} fails`)
    t.match(r.out, /values don't meet the specifications of the schema/, `--set ${bad}: the schema says why`)
  }
})

t.test('deploy/kubernetes and deploy/monitoring are exactly a fresh render of the chart', async (t) => {
  const dir = t.testdir()
  const r = run('bash', [path.join(ROOT, 'scripts/render-manifests.sh'), dir])
  t.equal(r.code, 0, r.out)
  const fix = 'edit deploy/helm/tscsi, then run `bash scripts/render-manifests.sh`'
  const files = filesUnder(path.join(DEPLOY, 'kubernetes'))
  t.same(files, filesUnder(path.join(dir, 'kubernetes')), `the same files in deploy/kubernetes (${fix})`)
  for (const f of [...files.map((f) => `kubernetes/${f}`), ...MONITORING_FILES.map((f) => `monitoring/${f}`)]) {
    t.equal(readFileSync(path.join(DEPLOY, f), 'utf8'), readFileSync(path.join(dir, f), 'utf8'), `deploy/${f} is up to date (${fix})`)
  }
})

t.test('helm template with the defaults renders the objects of deploy/kubernetes', async (t) => {
  const dir = path.join(DEPLOY, 'kubernetes')
  const manifests = filesUnder(dir).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((f) => parse(readFileSync(path.join(dir, f), 'utf8')).map((o) => ({ f, o })))
  const helm = byKey(render(['--include-crds']))
  // Helm installs into a namespace it finds, and asks the cluster whether the snapshot API exists.
  const onlyKustomize = manifests.filter(({ f, o }) => o.kind === 'Namespace' || f.startsWith('snapshot/')).map(({ o }) => key(o))
  t.same(onlyKustomize.sort(), ['Namespace/tscsi', 'VolumeGroupSnapshotClass/tscsi-group-snapshots', 'VolumeSnapshotClass/tscsi-snapshots'])
  const shared = byKey(manifests.map(({ o }) => o).filter((o) => !onlyKustomize.includes(key(o))))
  t.same(Object.keys(helm).sort(), Object.keys(shared).sort(), 'the same objects')
  for (const k of Object.keys(shared)) t.same(helm[k], shared[k], `${k} is the same`)
  // And the generator's extras are exactly those objects.
  const extras = render(KUSTOMIZE_EXTRAS).map(key).filter((k) => !(k in helm))
  t.same(extras.sort(), onlyKustomize.sort())
})

t.test('monitoring: off by default; on, the PodMonitor, PrometheusRule and dashboard carry the files of deploy/monitoring', async (t) => {
  const kinds = (objs: Obj[]): string[] => objs.map((o) => o.kind).filter((k) => ['PodMonitor', 'PrometheusRule', 'ConfigMap'].includes(k))
  t.same(kinds(render()), [], 'nothing by default')
  const objs = render(['--set', 'monitoring.podMonitor.enabled=true,monitoring.prometheusRule.enabled=true,monitoring.dashboard.enabled=true',
    '--set', 'monitoring.podMonitor.labels.release=kps,monitoring.prometheusRule.labels.release=kps'])
  t.same(kinds(objs).sort(), ['ConfigMap', 'PodMonitor', 'PrometheusRule'])

  const pm = one(objs, 'PodMonitor')!
  t.equal(pm.metadata.labels.release, 'kps', 'PodMonitor labels for the Prometheus selector')
  t.same(pm.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'tscsi' })
  t.same(pm.spec.podMetricsEndpoints.map((e: Obj) => e.port), ['metrics'])
  for (const kind of ['Deployment', 'DaemonSet'] as const) {
    t.same(one(objs, kind)!.spec.template.metadata.labels['app.kubernetes.io/name'], 'tscsi', `the ${kind}'s pods match the selector`)
    t.ok(container(objs, kind, 'tscsi-metrics').ports.some((p: Obj) => p.name === 'metrics'), `the ${kind}'s sidecar names its port metrics`)
  }

  const pr = one(objs, 'PrometheusRule')!
  t.equal(pr.metadata.labels.release, 'kps')
  const rules = parse(readFileSync(path.join(DEPLOY, 'monitoring/prometheus-rules.yaml'), 'utf8'))[0]!
  t.same(pr.spec.groups, rules.groups, 'the groups of the plain rules file')
  t.ok(pr.spec.groups[0].rules.length >= 5, 'with all its alerts')

  const cm = one(objs, 'ConfigMap', 'tscsi-grafana-dashboard')!
  t.equal(cm.metadata.labels.grafana_dashboard, '1', "labelled for Grafana's sidecar")
  t.same(JSON.parse(cm.data['tscsi.json']), JSON.parse(readFileSync(path.join(DEPLOY, 'monitoring/grafana-dashboard.json'), 'utf8')), 'the dashboard JSON')
})

t.test('StorageClasses and snapshot classes: each optional, with its parameters', async (t) => {
  const names = (objs: Obj[], kind: string): string[] => objs.filter((o) => o.kind === kind).map((o) => o.metadata.name).sort()
  t.same(names(render(), 'StorageClass'), ['tscsi-block', 'tscsi-dir', 'tscsi-image'])
  t.same(names(render(['--set', 'storageClasses.image.enabled=false']), 'StorageClass'), ['tscsi-block', 'tscsi-dir'], 'a disabled class is absent')
  t.same(names(render(['--set', 'storageClasses.dir.enabled=false,storageClasses.image.enabled=false,storageClasses.block.enabled=false']), 'StorageClass'), [])

  const objs = render(['--set', 'storageClasses.dir.parameters.quota=required,storageClasses.dir.parameters.pool=fast,storageClasses.dir.parameters.quotaInodes=1000',
    '--set', 'storageClasses.dir.isDefault=true,storageClasses.dir.reclaimPolicy=Retain,storageClasses.dir.name=local',
    '--set', 'storageClasses.image.mountOptions={noatime}'])
  const dir = one(objs, 'StorageClass', 'local')!
  t.same(dir.parameters, { kind: 'dir', quota: 'required', pool: 'fast', quotaInodes: '1000' }, 'parameters as strings, numbers too')
  t.equal(dir.metadata.annotations['storageclass.kubernetes.io/is-default-class'], 'true')
  t.equal(dir.reclaimPolicy, 'Retain')
  t.same(one(objs, 'StorageClass', 'tscsi-image')!.mountOptions, ['noatime'])

  // nfs: off by default, refused without its export, and rendered with it.
  t.throws(() => render(['--set', 'storageClasses.nfs.enabled=true']), /storageClasses\.nfs\.enabled needs .*server and \.share/)
  const shared = one(render(['--set', 'storageClasses.nfs.enabled=true,storageClasses.nfs.parameters.server=nfs.example.com,storageClasses.nfs.parameters.share=/export']), 'StorageClass', 'tscsi-nfs')!
  t.same(shared.parameters, { kind: 'nfs', server: 'nfs.example.com', share: '/export', subDir: '${pvc.namespace}/${pvc.name}-${pv.name}' })
  t.equal(shared.volumeBindingMode, 'Immediate', 'no topology to wait for')
  t.same(shared.mountOptions, ['nfsvers=4.1', 'hard'])

  const snapApis = KUSTOMIZE_EXTRAS.slice(2)
  t.same(names(render(), 'VolumeSnapshotClass'), [], 'no snapshot class where the cluster lacks the API')
  t.same(names(render(snapApis), 'VolumeSnapshotClass'), ['tscsi-snapshots'])
  t.same(names(render(snapApis), 'VolumeGroupSnapshotClass'), ['tscsi-group-snapshots'])
  t.same(names(render([...snapApis, '--set', 'volumeSnapshotClass.enabled=false']), 'VolumeSnapshotClass'), [], 'disabled')
  const vsc = one(render([...snapApis, '--set', 'volumeSnapshotClass.deletionPolicy=Retain,volumeSnapshotClass.isDefault=true']), 'VolumeSnapshotClass')!
  t.equal(vsc.deletionPolicy, 'Retain')
  t.equal(vsc.metadata.annotations['snapshot.storage.kubernetes.io/is-default-class'], 'true')
})

t.test('controller replicas, log level, driver name and namespace reach their objects', async (t) => {
  const objs = render(['--set', 'controller.replicas=3,logLevel=debug,driverName=local.example.org'], 'storage')
  t.equal(one(objs, 'Deployment')!.spec.replicas, 3)
  for (const [kind, name] of [['Deployment', 'tscsi-controller'], ['DaemonSet', 'tscsi-node']] as const) {
    const args: string[] = container(objs, kind, name).args
    t.ok(args.includes('--log-level=debug'), `${name}: --log-level=debug`)
    t.ok(args.includes('--drivername=local.example.org'), `${name}: --drivername`)
  }
  t.equal(one(objs, 'CSIDriver')!.metadata.name, 'local.example.org')
  for (const sc of objs.filter((o) => o.kind === 'StorageClass')) t.equal(sc.provisioner, 'local.example.org', `${sc.metadata.name}'s provisioner`)
  t.ok(container(objs, 'DaemonSet', 'tscsi-node').args.includes('--endpoint=unix:///var/lib/kubelet/plugins/local.example.org/csi.sock'), "the socket sits in the driver's plugin folder")
  const namespaced = objs.filter((o) => !['ClusterRole', 'ClusterRoleBinding', 'CSIDriver', 'StorageClass'].includes(o.kind))
  for (const o of namespaced) t.equal(o.metadata.namespace, 'storage', `${key(o)} in the release namespace`)
  for (const b of objs.filter((o) => o.kind.endsWith('RoleBinding'))) t.same(b.subjects.map((s: Obj) => s.namespace), ['storage'], `${key(b)}'s subject`)
})

t.test("a custom kubelet directory reaches every path of the node plugin and nothing keeps kubelet's default", async (t) => {
  const kubelet = '/var/lib/k0s/kubelet'
  const objs = render(['--set', `kubeletDir=${kubelet}/`])
  const p = pod(objs, 'DaemonSet')
  const plugin = container(objs, 'DaemonSet', 'tscsi-node')
  const args: string[] = plugin.args
  for (const want of [`--endpoint=unix://${kubelet}/plugins/local.tscsi.dev/csi.sock`, `--registration-dir=${kubelet}/plugins_registry`, `--co-path-prefix=${kubelet}`]) {
    t.ok(args.includes(want), want)
  }
  const hostPaths = Object.fromEntries((p.volumes as Obj[]).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath.path]))
  t.equal(hostPaths['kubelet-dir'], kubelet)
  t.equal(hostPaths['socket-dir'], `${kubelet}/plugins/local.tscsi.dev`)
  const m = (plugin.volumeMounts as Obj[]).find((x) => x.name === 'kubelet-dir')!
  t.same([m.mountPath, m.mountPropagation], [kubelet, 'Bidirectional'])
  t.notMatch(JSON.stringify(one(objs, 'DaemonSet')), /\/var\/lib\/kubelet/, 'no /var/lib/kubelet left in the DaemonSet')
})

t.test('data root and pools: flags, host folders and Bidirectional mounts, nothing else from the host', async (t) => {
  const objs = render(['--set', 'dataRoot=/srv/tscsi,pools[0].name=fast,pools[0].path=/mnt/nvme/tscsi,pools[1].name=bulk,pools[1].path=/mnt/hdd/tscsi'])
  const p = pod(objs, 'DaemonSet')
  const plugin = container(objs, 'DaemonSet', 'tscsi-node')
  const args: string[] = plugin.args
  t.same(args.filter((a) => /^--(data-root|pool)=/.test(a)), ['--data-root=/srv/tscsi', '--pool=fast=/mnt/nvme/tscsi', '--pool=bulk=/mnt/hdd/tscsi'])
  const hostPaths = new Map<string, string>((p.volumes as Obj[]).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath.path]))
  const mounts = (plugin.volumeMounts as Obj[]).map((x) => [hostPaths.get(x.name), x.mountPath, x.mountPropagation])
  t.same(mounts, [
    ['/var/lib/kubelet', '/var/lib/kubelet', 'Bidirectional'],
    ['/srv/tscsi', '/srv/tscsi', 'Bidirectional'],
    ['/mnt/nvme/tscsi', '/mnt/nvme/tscsi', 'Bidirectional'],
    ['/mnt/hdd/tscsi', '/mnt/hdd/tscsi', 'Bidirectional'],
    ['/dev', '/dev', undefined],
  ])
  t.same([...hostPaths.values()].sort(), ['/dev', '/mnt/hdd/tscsi', '/mnt/nvme/tscsi', '/srv/tscsi', '/var/lib/kubelet', '/var/lib/kubelet/plugins/local.tscsi.dev'], 'no other host folder')
})

t.test('images: every container takes its image from values, and one pull policy covers them all', async (t) => {
  const local = (n: string): string[] => ['--set', `${n}.image.repository=tscsi.local/csi-${n}`, '--set', `${n}.image.tag=v9`]
  const objs = render(['--set', 'image.repository=tscsi.local/tscsi,image.tag=0.2.0,image.pullPolicy=Never',
    ...local('provisioner'), ...local('resizer'), ...local('snapshotter')])
  const images = (kind: 'Deployment' | 'DaemonSet'): Record<string, string> =>
    Object.fromEntries((pod(objs, kind).containers as Obj[]).map((c) => [c.name, c.image]))
  t.same(images('Deployment'), {
    'tscsi-controller': 'tscsi.local/tscsi:0.2.0', 'csi-provisioner': 'tscsi.local/csi-provisioner:v9', 'csi-resizer': 'tscsi.local/csi-resizer:v9',
    'csi-snapshotter': 'tscsi.local/csi-snapshotter:v9', 'tscsi-metrics': 'tscsi.local/tscsi:0.2.0',
  })
  t.same(images('DaemonSet'), { 'tscsi-node': 'tscsi.local/tscsi:0.2.0', 'tscsi-metrics': 'tscsi.local/tscsi:0.2.0' })
  for (const kind of ['Deployment', 'DaemonSet'] as const) {
    for (const c of pod(objs, kind).containers as Obj[]) t.equal(c.imagePullPolicy, 'Never', `${kind}/${c.name} pulls Never`)
  }
  const own = render(['--set', 'metrics.image.repository=tscsi.local/tscsi-metrics,metrics.image.tag=1.0,provisioner.image.pullPolicy=Always'])
  t.equal(container(own, 'DaemonSet', 'tscsi-metrics').image, 'tscsi.local/tscsi-metrics:1.0', 'the metrics sidecar may have an image of its own')
  t.equal(container(own, 'Deployment', 'csi-provisioner').imagePullPolicy, 'Always', 'a pull policy per image wins')
  t.equal(container(render(), 'Deployment', 'tscsi-controller').image, 'tscsi:0.1.0', "the default tag is the chart's appVersion")
})

t.test('scheduling and resources: tolerations, nodeSelector and resources per component', async (t) => {
  const objs = render(['--set', 'node.nodeSelector.storage=local,controller.nodeSelector.role=infra',
    '--set', 'controller.tolerations[0].key=infra,controller.tolerations[0].operator=Exists,node.tolerations=null',
    '--set', 'node.resources.limits.memory=1Gi,provisioner.resources.requests.cpu=50m'])
  const ctl = pod(objs, 'Deployment')
  const node = pod(objs, 'DaemonSet')
  t.same(node.nodeSelector, { storage: 'local' })
  t.same(ctl.nodeSelector, { role: 'infra' })
  t.same(ctl.tolerations, [{ key: 'infra', operator: 'Exists' }])
  t.notOk(node.tolerations, 'the node plugin tolerates nothing when told so')
  t.same(pod(render(), 'DaemonSet').tolerations, [{ operator: 'Exists' }], 'by default it runs on every node, tainted or not')
  t.equal(container(objs, 'DaemonSet', 'tscsi-node').resources.limits.memory, '1Gi')
  t.equal(container(objs, 'Deployment', 'csi-provisioner').resources.requests.cpu, '50m')
})

const ci = !!process.env.CI && process.env.CI !== 'false'
const missing = missingApiServerBinaries()
// Skipped, visibly, on a machine without the API server's binaries; in CI their absence fails.
const skip = missing.length && !ci ? `needs ${missing.map((f) => path.basename(f)).join(', ')}: run \`bash scripts/k8s-tools.sh\`` : false
t.test('helm install, upgrade, uninstall and install again against a real API server', { skip }, async (t) => {
  t.setTimeout(240_000)
  let api: ApiServer | undefined
  t.teardown(() => api?.stop())
  const dir = t.testdir()
  api = await startApiServer(path.join(dir, 'api'))
  const kc = ['--kubeconfig', api.kubeconfigPath]
  // helm keeps its own settings and caches under these; the test's folder, not the user's.
  const env = { ...process.env, HELM_CONFIG_HOME: path.join(dir, 'helm/config'), HELM_CACHE_HOME: path.join(dir, 'helm/cache'), HELM_DATA_HOME: path.join(dir, 'helm/data') }
  const exec = promisify(execFile)
  const helm = async (...args: string[]): Promise<string> => (await exec(HELM, [...args, '--namespace', 'tscsi', ...kc], { env })).stdout
  const kubectl = async (...args: string[]): Promise<string> => (await exec(KUBECTL, [...kc, ...args])).stdout
  const get = async (what: string): Promise<Obj[]> => (JSON.parse(await kubectl('get', what, '-A', '-o', 'json')) as { items: Obj[] }).items
  // The API server's own objects (system: roles, the default service account) are not the chart's.
  const names = async (what: string): Promise<string[]> => (await get(what)).map((o) => o.metadata.name as string).filter((n) => /tscsi/.test(n)).sort()

  await kubectl('create', 'namespace', 'tscsi')
  const notes = await helm('install', 'tscsi', CHART)
  t.match(notes, /No VolumeSnapshotClass was created/, 'NOTES say why there is no snapshot class')
  t.same(await names('crd'), ['tscsiexports.tscsi.dev', 'tscsiledgers.tscsi.dev', 'tscsinodes.tscsi.dev', 'tscsisnapshots.tscsi.dev', 'tscsivolumes.tscsi.dev'], "the chart's CRDs are installed")
  t.same(await names('storageclass'), ['tscsi-block', 'tscsi-dir', 'tscsi-image'])
  t.same(await names('csidriver'), ['local.tscsi.dev'])
  t.same(await names('daemonset'), ['tscsi-node'])
  t.equal((await get('deployment')).find((d) => d.metadata.name === 'tscsi-controller')?.spec.replicas, 2)

  // A volume's record, as the controller would write it: it must outlive the release.
  const tsv = { apiVersion: 'tscsi.dev/v1alpha1', kind: 'TscsiVolume', metadata: { name: 'v-0123456789abcdef0123456789abcdef' },
    spec: { name: 'pvc-kept', node: 'node-a', kind: 'dir', pool: 'default', capacityBytes: '1048576', accessType: 'mount', createdAt: new Date().toISOString(), generation: 1, parameters: { onDelete: 'retain' } } }
  const create = spawnSync(KUBECTL, [...kc, 'create', '-f', '-'], { input: JSON.stringify(tsv), encoding: 'utf8' })
  t.equal(create.status, 0, `a TscsiVolume is created: ${create.stderr}`)

  await helm('upgrade', 'tscsi', CHART, '--set', 'image.tag=0.2.0,controller.replicas=1,storageClasses.block.enabled=false')
  const ctl = (await get('deployment')).find((d) => d.metadata.name === 'tscsi-controller')!
  t.equal(ctl.spec.replicas, 1, 'upgrade: replicas')
  t.equal(ctl.spec.template.spec.containers[0].image, 'tscsi:0.2.0', 'upgrade: the new image')
  t.equal((await get('daemonset'))[0]?.spec.template.spec.containers[0].image, 'tscsi:0.2.0', 'upgrade: the node plugin too')
  t.same(await names('storageclass'), ['tscsi-dir', 'tscsi-image'], 'upgrade: a class turned off is removed')

  await helm('uninstall', 'tscsi')
  for (const what of ['deployment', 'daemonset', 'storageclass', 'csidriver', 'clusterrole', 'serviceaccount']) {
    t.same(await names(what), [], `uninstall removed every ${what}`)
  }
  t.equal((await names('crd')).length, 5, 'uninstall keeps the CRDs')
  t.same((await get('tscsivolume')).map((v) => v.metadata.name), [tsv.metadata.name], "and so every volume's record")

  await helm('install', 'tscsi', CHART)
  t.equal((await get('deployment')).find((d) => d.metadata.name === 'tscsi-controller')?.spec.replicas, 2, 'a second install over the kept CRDs works')
})
