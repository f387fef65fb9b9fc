// node/checks.ts: the pure checks the node RPCs share (volume kind, capability, data-root
// overlap, directory type).
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { parseCapability } from '../common/capability.js'
import { silentLogger } from '../common/log.js'
import { checkCapability, checkDirectory, checkOutsideRoot, volumeKind } from '../node/checks.js'
import { nodeDeps } from '../node/deps.js'
import { Layout } from '../node/layout.js'
import type { PathInfo } from '../node/mounter.js'
import { blockCap, mountCap, codeOf } from './helpers/csi.js'
import { FakeMounter } from './helpers/fake-mounter.js'

t.test('volumeKind: dir, or absent meaning dir; anything else INVALID_ARGUMENT', async (t) => {
  t.equal(volumeKind(undefined), 'dir')
  t.equal(volumeKind({}), 'dir')
  t.equal(volumeKind({ 'tscsi.dev/kind': 'dir', other: 'x' }), 'dir')
  t.equal(volumeKind({ 'tscsi.dev/kind': 'image' }), 'image')
  t.equal(volumeKind({ 'tscsi.dev/kind': 'nfs' }), 'nfs')
  for (const kind of ['tape', '', 'DIR', '../dir']) {
    t.throws(() => volumeKind({ 'tscsi.dev/kind': kind }), { code: status.INVALID_ARGUMENT, message: /volume_context\[tscsi\.dev\/kind\]/ }, JSON.stringify(kind))
  }
})

t.test('checkCapability: single-node mount capabilities only', async (t) => {
  t.equal(codeOf(() => checkCapability('volume_capability', parseCapability('c', mountCap()))), 'ok')
  t.equal(codeOf(() => checkCapability('volume_capability', parseCapability('c', mountCap('MULTI_NODE_READER_ONLY')))), status.INVALID_ARGUMENT)
  t.equal(codeOf(() => checkCapability('volume_capability', parseCapability('c', blockCap()))), status.INVALID_ARGUMENT)
  // An nfs volume is reachable from every node: the MULTI_NODE modes too, but never block.
  for (const mode of ['MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER', 'SINGLE_NODE_WRITER'] as const) {
    t.equal(codeOf(() => checkCapability('volume_capability', parseCapability('c', mountCap(mode)), 'nfs')), 'ok', `nfs: ${mode}`)
  }
  t.equal(codeOf(() => checkCapability('volume_capability', parseCapability('c', blockCap('MULTI_NODE_MULTI_WRITER')), 'nfs')), status.INVALID_ARGUMENT)
  t.equal(codeOf(() => checkCapability('volume_capability', parseCapability('c', mountCap('BOGUS')), 'nfs')), status.INVALID_ARGUMENT)
})

t.test('checkOutsideRoot: the data root, anything under it and any ancestor of it overlap', async (t) => {
  const d = nodeDeps({ nodeId: 'n', maxVolumes: 0, layout: new Layout('/var/lib/tscsi/data'), mounter: new FakeMounter(), log: silentLogger() })
  const cases: [string, number | 'ok'][] = [
    ['/var/lib/kubelet/pods/p/mount', 'ok'],
    ['/var/lib/tscsi/data2', 'ok'], // shares a string prefix only
    ['/var/lib/tscsi/dat', 'ok'],
    ['/var/lib/tscsi/state', 'ok'],
    ['/var/lib/tscsi/data', status.INVALID_ARGUMENT],
    ['/var/lib/tscsi/data/volumes', status.INVALID_ARGUMENT],
    ['/var/lib/tscsi/data/volumes/v-0/x', status.INVALID_ARGUMENT],
    ['/var/lib/tscsi', status.INVALID_ARGUMENT], // mounting over an ancestor hides the root too
    ['/var', status.INVALID_ARGUMENT],
  ]
  for (const [p, want] of cases) t.equal(codeOf(() => checkOutsideRoot(d, 'target_path', p)), want, p)
  t.throws(() => checkOutsideRoot(d, 'target_path', '/var/lib/tscsi/data/x'), { message: /^target_path: / })
})

t.test('checkDirectory: symlinks and non-directories are FAILED_PRECONDITION', async (t) => {
  const info = (type: PathInfo['type']): PathInfo => ({ type, dev: '1:1', ino: 1n, isMountRoot: false })
  t.equal(codeOf(() => checkDirectory('target_path', '/t', info('dir'))), 'ok')
  t.throws(() => checkDirectory('target_path', '/t', info('symlink')), { code: status.FAILED_PRECONDITION, message: /symbolic link/ })
  for (const type of ['file', 'block', 'char', 'fifo', 'socket', 'unknown'] as const) {
    t.equal(codeOf(() => checkDirectory('target_path', '/t', info(type))), status.FAILED_PRECONDITION, type)
  }
})
