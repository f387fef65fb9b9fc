// The CustomResourceDefinitions of the Kubernetes store (kube.ts), built from the model's schemas
// (model.ts): `npm run gen:crds` writes them to deploy/helm/tscsi/crds (tools/gen-crds.ts), and
// test/unit-crds.test.ts fails while the committed files differ from what this makes. Printer
// columns are checked by tsc against the model, so a column cannot name a field that is not there.
import { toYaml, type YamlValue } from '../yaml.js'
import { GROUP, KINDS, pluralOf, VERSION } from './resources.js'
import { exportSpec, exportStatus, ledgerDoc, nodeSpec, nodeStatus, snapshotSpec, snapshotStatus, volumeSpec, volumeStatus } from './model.js'
import * as s from './schema.js'

/** The JSONPaths into T that `kubectl get` can show: `.field.inner`, any key of a map. */
type JsonPath<T> = T extends readonly unknown[] ? never
  : T extends object ? { [K in keyof T & string]-?: `.${K}` | `.${K}${JsonPath<NonNullable<T[K]>>}` }[keyof T & string]
  : never

interface Resource<Spec, Status> {
  metadata: { creationTimestamp: string }
  spec: Spec
  status: Status
}

interface Column<Spec, Status> {
  name: string
  type: 'string' | 'date' | 'integer'
  jsonPath: JsonPath<Resource<Spec, Status>>
  description?: string
}

interface Definition<Spec, Status> {
  /** The kind; its lower case is the singular name, and that plus "s" the plural (resources.ts). */
  kind: string
  shortName: string
  /** What the resource is for and who writes which part: its schema's description and its file's header. */
  about: string
  spec: s.Node<Spec>
  /** Written through the status subresource, so a spec write never overwrites it. */
  status?: s.Node<Status>
  columns: Column<Spec, Status>[]
}

export interface Crd {
  kind: string
  plural: string
  /** The file name under crds/, as controller-gen would name it. */
  file: string
  /** The whole resource's schema: spec, and status where there is one. */
  schema: s.JsonSchema
  /** The CustomResourceDefinition itself. */
  object: { [key: string]: YamlValue }
}

