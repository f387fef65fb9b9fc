// StorageClass mountOptions travel PV -> kubelet -> NodePublishVolume's mount flags; the pod must
// see them on its mount, and they must act (noexec refuses to run a binary from the volume).
import t from 'tap'
import { apply, boundPv, claimVolume, DATA_MOUNT, mountPoints, namespace, pod, podExec, pvc, targetPath, waitRunning, getJson } from './lib.js'

t.test('StorageClass mountOptions visible in the pod', async (t) => {
  const ns = await namespace(t, 'e2e-mountopts')
  apply(ns, pvc('data', 'tscsi-e2e-mountopts', '16Mi'))
  // Named busybox: busybox runs the applet its argv[0] names, and `bb` is none (exit 127 without
  // noexec too). As busybox, `true` succeeds unless the mount refuses to execute it.
  apply(ns, pod('app', 'cp /bin/busybox /data/busybox', claimVolume('data'), DATA_MOUNT))
  const p = await waitRunning(ns, 'app')
  const pv = await boundPv(ns, 'data')
  t.same(pv.spec.mountOptions, ['noexec', 'nosuid', 'noatime'], 'the PV carries the class\'s mountOptions')
  const line = podExec(ns, 'app', 'grep " /data " /proc/self/mounts').stdout.trim()
  const opts = line.split(/\s+/)[3]?.split(',') ?? []
  for (const o of ['noexec', 'nosuid', 'noatime']) t.ok(opts.includes(o), `the pod's /data mount has ${o} (${line})`)
  const run = podExec(ns, 'app', 'test -f /data/busybox && /data/busybox true')
  t.equal(run.code, 126, `running a binary from the volume is refused: noexec acts (${run.code}: ${run.stderr.trim()})`)
  const node = mountPoints().find((m) => m.point === targetPath(p.metadata.uid, pv.metadata.name))
  t.ok(node && ['noexec', 'nosuid', 'noatime'].every((o) => node.opts.split(',').includes(o)), `the node's publish target has them too (${node?.opts})`)
  t.equal(getJson(ns, 'pod', 'app').status.phase, 'Running', 'the pod runs')
})
