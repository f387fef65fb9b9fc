// A raw block volume (volumeMode: Block): kubelet stages and publishes it through the node plugin
// and hands the device to the pod as volumeDevices. The pod sees a block device of the claimed size
// and its writes land in the volume's image file on the node.
import t from 'tap'
import { closeSync, openSync, readSync } from 'node:fs'
import path from 'node:path'
import { apply, boundPv, DATA_ROOT, namespace, pod, podExec, pvc, waitRunning } from './lib.js'

t.test('raw block volume in a pod', async (t) => {
  const ns = await namespace(t, 'e2e-block')
  apply(ns, pvc('raw', 'tscsi-block', '64Mi', '  volumeMode: Block'))
  apply(ns, pod('app', 'true', '- name: data\n  persistentVolumeClaim: { claimName: raw }', 'volumeDevices: [{ name: data, devicePath: /dev/xvda }]'))
  await waitRunning(ns, 'app')
  const pv = await boundPv(ns, 'raw')
  t.equal(pv.spec.volumeMode, 'Block', 'the PV is a block volume')
  t.equal(podExec(ns, 'app', 'test -b /dev/xvda').code, 0, '/dev/xvda in the pod is a block device')
  t.equal(podExec(ns, 'app', 'blockdev --getsize64 /dev/xvda').stdout.trim(), String(64 * 1024 * 1024), 'of the claimed size')
  const w = podExec(ns, 'app', 'printf "hello block" | dd of=/dev/xvda bs=512 seek=8 conv=fsync 2>&1')
  t.equal(w.code, 0, `the pod writes to the device (${w.stdout.trim()})`)
  t.equal(podExec(ns, 'app', 'dd if=/dev/xvda bs=512 skip=8 count=1 2>/dev/null | head -c 11').stdout, 'hello block', 'and reads it back')
  const img = path.join(DATA_ROOT, 'images', `${pv.spec.csi.volumeHandle}.img`)
  const fd = openSync(img, 'r')
  const buf = Buffer.alloc(11)
  readSync(fd, buf, 0, 11, 8 * 512)
  closeSync(fd)
  t.equal(buf.toString(), 'hello block', `the bytes are in the volume's image on the node (${img})`)
})
