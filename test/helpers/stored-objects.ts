// Stored objects with every optional field set, one or more per kind, and two walks over a CRD
// schema: which of its fields some sample leaves unset (so "every field is set" is checked, not
// promised), and which fields of a value it does not declare (what the API server would prune).
// test/unit-crds.test.ts checks the samples; test/process-kube-schema.test.ts round-trips them
// through a real API server.
import { exportIdFor, groupIdFor, memberIdFor, snapshotIdFor, volumeIdFor } from '../../common/ids.js'
import type { ExportSpec, ExportStatus, LedgerDoc, NodeSpec, NodeStatus, SnapshotSpec, SnapshotStatus, VolumeSpec, VolumeStatus } from '../../common/store/model.js'
import type { JsonSchema } from '../../common/store/schema.js'

const AT = '2026-01-02T03:04:05Z'
const LATER = '2026-01-02T04:05:06Z'

const restored: VolumeSpec = {
  name: 'pvc-restored', node: 'node-a', kind: 'image', pool: 'fast', fsType: 'xfs', projectId: 7, capacityBytes: '1073741824',
  accessType: 'mount', parameters: { kind: 'image', fsType: 'xfs', pool: 'fast' }, createdAt: AT, generation: 3, deletionRequestedAt: LATER,
  publications: { 'node-a': { readonly: true, mode: 'SINGLE_NODE_READER_ONLY' }, 'node-b': { readonly: false, mode: 'SINGLE_NODE_WRITER' } },
  contentSource: { snapshotId: snapshotIdFor('snap-1') },
}
const volumeStatus: VolumeStatus = {
  phase: 'Failed', observedGeneration: 2, code: 'RESOURCE_EXHAUSTED', message: 'the pool is full', deleteBlocked: 'still mounted at /mnt/x',
  quota: 'unenforced: no project quota on tmpfs', updatedAt: LATER,
}

const groupMembers = [volumeIdFor('pvc-restored'), volumeIdFor('pvc-cloned')].sort()
const snapshotSpec: SnapshotSpec = {
  name: 'group-1/member', sourceVolumeId: volumeIdFor('pvc-restored'), node: 'node-a', pool: 'fast', kind: 'image', fsType: 'btrfs',
  sizeBytes: '1073741824', accessType: 'block', createdAt: AT, generation: 2, deletionRequestedAt: LATER, groupId: groupIdFor('group-1'),
  groupMembers,
}

