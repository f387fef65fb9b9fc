// Registration with kubelet both ways the manifests allow: tscsi's built-in registration
// (--registration-dir, how e2e.sh starts the node plugin) and kubernetes-csi's node-driver-registrar
// (deploy/kubernetes/node.yaml's default). Each time CSINode must list the driver with its topology
// key, and a pod must mount through it.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import {
  apply, claimVolume, DATA_MOUNT, DRIVER, driverScript, env, getJson, namespace, NODE, nodeMode, pod, podExec, pvc,
  TOPOLOGY_KEY, waitFor, waitRunning,
} from './lib.js'

const csiNodeDriver = (): any => getJson('', 'csinode', NODE)?.spec?.drivers?.find((d: any) => d.name === DRIVER)

async function switchTo(t: Test, mode: 'builtin' | 'registrar'): Promise<void> {
  const stop = driverScript('node-stop')
  t.equal(stop.code, 0, `node plugin stopped (${stop.stderr.trim()})`)
  // kubelet deregisters a plugin whose registration socket went away, removing it from CSINode.
  await waitFor('driver gone from CSINode', () => !csiNodeDriver(), 60_000)
  t.pass('CSINode dropped the driver once its registration went away')
  const start = driverScript('node-start', mode)
  t.equal(start.code, 0, `node plugin started with ${mode} registration ${start.stderr.trim()}`)
  const d = await waitFor(`driver back in CSINode (${mode})`, csiNodeDriver, 90_000)
  t.equal(d.nodeID, NODE, `${mode}: CSINode nodeID is the node`)
  t.ok(d.topologyKeys?.includes(TOPOLOGY_KEY), `${mode}: CSINode topologyKeys has ${TOPOLOGY_KEY}`)
}

t.test('CSINode through node-driver-registrar, then back to the built-in registration', async (t) => {
  t.equal(nodeMode(), 'builtin', 'the node plugin starts with its built-in registration')
  t.ok(csiNodeDriver()?.topologyKeys?.includes(TOPOLOGY_KEY), 'builtin: CSINode lists the driver with its topology key')
  const ns = await namespace(t, 'e2e-registrar')
  try {
    await switchTo(t, 'registrar')
    const log = readFileSync(path.join(env.RUN, 'logs/csi-node-driver-registrar.log'), 'utf8')
    t.match(log, /PluginRegistered:true/, 'node-driver-registrar was told by kubelet that the plugin is registered')
    apply(ns, pvc('data', 'tscsi-dir', '16Mi'))
    apply(ns, pod('p', 'echo via-registrar > /data/f', claimVolume('data'), DATA_MOUNT))
    await waitRunning(ns, 'p')
    t.equal(podExec(ns, 'p', 'cat /data/f').stdout.trim(), 'via-registrar', 'a pod mounts a volume through the registrar-registered driver')
  } finally {
    if (nodeMode() !== 'builtin') await switchTo(t, 'builtin')
  }
})
