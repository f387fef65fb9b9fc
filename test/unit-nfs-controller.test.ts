// kind: nfs at the controller (controller/nfs.ts, controller/request.ts): the StorageClass
// parameters, the subDir pattern and what it may resolve to, overlapping directories, the node
// that acts, and the CSI volume the CO sees. The hostile cases are issue 16's: option injection
// through server or share, a newline in share, and the "../" of CVE-2026-3864/3865, whether it
// comes from the pattern or from a claim's name.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { parseCapability, SHARED_MODES, SUPPORTED_MODES, unsupportedFor } from '../common/capability.js'
import { CONTEXT } from '../common/keys.js'
import type { NodeObject, VolumeObject } from '../common/store/types.js'
import { actingNode, checkNoOverlap, resolveLocation } from '../controller/nfs.js'
import { csiVolume, parseParameters, planShape } from '../controller/request.js'
import { blockCap, mountCap } from './helpers/csi.js'

const INVALID = (message: RegExp) => ({ code: status.INVALID_ARGUMENT, message })
const nfs = { kind: 'nfs', server: 'nfs.example.com', share: '/export' }
const PVC = { 'csi.storage.k8s.io/pvc/name': 'data', 'csi.storage.k8s.io/pvc/namespace': 'shop', 'csi.storage.k8s.io/pv/name': 'pvc-123' }
const range = { required: 1n << 30n, limit: 0n }

t.test('parameters: server and share are required with kind: nfs and refused without it', async (t) => {
  t.same(parseParameters(nfs).kind, 'nfs')
  t.throws(() => parseParameters({ kind: 'nfs', share: '/export' }), INVALID(/^parameters\[server\]: kind: nfs needs/))
  t.throws(() => parseParameters({ kind: 'nfs', server: 'a' }), INVALID(/^parameters\[share\]: kind: nfs needs/))
  for (const k of ['server', 'share', 'subDir']) {
    t.throws(() => parseParameters({ kind: 'dir', [k]: k === 'share' ? '/x' : 'x' }), INVALID(new RegExp(`^parameters\\[${k}\\]: applies to kind: nfs only`)), `${k} without kind: nfs`)
  }
  for (const [k, v] of [['pool', 'fast'], ['fsType', 'xfs'], ['quota', 'required'], ['quotaInodes', '5']]) {
    t.throws(() => parseParameters({ ...nfs, [k!]: v! }), INVALID(new RegExp(`^parameters\\[${k}\\]: does not apply to kind: nfs`)), `${k} with kind: nfs`)
  }
})

t.test('hostile server and share values are refused with the field named (option injection, newlines)', async (t) => {
  const bad: [string, string, RegExp][] = [
    ['server', 'x,vers=2', /^parameters\[server\]: "x,vers=2" is not a host name/],
    ['server', 'a=b', /^parameters\[server\]/],
    ['server', 'host\nname', /^parameters\[server\]/],
    ['server', 'fe80::1%eth0', /^parameters\[server\]/],
    ['server', '', /^parameters\[server\]/],
    ['share', '/export\n/etc', /^parameters\[share\]: .*control character/],
    ['share', '/export,vers=2', /^parameters\[share\]/],
    ['share', 'export', /^parameters\[share\]: .*absolute/],
    ['share', '/export/../etc', /^parameters\[share\]: .*not a normal path/],
    ['share', '/export/', /^parameters\[share\]/],
    ['subDir', '../escape', /^parameters\[subDir\]: .*not a normal path/],
    ['subDir', '/abs', /^parameters\[subDir\]: .*relative/],
    ['subDir', 'a/./b', /^parameters\[subDir\]/],
    ['subDir', '${pv.name}/..', /^parameters\[subDir\]/],
    ['subDir', '${nope}', /^parameters\[subDir\]: unknown variable \$\{nope\}/],
    ['subDir', '${pv.name', /^parameters\[subDir\]: .*unclosed/],
    ['subDir', '', /^parameters\[subDir\]: must not be empty/],
    ['subDir', '.tscsi-snapshots/x', /^parameters\[subDir\]: .*keeps for itself/],
  ]
  for (const [k, v, re] of bad) t.throws(() => parseParameters({ ...nfs, [k]: v }), INVALID(re), `${k} ${JSON.stringify(v)}`)
  t.same(parseParameters({ ...nfs, server: '[fd00::5]' }).raw['server'], '[fd00::5]', 'a bracketed IPv6 address is a server')
  t.same(parseParameters({ ...nfs, share: '/' }).raw['share'], '/', 'the root export is a share')
})

t.test('resolveLocation: the default is the PV name; the pattern takes the claim\'s names', async (t) => {
  t.same(resolveLocation({ ...nfs, ...PVC }, 'pvc-123'), { server: 'nfs.example.com', share: '/export', subDir: 'pvc-123' })
  t.same(resolveLocation(nfs, 'sanity-vol'), { server: 'nfs.example.com', share: '/export', subDir: 'sanity-vol' }, 'without the provisioner\'s keys: the CSI name')
  t.same(resolveLocation({ ...nfs, ...PVC, subDir: '${pvc.namespace}/${pvc.name}-${pv.name}' }, 'pvc-123').subDir, 'shop/data-pvc-123')
  t.same(resolveLocation({ ...nfs, server: '[fd00::5]' }, 'v').server, 'fd00::5', 'brackets dropped')
  t.throws(() => resolveLocation({ ...nfs, subDir: '${pvc.name}' }, 'v'), INVALID(/\$\{pvc\.name\} needs the parameter csi\.storage\.k8s\.io\/pvc\/name.*--extra-create-metadata/))
})

