// Service tests of the node RPCs (stage, publish, info) with the kernel replaced by FakeMounter.
// Requests are plain objects shaped as proto-loader delivers them.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { existsSync, lstatSync } from 'node:fs'
import { volumeIdFor } from '../common/ids.js'
import { ST } from '../native/index.js'
import { NODE_CAPABILITIES } from '../node/info.js'
import { TOPOLOGY_KEY } from '../common/keys.js'
import { mountCap, rejectsCsi } from './helpers/csi.js'
import { nodeEnv } from './helpers/node-env.js'

t.test('stage, publish, unpublish, unstage: each works and each repeat is a no-op', async (t) => {
  const e = nodeEnv(t)
  const volInfo = e.mounter.inspect(e.layout.volumeDir(e.id))!

  t.same(await e.call('NodeStageVolume', e.stageReq()), {})
  t.equal(e.mounter.layers(e.staging), 1, 'staging has one bind')
  t.equal(e.mounter.top(e.staging)!.sourcePath, e.layout.volumeDir(e.id), 'the bind shows the volume directory')
  t.same(await e.call('NodeStageVolume', e.stageReq()), {}, 'repeated stage is OK')
  t.equal(e.mounter.layers(e.staging), 1, 'repeated stage does not stack a second bind')

  t.notOk(existsSync(e.target), 'target does not exist before publish')
  t.same(await e.call('NodePublishVolume', e.publishReq()), {})
  const at = e.mounter.inspect(e.target)!
  t.ok(at.isMountRoot, 'target is a mount root')
  t.equal(at.ino, volInfo.ino, 'target shows the volume directory')
  t.same(await e.call('NodePublishVolume', e.publishReq()), {}, 'repeated publish is OK')
  t.equal(e.mounter.layers(e.target), 1, 'repeated publish does not stack')
  t.same(e.d.index.paths(e.id).sort(), [e.staging, e.target].sort(), 'index knows both mounts')

  t.same(await e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target }), {})
  t.equal(e.mounter.layers(e.target), 0, 'target unmounted')
  t.notOk(existsSync(e.target), 'unpublish removes the target directory it created')
  t.same(await e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target }), {}, 'repeated unpublish is OK')

  t.same(await e.call('NodeUnstageVolume', { volume_id: e.id, staging_target_path: e.staging }), {})
  t.equal(e.mounter.layers(e.staging), 0, 'staging unmounted')
  t.ok(lstatSync(e.staging).isDirectory(), 'the CO-created staging directory is left in place')
  t.same(await e.call('NodeUnstageVolume', { volume_id: e.id, staging_target_path: e.staging }), {}, 'repeated unstage is OK')
  t.same(e.d.index.volumes(), [], 'index is empty again')
})

t.test('unstage removes every stacked layer of the volume', async (t) => {
  const e = nodeEnv(t)
  const src = e.layout.volumeDir(e.id)
  for (let i = 0; i < 3; i++) e.mounter.bind(src, e.staging, { readonly: false, nosuid: false, nodev: false, noexec: false, noatime: false, nodiratime: false, strictatime: false }, { target: e.mounter.inspect(e.staging)! })
  t.equal(e.mounter.layers(e.staging), 3)
  await e.call('NodeUnstageVolume', { volume_id: e.id, staging_target_path: e.staging })
  t.equal(e.mounter.layers(e.staging), 0)
})

t.test('publish without a staged volume is FAILED_PRECONDITION and creates no target', async (t) => {
  const e = nodeEnv(t)
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq()), status.FAILED_PRECONDITION, /NodeStageVolume/)
  t.notOk(existsSync(e.target))
  t.same(e.mounter.calls, [], 'no mount effect was attempted')
})

t.test('publish with an empty staging_target_path is FAILED_PRECONDITION', async (t) => {
  const e = nodeEnv(t)
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ staging_target_path: '' })), status.FAILED_PRECONDITION, /staging_target_path/)
})

t.test('publishing the same target again as readonly is ALREADY_EXISTS', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  await e.call('NodePublishVolume', e.publishReq())
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ readonly: true })), status.ALREADY_EXISTS, /read-write/)
  t.equal(e.mounter.layers(e.target), 1, 'the existing mount is untouched')
})

t.test('readonly publish gives a read-only mount, and a read-write repeat is ALREADY_EXISTS', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  await e.call('NodePublishVolume', e.publishReq({ readonly: true }))
  t.ok(e.mounter.statfs(e.target).flags & ST.RDONLY, 'mounted read-only')
  t.same(await e.call('NodePublishVolume', e.publishReq({ readonly: true })), {}, 'same readonly publish is OK')
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ readonly: false })), status.ALREADY_EXISTS)
})

