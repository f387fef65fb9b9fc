// Storage capacity tracking: the external-provisioner (--enable-capacity) publishes
// CSIStorageCapacity objects from GetCapacity for the node's topology segment, and the scheduler
// uses them, so a claim larger than the node's free space leaves its pod Pending with an event that
// says why, instead of failing later in CreateVolume. The data root is a 4 GiB filesystem.
import t from 'tap'
import { apply, claimVolume, DATA_MOUNT, getJson, kubectl, namespace, NODE, pod, pvc, TOPOLOGY_KEY, waitFor } from './lib.js'

const GiB = 1024 ** 3
const toBytes = (q: string): number => {
  const m = /^(\d+)(Ki|Mi|Gi|Ti|k|M|G)?$/.exec(q)
  if (!m) return NaN
  const mult: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: GiB, Ti: 1024 ** 4, k: 1e3, M: 1e6, G: 1e9 }
  return Number(m[1]) * (m[2] ? mult[m[2]]! : 1) // the pattern admits only mult's suffixes
}

t.test('CSIStorageCapacity objects and a claim that does not fit', async (t) => {
  const caps = await waitFor('CSIStorageCapacity for tscsi-dir on this node', () => {
    const items = JSON.parse(kubectl(['get', 'csistoragecapacities', '-n', 'tscsi', '-o', 'json'])).items as any[]
    return items.filter((c) => c.storageClassName === 'tscsi-dir' && c.nodeTopology?.matchLabels?.[TOPOLOGY_KEY] === NODE && c.capacity).length > 0 && items
  }, 180_000)
  const dir = caps.find((c: any) => c.storageClassName === 'tscsi-dir')
  const bytes = toBytes(dir.capacity)
  t.ok(bytes > 1 * GiB && bytes <= 4 * GiB, `capacity for tscsi-dir on ${NODE} is the data root's free space (${dir.capacity})`)
  t.ok(caps.some((c: any) => c.storageClassName === 'tscsi-image'), 'image classes get their own objects')

  const ns = await namespace(t, 'e2e-capacity')
  apply(ns, pvc('huge', 'tscsi-dir', '100Gi'))
  apply(ns, pod('app', 'true', claimVolume('huge'), DATA_MOUNT))
  const ev = await waitFor('FailedScheduling event', () => {
    const items = JSON.parse(kubectl(['get', 'events', '-n', ns, '-o', 'json'])).items as any[]
    return items.find((e) => e.involvedObject.name === 'app' && e.reason === 'FailedScheduling')
  }, 120_000)
  t.match(ev.message, /did not have enough free storage/, `the pod's event says why: ${ev.message}`)
  await new Promise((r) => setTimeout(r, 5000))
  t.equal(getJson(ns, 'pvc', 'huge').status.phase, 'Pending', 'the claim stays Pending')
  t.equal(getJson(ns, 'pod', 'app').status.phase, 'Pending', 'and so does the pod')
  t.notOk(getJson(ns, 'pvc', 'huge').spec.volumeName, 'no volume was created for it')
})
