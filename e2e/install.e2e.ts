// tscsi as `helm install` left it (scripts/e2e/driver.sh): every pod Ready and its containers run
// by the cluster's containerd, no tscsi or sidecar process on the host, CSINode lists the driver;
// a real Prometheus scrapes the metrics sidecars by pod address; and the kubelet's liveness probe
// (tscsi-metrics /healthz) restarts a node plugin frozen with SIGSTOP while pods' volumes keep working.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import {
  apply, claimVolume, containerStatus, CONTROLLER_METRICS_PORT, DATA_MOUNT, DRIVER, driverPods, env, getJson, kubectl, namespace, NODE,
  NODE_METRICS_PORT, nodeHealth, nodePluginPid, nodePod, nodeRestarted, pod, podExec, pvc, RELEASE_NS, waitFor, waitRunning,
} from './lib.js'

const RUN = env.RUN
const ctr = (...args: string[]): string =>
  spawnSync('ctr', ['--address', env.CONTAINERD_SOCK, '-n', 'k8s.io', ...args], { encoding: 'utf8' }).stdout ?? ''

t.test('the install: pods Ready, containers in containerd, no host process, CSINode', async (t) => {
  const ctl = driverPods('controller')
  const node = driverPods('node')
  t.equal(ctl.length, 2, 'two controller replicas (the chart default)')
  t.equal(node.length, 1, 'one node plugin pod on the one node')
  const tasks = new Set(ctr('tasks', 'ls').split('\n').slice(1).filter((l) => / RUNNING/.test(l)).map((l) => l.split(/\s+/)[0]))
  for (const p of [...ctl, ...node]) {
    const ready = p.status.conditions?.find((c: any) => c.type === 'Ready')?.status
    const names = p.status.containerStatuses.map((c: any) => c.name).sort()
    t.equal(ready, 'True', `${p.metadata.name} is Ready (${names.join(', ')})`)
    t.ok(p.status.containerStatuses.every((c: any) => tasks.has(c.containerID.replace('containerd://', ''))), `and each of its containers is a running containerd task`)
    t.ok(p.spec.containers.every((c: any) => c.image.startsWith('tscsi.local/')), 'from the images built here')
  }
  t.same(node[0].status.containerStatuses.map((c: any) => c.name).sort(), ['tscsi-metrics', 'tscsi-node'], 'node pod: the plugin and its metrics sidecar')
  t.same(ctl[0].status.containerStatuses.map((c: any) => c.name).sort(), ['csi-provisioner', 'csi-resizer', 'csi-snapshotter', 'tscsi-controller', 'tscsi-metrics'], 'controller pod: tscsi, the three sidecars, metrics')
  const nodeSpec = node[0].spec.containers.find((c: any) => c.name === 'tscsi-node')
  t.equal(nodeSpec.securityContext?.privileged, true, 'the node plugin is privileged')
  t.ok(nodeSpec.volumeMounts.some((m: any) => m.mountPath === env.KUBELET_DIR && m.mountPropagation === 'Bidirectional'), 'with the kubelet dir Bidirectional')
  t.ok(nodeSpec.args.some((a: string) => a.startsWith('--registration-dir=')), 'and its built-in registration')
  // Host processes of this run are the ones scripts keep a pid of; tscsi's are containers now.
  const hostProcs = readdirSync(path.join(RUN, 'pids')).sort()
  t.same(hostProcs.filter((n) => /tscsi|csi-/.test(n)), [], `no tscsi or CSI sidecar host process (host processes: ${hostProcs.join(' ')})`)
  const drv = await waitFor('CSINode lists the driver', () => getJson('', 'csinode', NODE)?.spec?.drivers?.find((d: any) => d.name === DRIVER))
  t.equal(drv.nodeID, NODE, 'CSINode lists the driver, registered by the pod')
})