t.test('a read-only access mode makes the mount read-only even without readonly', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq({ volume_capability: mountCap('SINGLE_NODE_READER_ONLY') }))
  await e.call('NodePublishVolume', e.publishReq({ volume_capability: mountCap('SINGLE_NODE_READER_ONLY') }))
  t.ok(e.mounter.statfs(e.target).flags & ST.RDONLY)
})

t.test('mount flags reach the bind (nosuid, noexec, comma-joined)', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  await e.call('NodePublishVolume', e.publishReq({ volume_capability: mountCap('SINGLE_NODE_WRITER', ['nosuid,noexec']) }))
  const st = e.mounter.statfs(e.target).flags
  t.ok(st & ST.NOSUID, 'nosuid')
  t.ok(st & ST.NOEXEC, 'noexec')
  t.notOk(st & ST.RDONLY, 'not read-only')
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ volume_capability: mountCap('SINGLE_NODE_WRITER', ['nodev']) })),
    status.ALREADY_EXISTS, /nodev/, 'asking for a flag the live mount lacks')
})

t.test('SINGLE_NODE_SINGLE_WRITER refuses a second target with FAILED_PRECONDITION', async (t) => {
  const e = nodeEnv(t)
  const cap = mountCap('SINGLE_NODE_SINGLE_WRITER')
  await e.call('NodeStageVolume', e.stageReq({ volume_capability: cap }))
  await e.call('NodePublishVolume', e.publishReq({ volume_capability: cap }))
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ volume_capability: cap, target_path: e.target2 })), status.FAILED_PRECONDITION, /SINGLE_NODE_SINGLE_WRITER/)
  t.notOk(existsSync(e.target2), 'second target not created')
  t.same(await e.call('NodePublishVolume', e.publishReq({ volume_capability: cap })), {}, 'the first target may be re-published')
})

t.test('SINGLE_NODE_MULTI_WRITER allows a second target', async (t) => {
  const e = nodeEnv(t)
  const cap = mountCap('SINGLE_NODE_MULTI_WRITER')
  await e.call('NodeStageVolume', e.stageReq({ volume_capability: cap }))
  await e.call('NodePublishVolume', e.publishReq({ volume_capability: cap }))
  await e.call('NodePublishVolume', e.publishReq({ volume_capability: cap, target_path: e.target2 }))
  t.equal(e.mounter.layers(e.target2), 1)
})

t.test('a volume that does not exist on the node is NOT_FOUND', async (t) => {
  const e = nodeEnv(t)
  const missing = volumeIdFor('never-created')
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_id: missing })), status.NOT_FOUND, /does not exist/)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_id: 'some-other-drivers-id' })), status.NOT_FOUND, undefined, 'foreign id')
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ volume_id: missing })), status.NOT_FOUND)
  await rejectsCsi(t, e.call('NodeGetVolumeStats', { volume_id: missing, volume_path: e.target }), status.NOT_FOUND)
  t.same(e.mounter.calls, [], 'nothing was mounted or created')
})

t.test('missing fields are INVALID_ARGUMENT naming the field', async (t) => {
  const e = nodeEnv(t)
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['NodeStageVolume', e.stageReq({ volume_id: '' }), /volume_id/],
    ['NodeStageVolume', e.stageReq({ staging_target_path: '' }), /staging_target_path/],
    ['NodeStageVolume', e.stageReq({ volume_capability: null }), /volume_capability/],
    ['NodeStageVolume', e.stageReq({ volume_capability: { mount: {}, access_type: 'mount', access_mode: null } }), /volume_capability\.access_mode/],
    ['NodePublishVolume', e.publishReq({ volume_id: undefined }), /volume_id/],
    ['NodePublishVolume', e.publishReq({ target_path: '' }), /target_path/],
    ['NodePublishVolume', e.publishReq({ volume_capability: undefined }), /volume_capability/],
    ['NodeUnpublishVolume', { volume_id: '', target_path: e.target }, /volume_id/],
    ['NodeUnpublishVolume', { volume_id: e.id, target_path: '' }, /target_path/],
    ['NodeUnstageVolume', { volume_id: '', staging_target_path: e.staging }, /volume_id/],
    ['NodeUnstageVolume', { volume_id: e.id, staging_target_path: '' }, /staging_target_path/],
    ['NodeGetVolumeStats', { volume_id: '', volume_path: e.target }, /volume_id/],
    ['NodeGetVolumeStats', { volume_id: e.id, volume_path: '' }, /volume_path/],
  ]
  for (const [rpc, req, re] of cases) {
    await rejectsCsi(t, e.call(rpc, req), status.INVALID_ARGUMENT, re, `${rpc} ${re}`)
  }
  t.same(e.mounter.calls, [])
})

