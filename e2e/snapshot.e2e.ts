// Seed 003's restore walk: a pod writes hello.txt, a VolumeSnapshot is taken through the
// external-snapshotter and snapshot-controller, a new claim is made from it, and a pod reads
// hello.txt back from the restored volume.
import t from 'tap'
import { existsSync } from 'node:fs'
import path from 'node:path'
import {
  apply, boundPv, claimVolume, DATA_MOUNT, DATA_ROOT, findFile, getJson, kubectl, namespace, pod, podExec, pvc,
  volumeDir, waitFor, waitRunning,
} from './lib.js'

t.test('VolumeSnapshot, restore into a new claim, read hello.txt back', async (t) => {
  const ns = await namespace(t, 'e2e-snapshot')
  apply(ns, pvc('src', 'tscsi-dir', '32Mi'))
  apply(ns, pod('writer', 'echo "snapshot me" > /data/hello.txt && sync', claimVolume('src'), DATA_MOUNT))
  await waitRunning(ns, 'writer')
  await waitFor('hello.txt written', () => podExec(ns, 'writer', 'cat /data/hello.txt').stdout.trim() === 'snapshot me')
  const srcPv = await boundPv(ns, 'src')

  apply(ns, `apiVersion: snapshot.storage.k8s.io/v1
kind: VolumeSnapshot
metadata: { name: snap }
spec:
  volumeSnapshotClassName: tscsi-snapshots
  source: { persistentVolumeClaimName: src }
`)
  const snap = await waitFor('snapshot ready', () => { const s = getJson(ns, 'volumesnapshot', 'snap'); return s?.status?.readyToUse === true && s }, 180_000)
  t.ok(snap.status.boundVolumeSnapshotContentName, `the snapshot is ready and bound to ${snap.status.boundVolumeSnapshotContentName}`)
  const content = getJson('', 'volumesnapshotcontent', snap.status.boundVolumeSnapshotContentName)
  const handle = content.status?.snapshotHandle as string
  t.ok(handle, `the content carries the driver's snapshot id (${handle})`)
  const copy = findFile(path.join(DATA_ROOT, 'snapshots', handle ?? 'none'), 'hello.txt')
  t.ok(copy, 'the snapshot copy holds hello.txt on the node')

  // Changing the source after the snapshot must not change what is restored.
  podExec(ns, 'writer', 'echo changed > /data/hello.txt')
  apply(ns, pvc('restored', 'tscsi-dir', '32Mi', '  dataSource: { apiGroup: snapshot.storage.k8s.io, kind: VolumeSnapshot, name: snap }'))
  apply(ns, pod('reader', 'true', claimVolume('restored'), DATA_MOUNT))
  await waitRunning(ns, 'reader')
  const pv = await boundPv(ns, 'restored')
  t.not(pv.spec.csi.volumeHandle, srcPv.spec.csi.volumeHandle, 'the restore is a new volume')
  t.equal(podExec(ns, 'reader', 'cat /data/hello.txt').stdout.trim(), 'snapshot me', 'the pod reads hello.txt as it was at the snapshot')
  t.ok(existsSync(volumeDir(pv.spec.csi.volumeHandle)), 'the restored volume is in the node\'s data root')

  kubectl(['delete', 'volumesnapshot', '-n', ns, 'snap', '--wait=true', '--timeout=90s'])
  await waitFor('snapshot copy removed', () => !existsSync(path.join(DATA_ROOT, 'snapshots', handle)), 90_000)
  t.pass('deleting the VolumeSnapshot (deletionPolicy Delete) removes the copy on the node')
})