t.test('Prometheus scrapes the installed metrics sidecars by pod address', async (t) => {
  const targets = [
    ...driverPods('controller').map((p) => `${p.status.podIP}:${CONTROLLER_METRICS_PORT}`),
    `${nodePod().status.podIP}:${NODE_METRICS_PORT}`,
  ]
  const dir = path.join(RUN, 'prometheus')
  mkdirSync(dir, { recursive: true })
  writeFileSync(path.join(dir, 'prometheus.yml'), `global: { scrape_interval: 2s, scrape_timeout: 2s }
scrape_configs:
  - job_name: tscsi
    static_configs: [{ targets: ${JSON.stringify(targets)} }]
`)
  const port = 20000 + Math.floor(Math.random() * 20000)
  const prom = spawn('/usr/bin/prometheus', [`--config.file=${dir}/prometheus.yml`, `--storage.tsdb.path=${dir}/data`,
    `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'ignore'], detached: true })
  // Kept with the cluster's daemons too, so a crash of this test still has it stopped by teardown.
  writeFileSync(path.join(RUN, 'pids', 'prometheus'), String(prom.pid))
  t.teardown(() => {
    try { process.kill(prom.pid!, 'SIGTERM') } catch {}
    rmSync(path.join(RUN, 'pids', 'prometheus'), { force: true })
  })
  const query = async (q: string): Promise<any[]> => {
    const r = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`, { signal: AbortSignal.timeout(5000) })
    return (await r.json()).data.result
  }
  const up = await waitFor('every target up', async () => { const r = await query('up == 1'); return r.length === targets.length && r }, 120_000)
  t.same(up.map((s: any) => s.metric.instance).sort(), [...targets].sort(), `Prometheus scrapes ${targets.join(', ')}`)
  const rpc = await waitFor('tscsi_rpc_total from the node pod and a controller pod', async () => {
    const r = await query('sum by (instance) (tscsi_rpc_total)')
    const inst = new Set(r.map((s: any) => s.metric.instance))
    return inst.has(targets[targets.length - 1]) && targets.slice(0, -1).some((x) => inst.has(x)) && r
  }, 120_000)
  t.ok(rpc.length >= 2, `tscsi_rpc_total seen: ${rpc.map((s: any) => `${s.metric.instance}=${s.value[1]}`).join(', ')}`)
})

t.test('SIGSTOP of the node plugin: the kubelet\'s liveness probe restarts it, volumes keep working', async (t) => {
  const ns = await namespace(t, 'e2e-sigstop')
  apply(ns, pvc('data', 'tscsi-dir', '16Mi'))
  apply(ns, pod('old', 'echo kept > /data/hello.txt', claimVolume('data'), DATA_MOUNT))
  await waitRunning(ns, 'old')
  t.equal(await nodeHealth(), 200, '/healthz is 200 before')
  const before = nodePod()
  const restarts = containerStatus(before, 'tscsi-node').restartCount
  const pid = nodePluginPid()
  process.kill(pid, 'SIGSTOP')
  t.pass(`the node plugin's process (host pid ${pid}) stopped with SIGSTOP`)
  await waitFor('/healthz 500', async () => (await nodeHealth()) === 500, 60_000)
  t.pass('/healthz answers 500 while it is frozen')
  t.equal(podExec(ns, 'old', 'cat /data/hello.txt && echo more >> /data/hello.txt').stdout, 'kept\n', 'the running pod reads and writes its volume meanwhile')
  const after = await nodeRestarted(restarts, 300_000)
  t.equal(after.metadata.uid, before.metadata.uid, 'the same pod: the kubelet restarted the container')
  const unhealthy = kubectl(['get', 'events', '-n', RELEASE_NS, '--field-selector', `involvedObject.name=${before.metadata.name},reason=Unhealthy`, '-o', 'jsonpath={.items[*].message}'])
  t.match(unhealthy, /Liveness probe failed/, 'because its liveness probe failed (an Unhealthy event)')
  t.not(nodePluginPid(), pid, 'a new process runs')
  await waitFor('/healthz 200 again', async () => (await nodeHealth()) === 200, 60_000)
  t.pass('/healthz is 200 again')
  t.equal(podExec(ns, 'old', 'cat /data/hello.txt').stdout, 'kept\nmore\n', 'the running pod kept its data')
  apply(ns, pvc('new', 'tscsi-dir', '16Mi'))
  apply(ns, pod('fresh', 'echo fresh > /data/hello.txt', claimVolume('new'), DATA_MOUNT))
  await waitRunning(ns, 'fresh')
  t.equal(podExec(ns, 'fresh', 'cat /data/hello.txt').stdout.trim(), 'fresh', 'a new pod mounts a new claim after the restart')
})
