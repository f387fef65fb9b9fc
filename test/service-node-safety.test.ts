// Service tests of the node RPCs' safety rules: CO paths are never followed through symlinks,
// never inside the data root, and the driver removes only what it created.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { existsSync, lstatSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { toCsiError } from '../common/errors.js'
import { volumeIdFor } from '../common/ids.js'
import { rejectsCsi } from './helpers/csi.js'
import { nodeEnv } from './helpers/node-env.js'

const NO_FLAGS = { readonly: false, nosuid: false, nodev: false, noexec: false, noatime: false, nodiratime: false, strictatime: false }

t.test('a symlink at the target is FAILED_PRECONDITION and nothing is mounted', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  const elsewhere = path.join(e.dir, 'elsewhere')
  mkdirSync(elsewhere)
  symlinkSync(elsewhere, e.target)
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq()), status.FAILED_PRECONDITION, /symbolic link/)
  t.same(e.mounter.mountedTargets(), [e.staging], 'only the staging bind exists')
  t.ok(lstatSync(e.target).isSymbolicLink(), 'the link is left alone')
  await rejectsCsi(t, e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target }), status.FAILED_PRECONDITION, /symbolic link/)
  t.ok(lstatSync(e.target).isSymbolicLink(), 'unpublish does not remove the link either')
  t.ok(existsSync(elsewhere), 'nor what it points to')
})

t.test('a symlink at the staging path is FAILED_PRECONDITION for stage and unstage', async (t) => {
  const e = nodeEnv(t)
  const link = path.join(e.dir, 'kubelet/staging/link')
  symlinkSync(path.join(e.dir, 'kubelet/staging/s2'), link)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ staging_target_path: link })), status.FAILED_PRECONDITION, /symbolic link/)
  await rejectsCsi(t, e.call('NodeUnstageVolume', { volume_id: e.id, staging_target_path: link }), status.FAILED_PRECONDITION, /symbolic link/)
  t.same(e.mounter.mountedTargets(), [])
})

t.test('a file at the target is FAILED_PRECONDITION and is not removed', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  writeFileSync(e.target, 'data')
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq()), status.FAILED_PRECONDITION, /file/)
  await rejectsCsi(t, e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target }), status.FAILED_PRECONDITION)
  t.ok(lstatSync(e.target).isFile())
})

t.test('paths inside (or above) the data root are INVALID_ARGUMENT', async (t) => {
  const e = nodeEnv(t)
  const inside = path.join(e.layout.volumesDir, 'x')
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ staging_target_path: inside })), status.INVALID_ARGUMENT, /data root/)
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ target_path: e.layout.volumeDir(e.id) })), status.INVALID_ARGUMENT, /data root/)
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ target_path: e.layout.dataRoot })), status.INVALID_ARGUMENT, /data root/)
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ staging_target_path: e.layout.volumeDir(e.id) })), status.INVALID_ARGUMENT, /data root/)
  await rejectsCsi(t, e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.layout.volumeDir(e.id) }), status.INVALID_ARGUMENT, /data root/)
  await rejectsCsi(t, e.call('NodeUnstageVolume', { volume_id: e.id, staging_target_path: e.layout.dataRoot }), status.INVALID_ARGUMENT, /data root/)
  t.same(e.mounter.calls, [])
  t.ok(existsSync(e.layout.volumeDir(e.id)), 'volume directory still there')
})

t.test('a target whose parent is a symlink into the data root is refused', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  const other = volumeIdFor('pvc-other')
  mkdirSync(e.layout.volumeDir(other))
  const podDir = path.join(e.dir, 'kubelet/pods/p3')
  symlinkSync(e.layout.volumeDir(other), podDir)
  const target = path.join(podDir, 'mount')
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ target_path: target })), status.INVALID_ARGUMENT, /data root/, '')
  t.same(readdirSync(e.layout.volumeDir(other)), [], 'nothing created inside the other volume')
})

t.test('unpublish leaves a mount that is not this volume alone (FAILED_PRECONDITION)', async (t) => {
  const e = nodeEnv(t)
  const foreign = path.join(e.dir, 'foreign')
  mkdirSync(foreign)
  mkdirSync(e.target)
  e.mounter.bind(foreign, e.target, NO_FLAGS, { target: e.mounter.inspect(e.target)! })
  await rejectsCsi(t, e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target }), status.FAILED_PRECONDITION, /not volume/)
  t.equal(e.mounter.layers(e.target), 1, 'foreign mount still there')
  await rejectsCsi(t, e.call('NodeUnstageVolume', { volume_id: e.id, staging_target_path: e.target }), status.FAILED_PRECONDITION, /not volume/)
  t.equal(e.mounter.layers(e.target), 1)
})

t.test('staging over a different mount is ALREADY_EXISTS', async (t) => {
  const e = nodeEnv(t)
  const other = volumeIdFor('pvc-2')
  mkdirSync(e.layout.volumeDir(other))
  await e.call('NodeStageVolume', e.stageReq({ volume_id: other }))
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq()), status.ALREADY_EXISTS)
  t.equal(e.mounter.layers(e.staging), 1)
})

t.test('publishing a different volume onto a used target is ALREADY_EXISTS', async (t) => {
  const e = nodeEnv(t)
  const other = volumeIdFor('pvc-2')
  mkdirSync(e.layout.volumeDir(other))
  const staging2 = path.join(e.dir, 'kubelet/staging/s2')
  await e.call('NodeStageVolume', e.stageReq())
  await e.call('NodeStageVolume', e.stageReq({ volume_id: other, staging_target_path: staging2 }))
  await e.call('NodePublishVolume', e.publishReq())
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ volume_id: other, staging_target_path: staging2 })), status.ALREADY_EXISTS, /different volume/)
})

t.test('unpublish of an unmounted, non-empty target is FAILED_PRECONDITION and keeps the data', async (t) => {
  const e = nodeEnv(t)
  mkdirSync(e.target)
  writeFileSync(path.join(e.target, 'keep'), 'x')
  await rejectsCsi(t, e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target }), status.FAILED_PRECONDITION, /not empty/)
  t.ok(existsSync(path.join(e.target, 'keep')))
})

t.test('a failed bind leaves no target directory behind, and the error keeps a gRPC code', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  e.mounter.failNext('bind', 'EPERM')
  let err: any
  await e.call('NodePublishVolume', e.publishReq()).catch((x) => { err = x })
  t.ok(err, 'publish failed')
  t.equal(err?.code, 'EPERM', 'the mounter error reaches the handler caller unchanged')
  t.equal(toCsiError(err).code, status.INTERNAL, 'the boundary maps it to a numeric gRPC code')
  t.notOk(existsSync(e.target), 'the target the driver created was removed')
  t.same(await e.call('NodePublishVolume', e.publishReq()), {}, 'a retry succeeds')
})

t.test('publish under a missing parent is FAILED_PRECONDITION', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ target_path: path.join(e.dir, 'kubelet/pods/gone/mount') })), status.FAILED_PRECONDITION, /parent/)
})

t.test('hostile volume ids never reach the filesystem', async (t) => {
  const e = nodeEnv(t)
  for (const id of ['../../etc', 'v-../../x', `${e.id}/..`, 'V-' + e.id.slice(2)]) {
    await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_id: id })), status.NOT_FOUND, undefined, JSON.stringify(id))
  }
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_id: 'v-\u0000' })), status.INVALID_ARGUMENT, /volume_id/)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_id: 'v'.repeat(129) })), status.INVALID_ARGUMENT, /volume_id/)
  t.same(e.mounter.calls, [])
})
