// The Kubernetes names of the store's resources, in one place: the CRDs are generated with them
// (crds.ts) and the store addresses its objects by them (kube.ts, kube-ledger.ts), so a renamed
// kind cannot leave the store asking for a resource no CRD serves.
export const GROUP = 'tscsi.dev'
export const VERSION = 'v1alpha1'

export const KINDS = { volume: 'TscsiVolume', node: 'TscsiNode', snapshot: 'TscsiSnapshot', ledger: 'TscsiLedger', export: 'TscsiExport' } as const
export type Kind = (typeof KINDS)[keyof typeof KINDS]

/** A kind's plural resource name, as its CRD declares it: the lower-case kind plus "s". */
export function pluralOf(kind: string): string {
  return `${kind.toLowerCase()}s`
}
