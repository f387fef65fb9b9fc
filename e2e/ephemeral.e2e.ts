// CSI ephemeral inline volumes: declared in the pod itself, made at NodePublishVolume and removed at
// NodeUnpublishVolume, never seen by the controller. One directory and one 16 MiB ext4 image.
import t from 'tap'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { DATA_ROOT, DRIVER, apply, kubectl, mountPoints, namespace, pod, podExec, waitFor, waitRunning, KUBELET_DIR } from './lib.js'

const list = (d: string): string[] => { try { return readdirSync(path.join(DATA_ROOT, d)) } catch { return [] } }

t.test('CSI ephemeral inline volumes', async (t) => {
  const ns = await namespace(t, 'e2e-ephemeral')
  const before = { volumes: list('volumes'), images: list('images') }
  apply(ns, pod('app', 'echo inline > /data/hello.txt; echo img > /img/hello.txt',
    `- name: data\n  csi: { driver: ${DRIVER}, volumeAttributes: { kind: dir } }\n- name: img\n  csi: { driver: ${DRIVER}, fsType: ext4, volumeAttributes: { kind: image, size: 16Mi } }`,
    'volumeMounts: [{ name: data, mountPath: /data }, { name: img, mountPath: /img }]'))
  const p = await waitRunning(ns, 'app')
  t.equal(podExec(ns, 'app', 'cat /data/hello.txt /img/hello.txt').stdout, 'inline\nimg\n', 'the pod writes and reads both inline volumes')
  const df = Number(podExec(ns, 'app', 'df -k /img | tail -1').stdout.trim().split(/\s+/)[1])
  t.ok(df > 8 * 1024 && df <= 16 * 1024, `the image volume is about 16 MiB in the pod (${df} KiB)`)
  const podDir = path.join(KUBELET_DIR, 'pods', p.metadata.uid, 'volumes', 'kubernetes.io~csi')
  const targets = mountPoints().filter((m) => m.point.startsWith(podDir))
  t.equal(targets.length, 2, 'both are mounts at kubelet\'s publish targets on the node')
  t.ok(targets.some((m) => m.fs === 'ext4' && /^\/dev\/loop/.test(m.source)), 'the image one is ext4 on a loop device')
  const made = [...list('volumes').filter((v) => !before.volumes.includes(v)), ...list('images').filter((v) => !before.images.includes(v))]
  t.ok(made.length >= 2, `their data sits in the node's data root (${made.join(', ')})`)

  kubectl(['delete', 'pod', '-n', ns, 'app', '--wait=true', '--timeout=90s'])
  await waitFor('inline mounts gone', () => !mountPoints().some((m) => m.point.startsWith(podDir)), 60_000)
  t.pass('deleting the pod unmounts both')
  await waitFor('inline data removed', () => made.every((v) => !list('volumes').includes(v) && !list('images').includes(v)), 60_000)
  t.pass('and removes their data (ephemeral volumes die with the pod)')
})
