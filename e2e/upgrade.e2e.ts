// Life-cycle of the Helm release while volumes are in use.
// - `helm upgrade` to a second image tag while pods with dir, image and block volumes run: the
//   DaemonSet and the Deployment roll to the new image, the pods keep their data and their mounts
//   (each exactly once), new pods mount, and no loop device is leaked or doubled.
// - `helm uninstall`, then `helm install` again: a volume whose StorageClass says `onDelete:
//   retain` (and every other) is still in the store and on disk, and the new install serves it to
//   a new pod; deleting its claim then keeps its data, as onDelete: retain promises.
import t from 'tap'
import { existsSync } from 'node:fs'
import path from 'node:path'
import {
  apply, boundPv, claimVolume, DATA_MOUNT, DATA_ROOT, dataRootLoops, deletePods, driverPods, driverScript, env, findFile, getJson, kubectl, kubectlTry,
  mountPoints, namespace, nodePod, pod, podExec, pvc, targetPath, volumeDir, waitFor, waitGone, waitRunning,
} from './lib.js'

// driver.sh setup builds two tags: the one installed and the one upgrades go to.
const [TAG_A, TAG_B, ...more] = env.IMAGE_TAGS.split(',')
if (!TAG_A || !TAG_B || more.length > 0) throw new Error(`IMAGE_TAGS is ${JSON.stringify(env.IMAGE_TAGS)}: expected two tags`)

const imageFile = (pv: any): string => path.join(DATA_ROOT, 'images', `${pv.spec.csi.volumeHandle}.img`)
const tagsOf = (pods: any[]): string[] => [...new Set(pods.flatMap((p) => p.spec.containers.filter((c: any) => c.image.startsWith('tscsi.local/tscsi:')).map((c: any) => c.image.split(':')[1])))]

t.test('helm upgrade to a second image tag while dir, image and block volumes are in use', async (t) => {
  const ns = await namespace(t, 'e2e-upgrade')
  apply(ns, pvc('dir', 'tscsi-dir', '16Mi'))
  apply(ns, pvc('img', 'tscsi-image', '32Mi'))
  apply(ns, pvc('blk', 'tscsi-block', '16Mi', '  volumeMode: Block'))
  apply(ns, pod('old', 'echo kept > /data/hello.txt; echo kept > /img/hello.txt; echo blockdata | dd of=/dev/blk conv=fsync 2>/dev/null',
    '- name: data\n  persistentVolumeClaim: { claimName: dir }\n- name: img\n  persistentVolumeClaim: { claimName: img }\n- name: blk\n  persistentVolumeClaim: { claimName: blk }',
    'volumeMounts: [{ name: data, mountPath: /data }, { name: img, mountPath: /img }]\nvolumeDevices: [{ name: blk, devicePath: /dev/blk }]'))
  const old = await waitRunning(ns, 'old')
  const pvs = { dir: await boundPv(ns, 'dir'), img: await boundPv(ns, 'img'), blk: await boundPv(ns, 'blk') }
  await waitFor('the pod wrote its data', () => podExec(ns, 'old', 'cat /img/hello.txt').stdout === 'kept\n')
  const mine = (): string[] => dataRootLoops().filter((f) => [imageFile(pvs.blk), imageFile(pvs.img)].includes(f))
  const loopsBefore = dataRootLoops()
  t.same(mine(), [imageFile(pvs.blk), imageFile(pvs.img)].sort(), 'one loop device for each of the image and block volumes')
  const nodeBefore = nodePod()
  t.same(tagsOf([nodeBefore, ...driverPods('controller')]), [TAG_A], `installed with tag ${TAG_A}`)

  const r = driverScript('install', TAG_B)
  t.equal(r.code, 0, `helm upgrade to ${TAG_B} finished and every pod is Ready ${r.stderr.trim()}`)
  const nodeAfter = nodePod()
  t.not(nodeAfter.metadata.uid, nodeBefore.metadata.uid, 'the DaemonSet replaced the node plugin pod')
  t.same(tagsOf([nodeAfter, ...driverPods('controller')]), [TAG_B], `every tscsi container runs ${TAG_B}`)

  t.equal(podExec(ns, 'old', 'cat /data/hello.txt /img/hello.txt; dd if=/dev/blk bs=10 count=1 2>/dev/null').stdout, 'kept\nkept\nblockdata\n', 'the running pod reads all three volumes after the upgrade')
  t.equal(podExec(ns, 'old', 'echo more >> /data/hello.txt && echo more >> /img/hello.txt && cat /img/hello.txt').stdout, 'kept\nmore\n', 'and writes them')
  for (const k of ['dir', 'img'] as const) {
    t.equal(mountPoints().filter((m) => m.point === targetPath(old.metadata.uid, pvs[k].metadata.name)).length, 1, `${k}: its publish target is mounted exactly once`)
  }
  t.same(dataRootLoops(), loopsBefore, 'the same loop devices, none added or lost by the rolling restart')
  t.equal(getJson(ns, 'pod', 'old').status.containerStatuses[0].restartCount, 0, 'the old pod never restarted')

  apply(ns, pvc('img2', 'tscsi-image', '32Mi'))
  apply(ns, pod('fresh', 'echo fresh > /img/hello.txt', '- name: img\n  persistentVolumeClaim: { claimName: img2 }', 'volumeMounts: [{ name: img, mountPath: /img }]'))
  await waitRunning(ns, 'fresh')
  t.equal(podExec(ns, 'fresh', 'cat /img/hello.txt').stdout, 'fresh\n', 'a new pod mounts a new image volume after the upgrade')
  const img2 = await boundPv(ns, 'img2')
  t.equal(await deletePods(ns, 'old', 'fresh'), true, 'deleting the pods unpublishes and unstages every volume through the upgraded plugin')
  t.same(dataRootLoops().filter((f) => [imageFile(pvs.blk), imageFile(pvs.img), imageFile(img2)].includes(f)), [], 'and releases their loop devices')
  t.ok(existsSync(imageFile(img2)), 'the images stay on disk')
})

