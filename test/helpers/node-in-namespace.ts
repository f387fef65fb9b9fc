// A program, not a module: the node's stage and publish handlers with the real mounter, run in
// whatever mount namespace it was started in (test/publish-propagation.test.ts starts it under
// `unshare --mount --propagation unchanged`, as a node plugin container with Bidirectional
// propagation sees kubelet's directory). One JSON request a line on stdin, { call, req }; one
// JSON line back for each, { ok } or { error: { code, message } }. Prints { ready: true } first.
//
// argv[2]: JSON { dataRoot, scratchDir, mountApi }: the data root (a volumes/ folder in it) the
// handlers serve, and the mounter's options (node/flagged-bind.ts).
import { createInterface } from 'node:readline'
import type { ServiceHandlers } from '../../common/grpc.js'
import { silentLogger } from '../../common/log.js'
import { nodeDeps } from '../../node/deps.js'
import { Layout } from '../../node/layout.js'
import { nativeMounter } from '../../node/mounter.js'
import { publishHandlers } from '../../node/publish.js'
import { stageHandlers } from '../../node/stage.js'

const o = JSON.parse(process.argv[2] ?? '{}') as { dataRoot: string; scratchDir: string; mountApi: boolean }
const mounter = nativeMounter({ scratchDir: o.scratchDir, mountApi: o.mountApi })
const d = nodeDeps({ nodeId: 'ns-node', maxVolumes: 0, layout: new Layout(o.dataRoot), mounter, log: silentLogger() })
const h: ServiceHandlers = { ...stageHandlers(d), ...publishHandlers(d) }

const say = (msg: unknown): void => void process.stdout.write(JSON.stringify(msg) + '\n')
// One request at a time, in order: the test reads the mount tables between answers.
let queue = Promise.resolve()
createInterface({ input: process.stdin }).on('line', (line) => {
  queue = queue.then(async () => {
    const { call, req } = JSON.parse(line) as { call: string; req: unknown }
    try {
      const fn = h[call]
      if (!fn) throw new Error(`no handler ${call}`)
      say({ ok: await fn(req) })
    } catch (e) {
      const err = e as { code?: unknown; message?: unknown }
      say({ error: { code: err.code, message: String(err.message) } })
    }
  })
})
say({ ready: true })
