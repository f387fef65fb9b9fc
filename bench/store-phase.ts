// The store phase: the controller with a small and a large local store, so the targets can
// compare CreateVolume at 10 volumes with CreateVolume at 10,000 (issue 17). For each size tscsi
// is stopped, the store filled up to that size through the store's own code (filling it with
// CreateVolume would take minutes), and tscsi started again on it, as after a restart.
import { NODE_ID, startTscsi, type Driver, type TscsiDriver } from './drivers.js'
import { memoryMiB } from './procs.js'
import { stepStats, type StoreSummary } from './results.js'
import { populateStore, storeScale } from './scale.js'
import { msSince, percentile } from './stats.js'

export interface StorePhase {
  /** Store sizes, ascending (each run fills the store up to it). */
  sizes: number[]
  samples: number
  /** The running drivers: tscsi is replaced in it by each restart. */
  drivers: Driver[]
  pidNames: Map<number, string>
  say: (msg: string) => void
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Runs the phase for every size; returns its summaries and the tscsi left running. */
export async function storePhase(tscsi: TscsiDriver, p: StorePhase): Promise<{ store: StoreSummary[]; tscsi: TscsiDriver }> {
  const out: StoreSummary[] = []
  let filled = 0
  for (const size of p.sizes) {
    p.say(`store: stopping tscsi, filling its store up to ${size} volumes, starting it again`)
    await tscsi.stop()
    p.drivers.splice(p.drivers.indexOf(tscsi), 1)
    const populateSeconds = await populateStore(tscsi.stateDir, tscsi.dataRoot, NODE_ID, size, filled)
    filled = size
    const t0 = process.hrtime.bigint()
    tscsi = await startTscsi({ ...tscsi.options, sidecar: false })
    const restartSeconds = msSince(t0) / 1000
    p.drivers.push(tscsi)
    p.pidNames.set(tscsi.nodeProc.pid, `tscsi-node (restarted on ${size} volumes)`)
    p.pidNames.set(tscsi.controllerProc.pid, `tscsi-controller (restarted on ${size} volumes)`)
    p.say(`  written in ${populateSeconds.toFixed(1)} s; controller and node ready ${restartSeconds.toFixed(1)} s after start; timing CreateVolume, DeleteVolume, ListVolumes`)
    await sleep(2000)
    const s = await storeScale(tscsi, size, p.samples)
    const rss: Record<string, number> = {}
    for (const [name, pid] of [['tscsi-node', tscsi.nodeProc.pid], ['tscsi-controller', tscsi.controllerProc.pid]] as const) rss[name] = (memoryMiB(pid).rss * 2 ** 20) / 1e6
    out.push({
      volumes: s.volumes, populateSeconds, restartSeconds, rss,
      create: stepStats(s.create, 'CreateVolume'), delete: stepStats(s.deleteAtSize, 'DeleteVolume'),
      listAll: { ...stepStats(s.listAll, 'ListVolumes'), entries: s.listAllEntries, jsonBytes: s.listAllBytes }, listRaw: stepStats(s.listRaw, 'ListVolumes'),
      listPage: { ...stepStats(s.listPage, 'ListVolumes'), pages: s.pages }, listWalkMs: percentile(s.listWalk.samples.get('walk') ?? [], 50),
    })
  }
  return { store: out, tscsi }
}
