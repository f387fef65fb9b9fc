// Directory volumes through the real kubelet (seeds 000/002/004's walk): a WaitForFirstConsumer
// claim stays unbound until a pod uses it, the pod writes hello.txt, the file is in the node's data
// root, CSINode lists the driver with its topology key, deleting the pod unmounts, deleting the
// claim removes the data (reclaimPolicy Delete) or keeps it (Retain).
import t, { type Test } from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import {
  apply, boundPv, claimVolume, DATA_MOUNT, DRIVER, findFile, getJson, kubectl, kubectlTry, mountPoints, namespace, NODE,
  pod, podExec, pvc, targetPath, TOPOLOGY_KEY, volumeDir, waitFor, waitGone, waitRunning, KUBELET_DIR,
} from './lib.js'

t.test('CSINode lists the driver with its topology key', async (t) => {
  const drv = await waitFor('CSINode driver entry', () => getJson('', 'csinode', NODE)?.spec?.drivers?.find((d: any) => d.name === DRIVER))
  t.equal(drv.nodeID, NODE, 'nodeID is the node name')
  t.ok(drv.topologyKeys?.includes(TOPOLOGY_KEY), `topologyKeys has ${TOPOLOGY_KEY}: ${JSON.stringify(drv.topologyKeys)}`)
  const node = getJson('', 'node', NODE)
  t.equal(node.metadata.labels?.[TOPOLOGY_KEY], NODE, 'kubelet labelled the node with the topology segment')
})

async function walk(t: Test, ns: string, sc: string): Promise<{ pv: any; dataFile: string }> {
  apply(ns, pvc('data', sc, '64Mi'))
  // WaitForFirstConsumer: no volume before a pod needs one.
  await new Promise((r) => setTimeout(r, 3000))
  const before = getJson(ns, 'pvc', 'data')
  t.equal(before.status.phase, 'Pending', 'the claim waits for its first consumer')
  const ev = kubectl(['get', 'events', '-n', ns, '--field-selector', 'involvedObject.name=data', '-o', 'jsonpath={.items[*].reason}'])
  t.match(ev, /WaitForFirstConsumer/, 'and says so in an event')

  apply(ns, pod('writer', 'echo "hello from $HOSTNAME" > /data/hello.txt && sync', claimVolume('data'), DATA_MOUNT))
  const p = await waitRunning(ns, 'writer')
  const pv = await boundPv(ns, 'data')
  t.equal(pv.spec.csi.driver, DRIVER, 'the PV is a tscsi volume')
  const terms = pv.spec.nodeAffinity?.required?.nodeSelectorTerms ?? []
  t.ok(terms.some((x: any) => x.matchExpressions?.some((e: any) => e.key === TOPOLOGY_KEY && e.values?.includes(NODE))), 'the PV is pinned to the scheduled node')

  const inPod = await waitFor('hello.txt inside the pod', () => { const r = podExec(ns, 'writer', 'cat /data/hello.txt'); return r.code === 0 && r.stdout })
  t.match(inPod, /^hello from /, 'the pod reads back what it wrote')
  const mnt = podExec(ns, 'writer', 'grep " /data " /proc/self/mounts')
  t.equal(mnt.code, 0, '/data is a mount inside the pod')

  const target = targetPath(p.metadata.uid, pv.metadata.name)
  t.ok(mountPoints().some((m) => m.point === target), `kubelet's publish target is a mount on the node (${target})`)
  t.ok(mountPoints().some((m) => m.point.startsWith(path.join(KUBELET_DIR, 'plugins/kubernetes.io/csi', DRIVER)) && m.point.endsWith('/globalmount')), 'and the staging path is too')
  const dataFile = findFile(volumeDir(pv.spec.csi.volumeHandle), 'hello.txt')
  t.ok(dataFile, `hello.txt is in the node's data root under volumes/${pv.spec.csi.volumeHandle}`)
  if (dataFile) t.equal(readFileSync(dataFile, 'utf8'), inPod, 'with the content the pod wrote')

  kubectl(['delete', 'pod', '-n', ns, 'writer', '--wait=true', '--timeout=90s'])
  await waitFor('publish target unmounted', () => !mountPoints().some((m) => m.point === target), 60_000)
  t.pass('deleting the pod unmounted the publish target')
  await waitFor('staging unmounted', () => !mountPoints().some((m) => m.point.includes(`/${DRIVER}/`) && m.point.endsWith('/globalmount')), 60_000)
  t.pass('and the staging path (NodeUnstageVolume)')
  t.notOk(existsSync(target), 'the target directory is removed')
  t.ok(dataFile && existsSync(dataFile), 'the data outlives the pod')
  return { pv, dataFile: dataFile ?? '' }
}

t.test('directory volume, WaitForFirstConsumer, reclaimPolicy Delete', async (t) => {
  const ns = await namespace(t, 'e2e-dir')
  const { pv, dataFile } = await walk(t, ns, 'tscsi-dir')
  kubectl(['delete', 'pvc', '-n', ns, 'data', '--wait=true', '--timeout=90s'])
  await waitGone('', 'pv', pv.metadata.name)
  t.pass('deleting the claim deletes the PV')
  await waitFor('volume data removed', () => !existsSync(volumeDir(pv.spec.csi.volumeHandle)), 60_000)
  t.notOk(existsSync(dataFile), 'and the data on the node (reclaimPolicy Delete)')
  t.equal(kubectlTry(['get', 'tscsivolumes', pv.spec.csi.volumeHandle]).code, 1, 'and the TscsiVolume object')
})

t.test('directory volume, reclaimPolicy Retain', async (t) => {
  const ns = await namespace(t, 'e2e-retain')
  const { pv, dataFile } = await walk(t, ns, 'tscsi-e2e-retain')
  kubectl(['delete', 'pvc', '-n', ns, 'data', '--wait=true', '--timeout=90s'])
  const released = await waitFor('PV Released', () => getJson('', 'pv', pv.metadata.name)?.status?.phase === 'Released', 60_000)
  t.ok(released, 'deleting the claim releases the PV and keeps it')
  await new Promise((r) => setTimeout(r, 3000))
  t.ok(existsSync(dataFile), 'the data stays on the node (reclaimPolicy Retain)')
  kubectl(['delete', 'pv', pv.metadata.name, '--wait=true', '--timeout=60s'])
})