/** Objects by CRD kind; their ids are the object names. */
export const SAMPLES = {
  TscsiVolume: [
    { id: volumeIdFor('pvc-restored'), spec: restored, status: volumeStatus },
    // The other member of contentSource's choice.
    { id: volumeIdFor('pvc-cloned'), spec: { ...restored, name: 'pvc-cloned', contentSource: { volumeId: volumeIdFor('pvc-source') } }, status: volumeStatus },
    // An nfs volume: where it lives on the export.
    {
      id: volumeIdFor('pvc-shared'),
      spec: {
        name: 'pvc-shared', node: 'node-b', kind: 'nfs', pool: 'default', capacityBytes: '1073741824', accessType: 'mount',
        parameters: { kind: 'nfs', server: 'nfs.example.com', share: '/export', subDir: '${pvc.namespace}/${pvc.name}' }, createdAt: AT, generation: 1,
        nfs: { server: 'nfs.example.com', share: '/export', subDir: 'shop/data', mountOptions: ['nfsvers=4.2', 'hard'] },
      },
      status: { phase: 'Ready', observedGeneration: 1, updatedAt: LATER },
    },
  ] satisfies { id: string; spec: VolumeSpec; status: VolumeStatus }[],
  TscsiSnapshot: [{
    id: memberIdFor(groupIdFor('group-1'), volumeIdFor('pvc-restored')),
    spec: snapshotSpec,
    status: { phase: 'Failed', observedGeneration: 1, code: 'INTERNAL', message: 'copy failed', deleteBlocked: 'a restore is reading it', updatedAt: LATER },
  }, {
    // A snapshot of an nfs volume: a directory on the same export.
    id: snapshotIdFor('snap-shared'),
    spec: {
      name: 'snap-shared', sourceVolumeId: volumeIdFor('pvc-shared'), node: 'node-b', pool: 'default', kind: 'nfs', sizeBytes: '1073741824',
      accessType: 'mount', createdAt: AT, generation: 1,
      nfs: { server: 'nfs.example.com', share: '/export', subDir: `.tscsi-snapshots/${snapshotIdFor('snap-shared')}`, mountOptions: ['nfsvers=4.2'] },
    },
    status: { phase: 'Ready', observedGeneration: 1, updatedAt: LATER },
  }] satisfies { id: string; spec: SnapshotSpec; status: SnapshotStatus }[],
  TscsiNode: [{
    id: 'node-a',
    spec: { topology: { 'topology.tscsi.dev/node': 'node-a' }, maxVolumes: 100, kinds: ['dir', 'image', 'nfs'], pools: ['default', 'fast'] },
    status: { pools: { default: { totalBytes: '68719476736', availableBytes: '1048576' }, fast: { totalBytes: '2', availableBytes: '0' } }, updatedAt: LATER },
  }] satisfies { id: string; spec: NodeSpec; status: NodeStatus }[],
  TscsiExport: [{
    // An export measured for GetCapacity, and one the node could not reach.
    id: exportIdFor('nfs.example.com', '/export', ['nfsvers=4.2']),
    spec: { node: 'node-b', server: 'nfs.example.com', share: '/export', mountOptions: ['nfsvers=4.2'], generation: 4 },
    status: { observedGeneration: 4, totalBytes: '107374182400', availableBytes: '53687091200', updatedAt: LATER },
  }, {
    id: exportIdFor('10.0.0.9', '/data', []),
    spec: { node: 'node-a', server: '10.0.0.9', share: '/data', generation: 2 },
    status: { observedGeneration: 2, code: 'UNAVAILABLE', message: 'the NFS server did not serve 10.0.0.9:/data: ETIMEDOUT', updatedAt: LATER },
  }] satisfies { id: string; spec: ExportSpec; status: ExportStatus }[],
  TscsiLedger: [{
    id: 'node.node-a',
    spec: {
      claims: { [volumeIdFor('pvc-restored')]: { pool: 'fast', bytes: '1073741824', projectId: 7, at: AT } },
      reported: { [volumeIdFor('pvc-lost')]: { node: 'node-gone', at: AT } },
      reporter: { id: 'tscsi-controller-7d9f-abcde', renewedAt: LATER },
      projectIds: { default: 3, fast: 7 },
    },
  }] satisfies { id: string; spec: LedgerDoc }[],
}

/** Every field path the schema declares: `.a.b`, `.*` for any key of a map, `[]` for list items. */
export function schemaPaths(schema: JsonSchema, at = ''): string[] {
  const props = Object.entries(schema.properties ?? {}).flatMap(([k, sub]) => [`${at}.${k}`, ...schemaPaths(sub, `${at}.${k}`)])
  const values = schema.additionalProperties ? [`${at}.*`, ...schemaPaths(schema.additionalProperties, `${at}.*`)] : []
  const items = schema.items ? schemaPaths(schema.items, `${at}[]`) : []
  return [...props, ...values, ...items]
}

/** The field paths a value sets, named as schemaPaths names them. */
export function valuePaths(schema: JsonSchema, value: unknown, at = ''): string[] {
  if (Array.isArray(value)) return schema.items ? value.flatMap((v) => valuePaths(schema.items!, v, `${at}[]`)) : []
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([k, v]) => {
    const declared = schema.properties?.[k]
    const sub = declared ?? schema.additionalProperties
    const path = declared ? `${at}.${k}` : `${at}.*`
    return sub ? [path, ...valuePaths(sub, v, path)] : []
  })
}

/** The schema's fields that none of the samples sets. */
export function unset(schema: JsonSchema, samples: unknown[]): string[] {
  const set = new Set(samples.flatMap((v) => valuePaths(schema, v)))
  return schemaPaths(schema).filter((p) => !set.has(p))
}

/** The fields of value the schema does not declare: what the API server prunes. */
export function undeclared(schema: JsonSchema, value: unknown, at = ''): string[] {
  if (Array.isArray(value)) return schema.items ? value.flatMap((v, i) => undeclared(schema.items!, v, `${at}[${i}]`)) : []
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([k, v]) => {
    const sub = schema.properties?.[k] ?? schema.additionalProperties
    return sub ? undeclared(sub, v, `${at}.${k}`) : [`${at}.${k}`]
  })
}
