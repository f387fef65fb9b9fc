// controller/request.ts: ids, sizes, parameters, topology and response shapes.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { parseCapability } from '../common/capability.js'
import { CsiError } from '../common/errors.js'
import { TOPOLOGY_KEY } from '../common/keys.js'
import { GiB } from '../common/sizes.js'
import type { VolumeSpec } from '../common/store/model.js'
import { requireId } from '../common/validate.js'
import { volumeIdFor } from '../common/ids.js'
import {
  capabilitiesMatch, checkSupported, csiVolume, DEFAULT_SIZE, fitsRange, paginate, parseParameters, parseRange, parseRequirements, planShape, planSize,
  publishedNodes, volumeCondition,
} from '../controller/request.js'
import { blockCap, mountCap, codeOf } from './helpers/csi.js'

const spec: VolumeSpec = {
  name: 'pvc-1', node: 'node-a', kind: 'dir', pool: 'default', capacityBytes: String(GiB), accessType: 'mount', parameters: {},
  createdAt: '2024-01-01T00:00:00Z', generation: 1,
}

t.test('volumeIdFor is stable across runs and versions, and is one of our ids', async (t) => {
  // Pinned: changing the derivation would make a retried CreateVolume after an upgrade create a
  // second volume for the same PVC.
  t.equal(volumeIdFor('pvc-1'), 'v-a6e1b97f35f15e735b4e2ed14ffcd254')
  t.equal(volumeIdFor('pvc-1'), volumeIdFor('pvc-1'))
  t.not(volumeIdFor('pvc-1'), volumeIdFor('pvc-2'))
  t.not(volumeIdFor(''), volumeIdFor('\0'))
  for (const name of ['pvc-1', '../../etc', 'x'.repeat(128), 'ünïcode', 'a\u0000b']) {
    const id = volumeIdFor(name)
    t.match(id, /^v-[0-9a-f]{32}$/, JSON.stringify(name))
    t.equal(requireId('volume_id', id, 'v'), id, 'accepted by requireId')
  }
})

t.test('parseRange: byte strings; required above a set limit is INVALID_ARGUMENT', async (t) => {
  t.same(parseRange(undefined), { required: 0n, limit: 0n })
  t.same(parseRange(null), { required: 0n, limit: 0n })
  t.same(parseRange({ required_bytes: '10', limit_bytes: '0' }), { required: 10n, limit: 0n })
  t.same(parseRange({ required_bytes: '10', limit_bytes: '10' }), { required: 10n, limit: 10n })
  const bad: [Record<string, string>, RegExp][] = [
    [{ required_bytes: '11', limit_bytes: '10' }, /capacity_range/],
    [{ required_bytes: '-1' }, /required_bytes/],
    [{ required_bytes: '1.5' }, /required_bytes/],
    [{ limit_bytes: '-5' }, /limit_bytes/],
    [{ limit_bytes: 'lots' }, /limit_bytes/],
  ]
  for (const [raw, re] of bad) t.throws(() => parseRange(raw), { code: status.INVALID_ARGUMENT, message: re }, JSON.stringify(raw))
})

t.test('planSize: required, else a small limit, else the default', async (t) => {
  const cases: [bigint, bigint, bigint][] = [
    [0n, 0n, DEFAULT_SIZE],
    [5n, 0n, 5n],
    [5n, 10n, 5n],
    [0n, 1024n, 1024n],
    [0n, 10n * GiB, DEFAULT_SIZE],
    [0n, DEFAULT_SIZE, DEFAULT_SIZE],
  ]
  for (const [required, limit, want] of cases) {
    const size = planSize({ required, limit })
    t.equal(size, want, `required ${required} limit ${limit}`)
    t.ok(fitsRange(size, { required, limit }), 'the plan fits its own range')
  }
})

t.test('fitsRange', async (t) => {
  t.ok(fitsRange(5n, { required: 5n, limit: 0n }))
  t.notOk(fitsRange(4n, { required: 5n, limit: 0n }))
  t.notOk(fitsRange(11n, { required: 0n, limit: 10n }))
  t.ok(fitsRange(10n, { required: 0n, limit: 10n }))
})

