// common/capability.ts: structural parsing of VolumeCapability as proto-loader delivers it, and
// which capabilities node-local volumes can serve.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { isReadOnlyMode, parseCapabilities, parseCapability, SHARED_MODES, SUPPORTED_MODES, unsupportedReason } from '../common/capability.js'
import { blockCap, mountCap, codeOf } from './helpers/csi.js'

t.test('parseCapability reads mount and block capabilities', async (t) => {
  t.same(parseCapability('c', mountCap('SINGLE_NODE_WRITER', ['ro', 'nosuid'], 'ext4')),
    { accessType: 'mount', mode: 'SINGLE_NODE_WRITER', fsType: 'ext4', mountFlags: ['ro', 'nosuid'], mountGroup: '' })
  t.same(parseCapability('c', blockCap('SINGLE_NODE_READER_ONLY')),
    { accessType: 'block', mode: 'SINGLE_NODE_READER_ONLY', fsType: '', mountFlags: [], mountGroup: '' })
  t.equal(parseCapability('c', { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }).accessType, 'block', 'without the oneof discriminator')
  t.equal(parseCapability('c', { mount: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' } }).accessType, 'mount')
  t.same(parseCapability('c', { mount: { fs_type: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }).mountFlags, [], 'absent flags are none')
})

t.test('parseCapability rejects missing and malformed parts, naming the field', async (t) => {
  const cases: [unknown, RegExp][] = [
    [undefined, /^cap: /],
    [null, /^cap: /],
    [{ mount: {}, access_type: 'mount' }, /^cap\.access_mode/],
    [{ mount: {}, access_type: 'mount', access_mode: {} }, /^cap\.access_mode/],
    [{ mount: {}, access_type: 'mount', access_mode: { mode: 'UNKNOWN' } }, /^cap\.access_mode/],
    [{ access_mode: { mode: 'SINGLE_NODE_WRITER' } }, /^cap\.access_type/],
    [mountCap('SINGLE_NODE_WRITER', ['ok', 'bad\u0000']), /^cap\.mount\.mount_flags\[1\]/],
    [mountCap('SINGLE_NODE_WRITER', [], 'x'.repeat(129)), /^cap\.mount\.fs_type/],
    [{ ...mountCap(), mount: { volume_mount_group: '1\n2' } }, /^cap\.mount\.volume_mount_group/],
  ]
  for (const [raw, re] of cases) {
    t.throws(() => parseCapability('cap', raw as never), { code: status.INVALID_ARGUMENT, message: re }, JSON.stringify(raw))
  }
})

t.test('parseCapabilities wants at least one and indexes the field', async (t) => {
  t.equal(codeOf(() => parseCapabilities('volume_capabilities', [])), status.INVALID_ARGUMENT)
  t.equal(codeOf(() => parseCapabilities('volume_capabilities', undefined)), status.INVALID_ARGUMENT)
  t.throws(() => parseCapabilities('volume_capabilities', [mountCap(), {} as never]), { message: /volume_capabilities\[1\]/ })
  t.equal(parseCapabilities('volume_capabilities', [mountCap(), blockCap()]).length, 2)
})

t.test('unsupportedReason: single-node modes only; block only when the kind supports it', async (t) => {
  for (const mode of SUPPORTED_MODES) t.equal(unsupportedReason(parseCapability('c', mountCap(mode)), false), undefined, mode)
  for (const mode of ['MULTI_NODE_READER_ONLY', 'MULTI_NODE_SINGLE_WRITER', 'MULTI_NODE_MULTI_WRITER', 'BOGUS']) {
    const why = unsupportedReason(parseCapability('c', mountCap(mode)), false) ?? ''
    t.match(why, mode, mode)
    // The refusal tells the user what to ask for instead.
    for (const ok of SUPPORTED_MODES) t.match(why, ok, `${mode} refusal names ${ok}`)
  }
  t.match(unsupportedReason(parseCapability('c', blockCap()), false), /block/)
  t.equal(unsupportedReason(parseCapability('c', blockCap()), true), undefined)
})

t.test('unsupportedReason for a shared (nfs) volume: every mode but an unknown one', async (t) => {
  for (const mode of SHARED_MODES) t.equal(unsupportedReason(parseCapability('c', mountCap(mode)), false, true), undefined, mode)
  t.match(unsupportedReason(parseCapability('c', mountCap('BOGUS')), false, true), /BOGUS is not supported; nfs volumes accept .*MULTI_NODE_MULTI_WRITER/)
  t.match(unsupportedReason(parseCapability('c', blockCap('MULTI_NODE_MULTI_WRITER')), false, true), /block/)
})

t.test('isReadOnlyMode', async (t) => {
  t.ok(isReadOnlyMode('SINGLE_NODE_READER_ONLY'))
  t.ok(isReadOnlyMode('MULTI_NODE_READER_ONLY'))
  t.notOk(isReadOnlyMode('SINGLE_NODE_WRITER'))
  t.notOk(isReadOnlyMode('SINGLE_NODE_MULTI_WRITER'))
})