t.test('resolveLocation: a claim\'s name cannot steer the path (CVE-2026-3864 class)', async (t) => {
  for (const name of ['..', '.', 'a/b', '../../etc', '']) {
    t.throws(() => resolveLocation({ ...nfs, 'csi.storage.k8s.io/pvc/name': name, subDir: 'x/${pvc.name}' }, 'v'), INVALID(/^parameters\[subDir\]: /), `pvc name ${JSON.stringify(name)}`)
  }
  t.throws(() => resolveLocation(nfs, '..'), INVALID(/not one plain directory name/), 'a CSI name of ".."')
  t.throws(() => resolveLocation(nfs, '.tscsi-snapshots'), INVALID(/keeps for itself/), 'a claim named like the snapshots folder')
  t.throws(() => resolveLocation(nfs, 'a\nb'), INVALID(/control character/), 'a newline in the CSI name')
  t.throws(() => resolveLocation(nfs, 'x'.repeat(1025)), INVALID(/longer than 1024 bytes/))
})

const vol = (id: string, where: { server: string; share: string; subDir: string } | undefined): VolumeObject => ({
  id,
  spec: {
    name: id, node: 'n1', kind: where ? 'nfs' : 'dir', pool: 'default', capacityBytes: '1', accessType: 'mount', parameters: {},
    createdAt: '2026-01-01T00:00:00Z', generation: 1, ...(where && { nfs: where }),
  },
} as VolumeObject)

t.test('checkNoOverlap: one volume\'s directory may not hold or lie in another\'s', async (t) => {
  const others = [vol('v-a', { server: 's', share: '/export', subDir: 'shop/data' }), vol('v-dir', undefined)]
  t.doesNotThrow(() => checkNoOverlap('v-b', { server: 's', share: '/export', subDir: 'shop/data2' }, others), 'a sibling with a common prefix')
  t.doesNotThrow(() => checkNoOverlap('v-b', { server: 'other', share: '/export', subDir: 'shop/data' }, others), 'another server')
  t.doesNotThrow(() => checkNoOverlap('v-a', { server: 's', share: '/export', subDir: 'shop/data' }, others), 'the volume itself (a repeated CreateVolume)')
  for (const [share, subDir] of [['/export', 'shop/data'], ['/export', 'shop'], ['/export', 'shop/data/x'], ['/', 'export/shop'], ['/export/shop', 'data']]) {
    t.throws(() => checkNoOverlap('v-b', { server: 's', share: share!, subDir: subDir! }, others), INVALID(/overlaps volume v-a/), `${share} ${subDir}`)
  }
})

t.test('actingNode: only nodes that serve nfs, spread by id, stable, and never the one left out', async (t) => {
  const node = (id: string, kinds: ('dir' | 'image' | 'nfs')[]) => ({ id, spec: { topology: {}, maxVolumes: 0, kinds, pools: ['default'] } }) as unknown as NodeObject
  const nodes = [node('a', ['dir', 'image', 'nfs']), node('b', ['dir', 'image', 'nfs']), node('old', ['dir', 'image'])]
  const picks = new Set<string>()
  for (let i = 0; i < 40; i++) {
    const n = actingNode(`v-${i}`, nodes)
    t.equal(actingNode(`v-${i}`, nodes), n, 'the same id picks the same node')
    picks.add(n)
  }
  t.same([...picks].sort(), ['a', 'b'], 'both nfs nodes are used; the one without nfs never')
  t.equal(actingNode('v-1', nodes, 'a'), 'b')
  t.throws(() => actingNode('v-1', [nodes[2]!]), { code: status.FAILED_PRECONDITION, message: /no registered node serves nfs/ })
})

t.test('planShape and capabilities: nfs takes every access mode but block', async (t) => {
  const params = parseParameters(nfs)
  for (const mode of SHARED_MODES) {
    t.same(planShape(params, [parseCapability('c', mountCap(mode as never))], range), { kind: 'nfs', fsType: undefined, size: 1n << 30n }, mode)
  }
  t.throws(() => planShape(params, [parseCapability('c', blockCap())], range), INVALID(/block access is not supported/))
  t.match(unsupportedFor(parseCapability('c', mountCap('MULTI_NODE_MULTI_WRITER')), 'dir'), /not supported by node-local volumes.*kind: nfs takes the MULTI_NODE modes/)
  t.equal(unsupportedFor(parseCapability('c', mountCap('MULTI_NODE_MULTI_WRITER')), 'nfs'), undefined)
  t.ok([...SUPPORTED_MODES].every((m) => SHARED_MODES.has(m)), 'the single-node modes are shared modes too')
})

t.test('csiVolume: an nfs volume carries where it lives and no topology', async (t) => {
  const v = vol('v-a', { server: 's', share: '/export', subDir: 'shop/data' })
  const out = csiVolume(v)
  t.same(out.accessible_topology, [], 'accessible from every node')
  t.same(out.volume_context, { [CONTEXT.kind]: 'nfs', [CONTEXT.server]: 's', [CONTEXT.share]: '/export', [CONTEXT.subDir]: 'shop/data' })
  t.same(csiVolume(vol('v-d', undefined)).accessible_topology, [{ segments: { 'topology.tscsi.dev/node': 'n1' } }], 'a dir volume keeps its node')
})
