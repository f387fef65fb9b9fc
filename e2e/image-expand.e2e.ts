// An image volume (a sparse file with its own xfs, on a loop device) grown while its pod runs: the
// claim is resized, the external-resizer calls ControllerExpandVolume, kubelet calls
// NodeExpandVolume on the live mount, and `df` inside the pod shows the new size. Before that, a
// write past the size fails inside the pod: the size is a hard limit. xfs, not the manifests' ext4:
// ext4 grows online only with CAP_SYS_RESOURCE, which this machine's root lacks (README).
import t from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import {
  apply, boundPv, claimVolume, DATA_MOUNT, DATA_ROOT, getJson, kubectl, mountPoints, namespace, pod, podExec, pvc,
  targetPath, waitFor, waitRunning,
} from './lib.js'

const MiB = 1024 * 1024
const dfKiB = (ns: string): number => {
  const r = podExec(ns, 'app', 'df -k /data | tail -1')
  const total = Number(r.stdout.trim().split(/\s+/)[1])
  if (!(total > 0)) throw new Error(`df in the pod: ${r.stdout} ${r.stderr}`)
  return total
}

t.test('image volume expanded online while the pod runs', async (t) => {
  const ns = await namespace(t, 'e2e-expand')
  apply(ns, pvc('data', 'tscsi-e2e-xfs', '320Mi'))
  apply(ns, pod('app', 'echo before > /data/hello.txt', claimVolume('data'), DATA_MOUNT))
  const p = await waitRunning(ns, 'app')
  const pv = await boundPv(ns, 'data')

  const target = targetPath(p.metadata.uid, pv.metadata.name)
  const m = mountPoints().find((x) => x.point === target)
  t.equal(m?.fs, 'xfs', `the pod's volume is an xfs mount on the node (${m?.source})`)
  const loop = m?.source.match(/^\/dev\/(loop\d+)$/)?.[1]
  t.ok(loop, 'backed by a loop device')
  if (loop) t.equal(readFileSync(`/sys/block/${loop}/loop/backing_file`, 'utf8').trim(), path.join(DATA_ROOT, 'images', `${pv.spec.csi.volumeHandle}.img`), 'whose backing file is the volume image in the data root')

  const before = dfKiB(ns)
  t.ok(before * 1024 <= 320 * MiB && before * 1024 > 240 * MiB, `df in the pod shows the 320 MiB volume less xfs's log (${before} KiB)`)
  const over = podExec(ns, 'app', 'dd if=/dev/zero of=/data/fill bs=1M count=400 conv=fsync 2>&1; echo rc=$?')
  t.match(over.stdout, /No space left on device/, 'writing 400 MiB into the 320 MiB volume fails inside the pod')
  t.notMatch(over.stdout, /rc=0/, 'and dd says so with its exit code')
  t.equal(podExec(ns, 'app', 'rm -f /data/fill').code, 0, 'the partial file can be removed')

  kubectl(['patch', 'pvc', '-n', ns, 'data', '--type=merge', '-p', '{"spec":{"resources":{"requests":{"storage":"640Mi"}}}}'])
  await waitFor('claim capacity 640Mi', () => getJson(ns, 'pvc', 'data')?.status?.capacity?.storage === '640Mi', 180_000)
  t.pass('the claim reports 640Mi')
  t.equal(getJson('', 'pv', pv.metadata.name).spec.capacity.storage, '640Mi', 'the PV too')
  const after = await waitFor('df in the pod grows', () => { const k = dfKiB(ns); return k > before + 200 * 1024 && k }, 180_000)
  // xfs keeps its internal log (64 MiB here) out of df's total, so compare the growth: +320 MiB.
  const grown = (after - before) * 1024
  t.ok(grown > 300 * MiB && grown <= 320 * MiB, `df in the pod grew by the 320 MiB added (${before} -> ${after} KiB)`)
  t.equal(getJson(ns, 'pod', 'app').status.containerStatuses[0].restartCount, 0, 'the pod kept running throughout')
  t.equal(podExec(ns, 'app', 'cat /data/hello.txt').stdout.trim(), 'before', 'the data written before is still there')
  const fits = podExec(ns, 'app', 'dd if=/dev/zero of=/data/fill bs=1M count=400 conv=fsync 2>&1 && echo ok')
  t.match(fits.stdout, /ok$/m, 'and the 400 MiB that did not fit before now do')
})