/** One CRD from its definition; exported for the type tests of test/unit-crds.test.ts. */
export function defineCrd<Spec, Status = never>(d: Definition<Spec, Status>): Crd {
  const singular = d.kind.toLowerCase()
  const plural = pluralOf(d.kind)
  const root = d.status ? s.object({ spec: d.spec, status: s.optional(d.status) }, { description: d.about }) : s.object({ spec: d.spec }, { description: d.about })
  const version = {
    name: VERSION,
    served: true,
    storage: true,
    ...(d.status && { subresources: { status: {} } }),
    additionalPrinterColumns: d.columns.map((c) => ({ ...c })),
    schema: { openAPIV3Schema: root.schema as unknown as YamlValue },
  }
  return {
    kind: d.kind,
    plural,
    file: `${GROUP}_${plural}.yaml`,
    schema: root.schema,
    object: {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${plural}.${GROUP}` },
      spec: {
        group: GROUP,
        scope: 'Cluster',
        names: { kind: d.kind, listKind: `${d.kind}List`, plural, singular, shortNames: [d.shortName] },
        versions: [version],
      },
    },
  }
}

const age = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' } as const

export const CRDS: readonly Crd[] = [
  defineCrd({
    kind: KINDS.export,
    shortName: 'tsx',
    about: 'An NFS export a StorageClass names, measured for GetCapacity. The controller writes spec (a new generation asks for a ' +
      'fresh answer); the node plugin on spec.node mounts the share, takes its statfs and writes status. It holds no data.',
    spec: exportSpec,
    status: exportStatus,
    columns: [
      { name: 'Server', type: 'string', jsonPath: '.spec.server' },
      { name: 'Share', type: 'string', jsonPath: '.spec.share' },
      { name: 'Node', type: 'string', jsonPath: '.spec.node' },
      { name: 'Available', type: 'string', jsonPath: '.status.availableBytes' },
      { name: 'Updated', type: 'date', jsonPath: '.status.updatedAt' },
    ],
  }),
  defineCrd({
    kind: KINDS.ledger,
    shortName: 'tsl',
    about: 'What controllers decide on together, changed only by compare-and-swap (a replace carrying the resourceVersion it read). ' +
      "`node.<node id>`: every volume's claim on that node's pools (bytes and project id), so two controller replicas never promise " +
      'the same room or project id, and the highest project id handed out per pool. `lost-volumes`: the volumes already reported as ' +
      'lost, and which replica reports them. Written by the controller only; node plugins never read it.',
    spec: ledgerDoc,
    columns: [{ name: 'Reporter', type: 'string', jsonPath: '.spec.reporter.id' }, age],
  }),
  defineCrd({
    kind: KINDS.node,
    shortName: 'tsn',
    about: "A node plugin's registration and capacity report. The node plugin writes both parts; the controller reads them to place " +
      'volumes and answer GetCapacity.',
    spec: nodeSpec,
    status: nodeStatus,
    columns: [
      { name: 'Pools', type: 'string', jsonPath: '.spec.pools' },
      { name: 'Default-Available', type: 'string', jsonPath: '.status.pools.default.availableBytes' },
      { name: 'Updated', type: 'date', jsonPath: '.status.updatedAt' },
    ],
  }),
  defineCrd({
    kind: KINDS.snapshot,
    shortName: 'tss',
    about: 'A snapshot of a volume, kept on the node that holds the volume. The controller writes spec; that node copies the data ' +
      '(reflink where the filesystem can) and writes status. The finalizer keeps the object until the node has removed the copy.',
    spec: snapshotSpec,
    status: snapshotStatus,
    columns: [
      { name: 'Name', type: 'string', jsonPath: '.spec.name' },
      { name: 'Source', type: 'string', jsonPath: '.spec.sourceVolumeId' },
      { name: 'Node', type: 'string', jsonPath: '.spec.node' },
      { name: 'Size', type: 'string', jsonPath: '.spec.sizeBytes' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      age,
    ],
  }),
  defineCrd({
    kind: KINDS.volume,
    shortName: 'tsv',
    about: 'A volume tscsi manages. The controller writes spec; the node plugin on spec.node realises it and writes status. The ' +
      'finalizer keeps the object until that node has removed the data, so deleting the object (even with kubectl) never strands ' +
      'data on a disk.',
    spec: volumeSpec,
    status: volumeStatus,
    columns: [
      { name: 'Name', type: 'string', jsonPath: '.spec.name', description: 'CSI volume name (the PV name)' },
      { name: 'Node', type: 'string', jsonPath: '.spec.node' },
      { name: 'Kind', type: 'string', jsonPath: '.spec.kind' },
      { name: 'Pool', type: 'string', jsonPath: '.spec.pool' },
      { name: 'Capacity', type: 'string', jsonPath: '.spec.capacityBytes' },
      { name: 'Phase', type: 'string', jsonPath: '.status.phase' },
      age,
    ],
  }),
]

// Long prose goes into the header as comment lines of at most this many characters.
const COMMENT_WIDTH = 100

function commentLines(text: string): string[] {
  const out: string[] = []
  let line = '#'
  for (const word of text.split(' ')) {
    if (line.length + 1 + word.length > COMMENT_WIDTH && line !== '#') {
      out.push(line)
      line = '#'
    }
    line += ` ${word}`
  }
  return [...out, line]
}

/** Each CRD's file under deploy/helm/tscsi/crds, by name: what `npm run gen:crds` writes. */
export function crdFiles(): Map<string, string> {
  const header = commentLines('Generated by `npm run gen:crds` from common/store/model.ts (the fields) and common/store/crds.ts (the rest): ' +
    'edit those, then run it. test/unit-crds.test.ts fails while this file and a fresh generation differ.')
  return new Map(CRDS.map((c) => [c.file, [...header, '#', ...commentLines(c.schema.description!)].join('\n') + '\n' + toYaml(c.object)]))
}
