// The CRDs and the TypeScript model have one source (common/store/model.ts, through schema.ts):
// the committed CRD files are what `npm run gen:crds` makes of it now, byte for byte; they read
// back as the objects meant; the samples of test/helpers/stored-objects.ts set every field a CRD
// declares and none it does not (test/process-kube-schema.test.ts sends them through a real API
// server); and, checked by tsc rather than by tap, code that writes a field the schema does not
// declare, or omits one it requires, does not compile.
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { CRDS, crdFiles, defineCrd } from '../common/store/crds.js'
import { GROUP } from '../common/store/resources.js'
import { volumeSpec, type LedgerDoc, type VolumeSpec, type VolumeStatus } from '../common/store/model.js'
import * as s from '../common/store/schema.js'
import type { Collection } from '../common/store/types.js'
import { toYaml } from '../common/yaml.js'
import { ROOT } from './helpers/driver.js'
import { SAMPLES, undeclared, unset } from './helpers/stored-objects.js'

const CHART_CRDS = path.join(ROOT, 'deploy/helm/tscsi/crds')

// A real YAML parser reading the writer's output: js-yaml, the one client-node uses, declared as
// our dev dependency (its types are not, hence require).
const yaml = createRequire(import.meta.url)('js-yaml') as { load(text: string): unknown }
const plain = (v: unknown): unknown => JSON.parse(JSON.stringify(v))

t.test('deploy/helm/tscsi/crds is what `npm run gen:crds` makes of the model now', async (t) => {
  const fix = 'edit common/store/model.ts or crds.ts, then run `npm run gen:crds`'
  const want = crdFiles()
  const have = readdirSync(CHART_CRDS).filter((f) => f.startsWith(`${GROUP}_`)).sort()
  t.same(have, [...want.keys()].sort(), `the same files (${fix})`)
  for (const [f, text] of want) {
    if (readFileSync(path.join(CHART_CRDS, f), 'utf8') !== text) t.fail(`deploy/helm/tscsi/crds/${f} differs from a fresh generation (${fix})`)
  }
})

t.test('each generated file reads back as its CRD', async (t) => {
  const files = crdFiles()
  for (const c of CRDS) t.strictSame(yaml.load(files.get(c.file)!), plain(c.object), c.file)
})

t.test('the samples set every field their CRD declares, and nothing it does not', async (t) => {
  for (const c of CRDS) {
    const samples = SAMPLES[c.kind as keyof typeof SAMPLES]
    t.ok(samples, `${c.kind} has samples`)
    const objects = samples.map(({ id: _, ...o }) => o)
    t.strictSame(unset(c.schema, objects), [], `${c.kind}: no field left unset (add it to test/helpers/stored-objects.ts)`)
    t.strictSame(objects.flatMap((o) => undeclared(c.schema, o)), [], `${c.kind}: no field the CRD would prune`)
  }
  t.strictSame(undeclared(volumeSpec.schema, { ...SAMPLES.TscsiVolume[0]!.spec, encrypted: true, publications: { n: { readonly: true, mode: 'x', why: 1 } } }),
    ['.publications.n.why', '.encrypted'], 'undeclared() names what would be pruned')
})

t.test('schema builders: required unless optional(), one key of a choice, keys in a fixed order', async (t) => {
  const o = s.object({ b: s.optional(s.integer({ minimum: 1 })), a: s.string({ maxLength: 3, description: 'd', pattern: /^x$/ }) })
  t.strictSame(plain(o.schema), {
    type: 'object',
    properties: { b: { type: 'integer', minimum: 1 }, a: { type: 'string', description: 'd', pattern: '^x$', maxLength: 3 } },
    required: ['a'],
  })
  t.strictSame(Object.keys(o.schema.properties!['a']!), ['type', 'description', 'pattern', 'maxLength'])
  t.notOk('required' in s.object({ a: s.optional(s.boolean()) }).schema, 'no empty required list')
  t.strictSame(plain(s.oneKeyOf({ x: s.string(), y: s.integer() }).schema),
    { type: 'object', minProperties: 1, maxProperties: 1, properties: { x: { type: 'string' }, y: { type: 'integer' } } })
  t.strictSame(plain(s.mapOf(s.arrayOf(s.enumOf(['p', 'q']))).schema),
    { type: 'object', additionalProperties: { type: 'array', items: { type: 'string', enum: ['p', 'q'] } } })
})

