// A node plugin's handlers over a testdir, with the kernel replaced by FakeMounter.
// Layout of the testdir: data/ is the data root (data/volumes/<id> are volume directories),
// kubelet/staging/* are staging directories the CO created, kubelet/pods/*/ are pod folders
// whose `mount` child is the target path the driver creates.
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { silentLogger } from '../../common/log.js'
import { volumeIdFor } from '../../common/ids.js'
import { nodeDeps, type NodeDeps } from '../../node/deps.js'
import { infoHandlers } from '../../node/info.js'
import { Layout } from '../../node/layout.js'
import { publishHandlers } from '../../node/publish.js'
import { stageHandlers } from '../../node/stage.js'
import { FakeMounter } from './fake-mounter.js'
import { handler, mountCap, type TT } from './csi.js'

export interface NodeEnv {
  dir: string
  d: NodeDeps
  mounter: FakeMounter
  layout: Layout
  /** A volume whose directory exists. */
  id: string
  staging: string
  /** Target paths whose parent exists but which do not exist yet. */
  target: string
  target2: string
  call(name: string, req: Record<string, unknown>): Promise<unknown>
  stageReq(over?: Record<string, unknown>): Record<string, unknown>
  publishReq(over?: Record<string, unknown>): Record<string, unknown>
}

export function nodeEnv(t: TT, name = 'pvc-1'): NodeEnv {
  const dir = t.testdir({ data: { volumes: {} }, kubelet: { staging: { s1: {}, s2: {} }, pods: { p1: {}, p2: {} } } })
  const layout = new Layout(path.join(dir, 'data'))
  const mounter = new FakeMounter()
  const d = nodeDeps({ nodeId: 'node-a', maxVolumes: 0, layout, mounter, log: silentLogger() })
  const h = { ...stageHandlers(d), ...publishHandlers(d), ...infoHandlers(d) }
  const id = volumeIdFor(name)
  mkdirSync(layout.volumeDir(id))
  const staging = path.join(dir, 'kubelet/staging/s1')
  const target = path.join(dir, 'kubelet/pods/p1/mount')
  const target2 = path.join(dir, 'kubelet/pods/p2/mount')
  return {
    dir, d, mounter, layout, id, staging, target, target2,
    call: (n, req) => handler(h, n)(req),
    stageReq: (over = {}) => ({
      volume_id: id, staging_target_path: staging, volume_capability: mountCap(), volume_context: {}, secrets: {}, publish_context: {}, ...over,
    }),
    publishReq: (over = {}) => ({
      volume_id: id, staging_target_path: staging, target_path: target, volume_capability: mountCap(), readonly: false,
      volume_context: {}, secrets: {}, publish_context: {}, ...over,
    }),
  }
}
