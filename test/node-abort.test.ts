// Cancellation on the node: the AbortSignal the handlers and long waits take (the gRPC boundary
// will abort it at the CO's deadline). An aborted wait answers with one CsiError, kills the
// child it waited on, and leaves nothing half made.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, truncateSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Code, CsiError } from '../common/errors.js'
import { checkSignal, stopped } from '../node/abort.js'
import { ensureImage } from '../node/datadir.js'
import { ephemeralIdFor } from '../common/ids.js'
import { mkfs } from '../node/fstools.js'
import { publishHandlers } from '../node/publish.js'
import { stageHandlers } from '../node/stage.js'
import { handler } from './helpers/csi.js'
import { nodeEnv } from './helpers/node-env.js'

const MiB = 1 << 20
const hasMkfs = spawnSync('sh', ['-c', 'command -v mkfs.ext4']).status === 0

t.test('stopped(): the boundary\'s CsiError is kept, a timeout is DEADLINE_EXCEEDED, anything else CANCELLED', async (t) => {
  const own = new CsiError(Code.UNAVAILABLE, 'shutting down')
  t.equal(stopped(AbortSignal.abort(own), 'x'), own, 'a CsiError reason is answered as it is')
  t.equal(stopped(AbortSignal.abort(new DOMException('late', 'TimeoutError')), 'mkfs').code, Code.DEADLINE_EXCEEDED, 'TimeoutError: DEADLINE_EXCEEDED')
  const c = stopped(AbortSignal.abort(), 'mkfs')
  t.equal(c.code, Code.CANCELLED, 'a plain abort: CANCELLED')
  t.match(c.message, /^mkfs stopped/, 'the message says what stopped')
  t.doesNotThrow(() => checkSignal(undefined, 'x'), 'no signal: nothing to check')
  t.doesNotThrow(() => checkSignal(new AbortController().signal, 'x'), 'a signal not aborted passes')
  t.throws(() => checkSignal(AbortSignal.abort(), 'x'), { code: Code.CANCELLED })
})

t.test('mkfs: aborting the wait kills the child and answers CANCELLED', { skip: !hasMkfs && 'mkfs.ext4 missing' }, async (t) => {
  const img = path.join(t.testdir({}), 'fs.img')
  writeFileSync(img, '')
  truncateSync(img, 256 * MiB)
  const ac = new AbortController()
  // execFile has spawned the child by the time mkfs() returns its promise.
  const running = mkfs(img, 'ext4', ac.signal)
  ac.abort()
  await t.rejects(running, { code: Code.CANCELLED, message: /mkfs\.ext4 .* stopped/ })
})

t.test('ensureImage: a wait already given up makes nothing and leaves no temporary file', async (t) => {
  const dir = t.testdir({})
  const file = path.join(dir, 'images', 'v-0.img')
  await t.rejects(ensureImage(file, BigInt(64 * MiB), 'ext4', AbortSignal.abort()), { code: Code.CANCELLED })
  t.same(readdirSync(path.dirname(file)), [], 'neither the image nor its temporary file')
})

t.test('NodeStageVolume with an aborted signal touches nothing and frees the volume\'s lock', async (t) => {
  const env = nodeEnv(t)
  // The requests are loose records, as nodeEnv builds them: called through the untyped view.
  const stage = handler(stageHandlers(env.d), 'NodeStageVolume')
  await t.rejects(stage(env.stageReq(), AbortSignal.abort()), { code: Code.CANCELLED })
  t.same(env.mounter.calls, [], 'no effect was requested')
  t.same(env.d.index.paths(env.id), [], 'nothing indexed')
  await stage(env.stageReq())
  t.ok(env.mounter.inspect(env.staging)?.isMountRoot, 'the next stage, not aborted, goes through')
})

t.test('ephemeral NodePublishVolume: an aborted image creation answers CANCELLED and leaves nothing', async (t) => {
  const env = nodeEnv(t)
  const publish = handler(publishHandlers(env.d), 'NodePublishVolume')
  const req = env.publishReq({ volume_id: 'csi-inline-1', staging_target_path: '', volume_context: { 'csi.storage.k8s.io/ephemeral': 'true', kind: 'image', size: '64Mi' } })
  await t.rejects(publish(req, AbortSignal.abort()), { code: Code.CANCELLED })
  t.notOk(existsSync(env.layout.imagePath(ephemeralIdFor('csi-inline-1'))), 'no image')
  t.notOk(existsSync(env.target), 'no target')
  t.same(env.d.index.volumes(), [], 'nothing indexed')
})