t.test('hostile paths are INVALID_ARGUMENT before anything is touched', async (t) => {
  const e = nodeEnv(t)
  for (const p of ['relative/mount', `${e.dir}/kubelet/../data/x`, `${e.dir}/kubelet/pods/p1/./mount`, `${e.target}\0x`, `${e.target}/`]) {
    await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ target_path: p })), status.INVALID_ARGUMENT, /target_path/, JSON.stringify(p))
  }
  t.same(e.mounter.calls, [])
})

t.test('an unknown mount option is INVALID_ARGUMENT naming it', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  await rejectsCsi(t, e.call('NodePublishVolume', e.publishReq({ volume_capability: mountCap('SINGLE_NODE_WRITER', ['rw', 'uid=1000']) })),
    status.INVALID_ARGUMENT, /uid=1000/)
  t.notOk(existsSync(e.target))
})

t.test('unsupported capabilities are INVALID_ARGUMENT', async (t) => {
  const e = nodeEnv(t)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_capability: mountCap('MULTI_NODE_MULTI_WRITER') })), status.INVALID_ARGUMENT, /MULTI_NODE_MULTI_WRITER/)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_capability: { block: {}, access_type: 'block', access_mode: { mode: 'SINGLE_NODE_WRITER' } } })), status.INVALID_ARGUMENT, /block/)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_context: { 'tscsi.dev/kind': 'tape' } })), status.INVALID_ARGUMENT, /tscsi\.dev\/kind/)
  await rejectsCsi(t, e.call('NodeStageVolume', e.stageReq({ volume_context: { 'tscsi.dev/kind': 'image' }, volume_capability: { block: {}, access_type: 'block', access_mode: { mode: 'SINGLE_NODE_WRITER' } } })),
    status.INVALID_ARGUMENT, /directory/, 'a dir volume staged as block (a context that lies) is refused')
})

t.test('NodeGetVolumeStats: published target is normal, an unmounted dir abnormal, a relative path NOT_FOUND', async (t) => {
  const e = nodeEnv(t)
  await e.call('NodeStageVolume', e.stageReq())
  await e.call('NodePublishVolume', e.publishReq())
  const ok = (await e.call('NodeGetVolumeStats', { volume_id: e.id, volume_path: e.target })) as any
  t.equal(ok.volume_condition.abnormal, false, ok.volume_condition.message)
  const bytes = ok.usage.find((u: any) => u.unit === 'BYTES')
  t.equal(bytes.total, (e.mounter.blocks * 4096n).toString(), 'bytes total from statfs')
  t.ok(ok.usage.some((u: any) => u.unit === 'INODES'), 'inode usage reported')

  await e.call('NodeUnpublishVolume', { volume_id: e.id, target_path: e.target })
  const plainDir = `${e.dir}/kubelet/pods/p2`
  const bad = (await e.call('NodeGetVolumeStats', { volume_id: e.id, volume_path: plainDir })) as any
  t.equal(bad.volume_condition.abnormal, true, 'an unmounted directory is abnormal')
  t.match(bad.volume_condition.message, /not a mount/)

  await rejectsCsi(t, e.call('NodeGetVolumeStats', { volume_id: e.id, volume_path: 'kubelet/pods/p1/mount' }), status.NOT_FOUND, undefined, 'relative')
  await rejectsCsi(t, e.call('NodeGetVolumeStats', { volume_id: e.id, volume_path: e.target }), status.NOT_FOUND, undefined, 'removed target')
})

t.test('NodeGetInfo and NodeGetCapabilities describe this node', async (t) => {
  const e = nodeEnv(t)
  const info = (await e.call('NodeGetInfo', {})) as any
  t.equal(info.node_id, 'node-a')
  t.equal(info.max_volumes_per_node, '0')
  t.same(info.accessible_topology.segments, { [TOPOLOGY_KEY]: 'node-a' })
  const caps = (await e.call('NodeGetCapabilities', {})) as any
  t.same(caps.capabilities.map((c: any) => c.rpc.type), NODE_CAPABILITIES)
  t.ok(NODE_CAPABILITIES.includes('STAGE_UNSTAGE_VOLUME'))
})