t.test('parseParameters: known keys and values, provisioner keys kept, the rest INVALID_ARGUMENT', async (t) => {
  t.same(parseParameters(undefined), { kind: undefined, pool: 'default', fsType: undefined, raw: {} })
  t.same(parseParameters({ kind: 'dir' }), { kind: 'dir', pool: 'default', fsType: undefined, raw: { kind: 'dir' } })
  const k8s = { 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pv/name': 'pv-1' }
  t.same(parseParameters(k8s), { kind: undefined, pool: 'default', fsType: undefined, raw: k8s })
  const bad: [unknown, RegExp][] = [
    [{ kindd: 'dir' }, /parameters\[kindd\].*unknown/],
    [{ kind: 'tape' }, /parameters\[kind\]/],
    [{ kind: 'image', fsType: 'ntfs' }, /parameters\[fsType\]/],
    [{ kind: '' }, /parameters\[kind\]/],
    [{ 'csi.storage.k8s.io': 'x' }, /unknown/],
    [{ kind: 'dir', quota: 'sometimes' }, /parameters\[quota\]/],
    [{ kind: 1 }, /parameters\[kind\]/],
    [{ ['k'.repeat(129)]: 'v' }, /parameters/],
  ]
  for (const [raw, re] of bad) t.throws(() => parseParameters(raw), { code: status.INVALID_ARGUMENT, message: re }, JSON.stringify(raw).slice(0, 40))
})

t.test('parseParameters: Object.prototype names are unknown parameters too', async (t) => {
  for (const key of ['constructor', 'toString', '__proto__']) {
    let got: unknown = 'accepted'
    try {
      parseParameters({ [key]: 'dir' })
    } catch (e) {
      got = e instanceof CsiError ? e.code : (e as Error).name
    }
    t.equal(got, status.INVALID_ARGUMENT, `${key}: INVALID_ARGUMENT (got ${String(got)})`)
  }
})

t.test('planShape: an image takes only the filesystems it knows, not Object.prototype names', async (t) => {
  const params = parseParameters({ kind: 'image' })
  const range = parseRange({ required_bytes: String(GiB) })
  t.match(planShape(params, [parseCapability('c', mountCap('SINGLE_NODE_WRITER', [], 'xfs'))], range), { kind: 'image', fsType: 'xfs', size: GiB })
  for (const fs of ['zfs', 'constructor', 'toString', '__proto__']) {
    const cap = parseCapability('c', mountCap('SINGLE_NODE_WRITER', [], fs))
    t.throws(() => planShape(params, [cap], range), { code: status.INVALID_ARGUMENT, message: /is not one of ext4, xfs, btrfs/ }, fs)
  }
})

t.test('checkSupported and capabilitiesMatch', async (t) => {
  const mount = parseCapability('c', mountCap())
  const block = parseCapability('c', blockCap())
  const multi = parseCapability('c', mountCap('MULTI_NODE_MULTI_WRITER'))
  t.equal(codeOf(() => checkSupported('volume_capabilities', [mount])), 'ok')
  t.throws(() => checkSupported('volume_capabilities', [mount, multi]), { code: status.INVALID_ARGUMENT, message: /volume_capabilities\[1\]/ })
  t.equal(codeOf(() => checkSupported('volume_capabilities', [block], 'dir')), status.INVALID_ARGUMENT, 'block needs an image')
  t.equal(codeOf(() => checkSupported('volume_capabilities', [block], 'image')), 'ok')
  t.equal(capabilitiesMatch(spec, [mount]), undefined)
  t.match(capabilitiesMatch(spec, [multi]), /MULTI_NODE_MULTI_WRITER/)
  t.match(capabilitiesMatch({ ...spec, accessType: 'block' }, [mount]), /access type/)
})

t.test('parseRequirements checks each segment map and names its place', async (t) => {
  t.same(parseRequirements(undefined), { requisite: [], preferred: [] })
  t.same(parseRequirements({ requisite: [{ segments: { [TOPOLOGY_KEY]: 'a' } }], preferred: [] }),
    { requisite: [{ segments: { [TOPOLOGY_KEY]: 'a' } }], preferred: [] })
  t.throws(() => parseRequirements({ preferred: [{ segments: {} }, { segments: { k: 'v'.repeat(129) } }] }),
    { code: status.INVALID_ARGUMENT, message: /accessibility_requirements\.preferred\[1\]\.segments/ })
})

t.test('csiVolume: id, size as a string, kind and node in the context, node topology', async (t) => {
  const v = csiVolume({ id: volumeIdFor('pvc-1'), spec })
  t.same(v, {
    volume_id: volumeIdFor('pvc-1'),
    capacity_bytes: String(GiB),
    volume_context: { 'tscsi.dev/kind': 'dir', 'tscsi.dev/node': 'node-a', 'tscsi.dev/pool': 'default' },
    content_source: null,
    accessible_topology: [{ segments: { [TOPOLOGY_KEY]: 'node-a' } }],
  })
})

t.test('volumeCondition and publishedNodes', async (t) => {
  const ready = { phase: 'Ready' as const, observedGeneration: 1, updatedAt: '' }
  t.equal(volumeCondition(ready, true).abnormal, false)
  t.equal(volumeCondition(ready, false).abnormal, true, 'node gone')
  t.equal(volumeCondition(undefined, true).abnormal, true, 'not realised yet')
  t.same(volumeCondition({ ...ready, phase: 'Failed', message: 'disk full' }, true), { abnormal: true, message: 'disk full' })
  t.same(publishedNodes({ ...spec, publications: { b: { readonly: false, mode: 'm' }, a: { readonly: true, mode: 'm' } } }), ['a', 'b'])
  t.same(publishedNodes(spec), [])
})

t.test('paginate: a page starts after its token, also when the token\'s object is gone', async (t) => {
  const all = ['a', 'b', 'c', 'd', 'e'].map((n) => ({ id: volumeIdFor(n) })).sort((x, y) => (x.id < y.id ? -1 : 1))
  const ids = all.map((o) => o.id)
  const walk = (max: number): string[] => {
    const seen: string[] = []
    let token = ''
    do {
      const { page, next } = paginate(all, { max_entries: max, starting_token: token }, 'v')
      seen.push(...page.map((o) => o.id))
      token = next
    } while (token)
    return seen
  }
  for (const max of [0, 1, 2, 5, 9]) t.same(walk(max), ids, `pages of ${max} walk every id once, in order`)
  const without = all.filter((o) => o.id !== ids[2])
  t.same(paginate(without, { max_entries: 2, starting_token: ids[2] }, 'v').page.map((o) => o.id), ids.slice(3, 5), 'after a deleted token: the next ids')
  t.same(paginate(all, { max_entries: 2, starting_token: ids[4] }, 'v'), { page: [], next: '' }, 'after the last id: nothing')
})