t.test('toYaml quotes every string a YAML parser would read as something else', async (t) => {
  const tricky = ['', 'yes', 'No', 'on', 'OFF', 'y', 'null', '~', 'true', '1', '0x1f', '1e3', '.5', '.inf', '-1', '+1', '12:30',
    'a: b', 'a #b', 'ends:', ' lead', 'trail ', "it's", '"q"', '- x', '? x', '*ref', '&anchor', '!tag', '%dir', '@at', '`tick`', '|', '>',
    '[a]', '{a}', 'a, b', 'a,b', 'line\nbreak', 'tab\there', 'ünïcode', '#comment', ',lead', 'with [brackets]', '.spec.name']
  const doc = { block: Object.fromEntries(tricky.map((v, i) => [`k${i}`, v])), flow: [{ list: tricky }], keys: Object.fromEntries(tricky.filter(Boolean).map((v) => [v, v])) }
  t.strictSame(yaml.load(toYaml(doc)), doc)
  t.strictSame(yaml.load(toYaml({ n: 0, m: -7, yes: true, no: false, e: {}, l: [], nested: [{ a: [{ b: 1 }] }] })),
    { n: 0, m: -7, yes: true, no: false, e: {}, l: [], nested: [{ a: [{ b: 1 }] }] })
  t.throws(() => toYaml({ x: 1.5 }), /not an integer/)
  // js-yaml reads YAML 1.2, where yes/on are strings anyway; go-yaml (kubectl, helm) reads 1.1.
  for (const w of ['yes', 'No', 'on', 'OFF', 'y']) t.match(toYaml({ w }), `w: '${w}'`, `${w} is quoted for YAML 1.1 readers`)
  t.equal(toYaml({ p: { type: 'string', enum: ['', 'x'] } }), "p: { type: string, enum: ['', x] }\n", 'short all-scalar maps go on one line')
})

// What tsc must refuse. tap runs this file without type-checking it; tsconfig.test.json checks
// it, and an @ts-expect-error that no longer meets an error is itself an error. Never called:
// only its types matter.
export function mistakesThatDoNotCompile(volumes: Collection<VolumeSpec, VolumeStatus>, spec: VolumeSpec): void {
  // @ts-expect-error a field the schema does not declare is not part of the model (the API server would prune it)
  const extra: VolumeSpec = { ...spec, encrypted: true }
  // @ts-expect-error nor can a write to the store add one
  void volumes.putSpec('v', { ...spec, generation: spec.generation + 1, encrypted: true })
  // @ts-expect-error a status without a field the schema requires
  void volumes.putStatus('v', { phase: 'Ready', updatedAt: '' })
  // @ts-expect-error a value outside the schema's enum
  const nfs: VolumeSpec = { ...spec, kind: 'tape' }
  // @ts-expect-error a map of the wrong value type
  const ids: LedgerDoc = { projectIds: { fast: '7' } }
  // @ts-expect-error list items cannot be optional
  s.arrayOf(s.optional(s.string()))
  const o = s.object({ need: s.string(), may: s.optional(s.integer()) })
  // @ts-expect-error an object's fields are required unless wrapped in optional()
  const missing: s.Infer<typeof o> = { may: 1 }
  const fine: s.Infer<typeof o> = { need: 'x' }
  defineCrd({
    kind: 'Probe', shortName: 'p', about: 'a', spec: o, status: o,
    // @ts-expect-error a printer column must name a field the model has
    columns: [{ name: 'Gone', type: 'string', jsonPath: '.spec.needs' }],
  })
  defineCrd({ kind: 'Probe', shortName: 'p', about: 'a', spec: o, columns: [{ name: 'Any', type: 'integer', jsonPath: '.spec.may' }] })
  void [extra, nfs, ids, missing, fine]
}
