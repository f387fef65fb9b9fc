// What other RPCs see while a NodeStageVolume awaits the kernel (an image's LOOP_CONFIGURE and
// mount(2) now run on a worker thread, and the event loop serves other calls meanwhile). The
// mounter's mountImage is held open by the test, so the window is as long as the test wants.
import t from 'tap'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { Code } from '../common/errors.js'
import { ErrnoError } from '../native/index.js'
import { publishHandlers } from '../node/publish.js'
import { stageHandlers } from '../node/stage.js'
import { handler, rejectsCsi } from './helpers/csi.js'
import { FakeMounter } from './helpers/fake-mounter.js'
import { nodeEnv } from './helpers/node-env.js'

/** A FakeMounter whose image mounts wait until the test lets them finish (or fail). */
class HeldMounter extends FakeMounter {
  held: { release: () => void; fail: (e: Error) => void; started: boolean } = { release: () => {}, fail: () => {}, started: false }

  override async mountImage(): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      this.held = { release: () => resolve('/dev/loop99'), fail: reject, started: true }
    })
  }
}

function imageEnv(t: Parameters<typeof nodeEnv>[0]) {
  const env = nodeEnv(t)
  const mounter = new HeldMounter()
  env.d.mounter = mounter
  // Turn the env's volume into an image volume: its data is an image file, not a directory.
  const image = env.layout.imagePath(env.id)
  mkdirSync(path.dirname(image), { recursive: true })
  writeFileSync(image, '')
  ;(env.d.mounter as FakeMounter).rmdir(env.layout.volumeDir(env.id))
  const h = { ...stageHandlers(env.d), ...publishHandlers(env.d) }
  const stageReq = env.stageReq({ volume_context: { 'tscsi.dev/kind': 'image' } })
  return { env, mounter, h, stageReq }
}

t.test('while a stage awaits its mount, the staging path is covered by the lock and the index', async (t) => {
  const { env, mounter, h, stageReq } = imageEnv(t)
  const stage = handler(h, 'NodeStageVolume')(stageReq)
  await new Promise((r) => setImmediate(r))
  t.ok(mounter.held.started, 'the stage is waiting in mountImage')
  t.same(env.d.index.paths(env.id), [env.staging], 'the staging path is indexed before the mount exists')
  // A CO path inside the staging directory would land inside the volume's filesystem once the
  // mount is through; it is refused now, not only after.
  const elsewhere = path.join(env.dir, 'kubelet/staging/s2')
  await rejectsCsi(t, handler(h, 'NodePublishVolume')(env.publishReq({ staging_target_path: elsewhere, target_path: path.join(env.staging, 'inside') })), Code.INVALID_ARGUMENT, /lies inside/, 'a target inside the staging path')
  await rejectsCsi(t, handler(h, 'NodeUnpublishVolume')({ volume_id: env.id, target_path: env.staging }), Code.ABORTED, /in progress/, 'an unpublish naming the staging path')
  await rejectsCsi(t, handler(h, 'NodeUnstageVolume')({ volume_id: env.id, staging_target_path: env.staging }), Code.ABORTED, /in progress/, 'an unstage of the same volume')
  mounter.held.release()
  await stage
  t.same(env.d.index.paths(env.id), [env.staging], 'indexed once the stage answered')
})

t.test('a stage whose mount fails after the await takes its index entry and staging note back', async (t) => {
  const { env, mounter, h, stageReq } = imageEnv(t)
  const stage = handler(h, 'NodeStageVolume')(stageReq)
  await new Promise((r) => setImmediate(r))
  t.ok(mounter.held.started, 'the stage is waiting in mountImage')
  mounter.held.fail(new ErrnoError(5, 'mount', env.staging))
  await t.rejects(stage, { code: 'EIO' }, 'the mount\'s own error comes back')
  t.same(env.d.index.paths(env.id), [], 'no index entry is left')
  const vol = { id: env.id, pool: 'default' }
  t.notOk(env.d.staged.isStaging(vol, env.staging), 'no staging note is left')
  // The lock is free again: a new stage goes as far as the (held) mount.
  const again = handler(h, 'NodeStageVolume')(stageReq)
  await new Promise((r) => setImmediate(r))
  t.ok(mounter.held.started, 'a retry reaches the mount again')
  mounter.held.release()
  await again
})
