// The node plugin's container killed with SIGKILL while pods run, and restarted by the kubelet (the
// DaemonSet's restartPolicy), as a crash in production would go: running pods keep their mounts and
// data (the mount path never needs the plugin once published), the restarted plugin rebuilds its
// view from the mount table without doubling a mount, and new pods still mount.
import t from 'tap'
import {
  apply, boundPv, claimVolume, containerStatus, DATA_MOUNT, deletePods, DRIVER, getJson, mountPoints, namespace, NODE, nodeHealth,
  nodePluginPid, nodePod, nodeRestarted, pod, podExec, pvc, targetPath, waitFor, waitRunning,
} from './lib.js'

t.test('node plugin kill -9 while pods run; the kubelet restarts its container', async (t) => {
  const ns = await namespace(t, 'e2e-restart')
  apply(ns, pvc('dir', 'tscsi-dir', '16Mi'))
  apply(ns, pvc('img', 'tscsi-image', '16Mi'))
  apply(ns, pod('old', 'echo kept > /data/hello.txt; echo kept > /img/hello.txt',
    '- name: data\n  persistentVolumeClaim: { claimName: dir }\n- name: img\n  persistentVolumeClaim: { claimName: img }',
    'volumeMounts: [{ name: data, mountPath: /data }, { name: img, mountPath: /img }]'))
  const old = await waitRunning(ns, 'old')
  const pvs = [await boundPv(ns, 'dir'), await boundPv(ns, 'img')]
  t.equal(await nodeHealth(), 200, 'tscsi-metrics /healthz is 200 while the plugin runs')

  const before = nodePod()
  const restarts = containerStatus(before, 'tscsi-node').restartCount
  const pid = nodePluginPid()
  process.kill(pid, 'SIGKILL')
  await waitFor('node plugin dead', () => { try { process.kill(pid, 0); return false } catch { return true } }, 10_000)
  t.pass(`node plugin (host pid ${pid}) killed with SIGKILL`)
  t.equal(podExec(ns, 'old', 'cat /data/hello.txt /img/hello.txt && echo more >> /data/hello.txt').stdout, 'kept\nkept\n', 'the running pod reads and writes both volumes while the plugin is down')

  const after = await nodeRestarted(restarts, 180_000)
  t.equal(after.metadata.uid, before.metadata.uid, 'the kubelet restarted the container in the same pod')
  t.not(nodePluginPid(), pid, 'a new process runs')
  await waitFor('healthz 200 again', async () => (await nodeHealth()) === 200, 60_000)
  t.pass('/healthz is 200 again')
  await waitFor('CSINode still lists the driver', () => getJson('', 'csinode', NODE)?.spec?.drivers?.some((d: any) => d.name === DRIVER))
  t.equal(podExec(ns, 'old', 'cat /data/hello.txt /img/hello.txt').stdout, 'kept\nmore\nkept\n', 'the running pod kept its data across the restart')
  for (const pv of pvs) {
    const n = mountPoints().filter((m) => m.point === targetPath(old.metadata.uid, pv.metadata.name)).length
    t.equal(n, 1, `${pv.metadata.name} is mounted exactly once at its target`)
  }

  apply(ns, pvc('new', 'tscsi-dir', '16Mi'))
  apply(ns, pod('fresh', 'echo fresh > /data/hello.txt', claimVolume('new'), DATA_MOUNT))
  await waitRunning(ns, 'fresh')
  t.equal(podExec(ns, 'fresh', 'cat /data/hello.txt').stdout.trim(), 'fresh', 'a new pod with a new claim mounts after the restart')
  t.equal(getJson(ns, 'pod', 'old').status.containerStatuses[0].restartCount, 0, 'the old pod never restarted')
  t.equal(await deletePods(ns, 'old'), true, 'deleting the old pod unpublishes and unstages both volumes through the restarted plugin')
})