t.test('helm uninstall, install again: retained volumes are still there and served', async (t) => {
  const ns = await namespace(t, 'e2e-reinstall')
  const sc = 'tscsi-e2e-ondelete-retain'
  apply('', `apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: { name: ${sc} }
provisioner: local.tscsi.dev
parameters: { kind: dir, onDelete: retain }
reclaimPolicy: Delete
volumeBindingMode: WaitForFirstConsumer
`)
  t.teardown(() => { kubectlTry(['delete', 'storageclass', sc]) })
  apply(ns, pvc('kept', sc, '16Mi'))
  apply(ns, pod('writer', 'echo "before uninstall" > /data/hello.txt && sync', claimVolume('kept'), DATA_MOUNT))
  await waitRunning(ns, 'writer')
  const pv = await boundPv(ns, 'kept')
  const id = pv.spec.csi.volumeHandle
  await waitFor('the pod wrote its data', () => podExec(ns, 'writer', 'cat /data/hello.txt').stdout === 'before uninstall\n')
  kubectl(['delete', 'pod', '-n', ns, 'writer', '--wait=true', '--timeout=120s'])

  const u = driverScript('uninstall')
  t.equal(u.code, 0, `helm uninstall finished and tscsi's pods are gone ${u.stderr.trim()}`)
  t.equal(driverPods('node').length + driverPods('controller').length, 0, 'no tscsi pod is left')
  t.equal(kubectlTry(['get', 'csidriver', 'local.tscsi.dev']).code, 1, 'the CSIDriver went with the release')
  t.equal(kubectlTry(['get', 'tscsivolumes', id]).code, 0, `the volume's TscsiVolume object is still there (Helm keeps CRDs and their objects)`)
  t.ok(findFile(volumeDir(id), 'hello.txt'), 'and its data on the node')

  const i = driverScript('install', TAG_B)
  t.equal(i.code, 0, `helm install again finished and every pod is Ready ${i.stderr.trim()}`)
  apply(ns, pod('reader', 'cat /data/hello.txt > /tmp/read', claimVolume('kept'), DATA_MOUNT))
  await waitRunning(ns, 'reader')
  t.equal(podExec(ns, 'reader', 'cat /data/hello.txt').stdout, 'before uninstall\n', 'the new install serves the retained volume to a new pod, data intact')
  kubectl(['delete', 'pod', '-n', ns, 'reader', '--wait=true', '--timeout=120s'])
  kubectl(['delete', 'pvc', '-n', ns, 'kept', '--wait=true', '--timeout=90s'])
  await waitGone('', 'pv', pv.metadata.name)
  t.pass('deleting the claim deletes the PV through the new install')
  await waitFor('TscsiVolume gone', () => kubectlTry(['get', 'tscsivolumes', id]).code === 1, 60_000)
  t.ok(findFile(volumeDir(id), 'hello.txt'), 'and onDelete: retain kept the data in place')
})
