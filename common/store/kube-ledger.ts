// The ledger in a cluster: TscsiLedger custom resources (deploy/kubernetes/crds/), changed with
// the API server's own optimistic concurrency. A replace carries the resourceVersion it read, so
// the API server refuses it (409 Conflict) if anyone wrote the object since; a create of a name
// that exists is refused with 409 too. Either way update() reads again and re-decides. The first
// attempt starts from the watched cache (and each write's answer goes into it): when nobody else
// wrote, that saves the read, and when someone did, the precondition catches it.
//
// Only controllers use it, so it opens lazily: a node plugin never lists or watches ledgers (and
// its role grants no access to them).
import { Watch, type CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node'
import { aborted, unavailable } from '../errors.js'
import type { Logger } from '../log.js'
import { httpCode, KubeCollection, type KubeObject } from './kube.js'
import { GROUP, KINDS, pluralOf, VERSION } from './resources.js'
import type { Ledger, LedgerChange } from './types.js'

const KIND = KINDS.ledger
const PLURAL = pluralOf(KIND)
/** Conflicts tolerated before ABORTED; each one means another controller's write went through. */
const MAX_ATTEMPTS = 100

type LedgerObject<D> = KubeObject<D, never>

export class KubeLedger<D> implements Ledger<D> {
  private readonly cache: KubeCollection<D, never>
  private opening: Promise<void> | undefined
  private watching = false

  constructor(private readonly api: CustomObjectsApi, kc: KubeConfig, log: Logger) {
    this.cache = new KubeCollection<D, never>(api, new Watch(kc), { plural: PLURAL, kind: KIND }, log)
  }

  /** Answers from a watched cache: a stale answer only misranks nodes, update() decides. */
  async get(id: string): Promise<D | undefined> {
    await this.ready()
    return (await this.cache.get(id))?.spec
  }

  async update<R>(id: string, change: (cur: D | undefined) => LedgerChange<D, R>): Promise<R> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const cur = attempt === 0 && this.watching ? this.cache.cached(id) : await this.fetch(id)
      const { next, result } = change(cur?.spec)
      // Nothing to write: but a decision on a cached copy must stand on the current one.
      if (next === undefined && (attempt > 0 || !this.watching)) return result
      if (next === undefined) continue
      try {
        await this.cache.track(id, async () => {
          if (!cur) {
            const body: LedgerObject<D> = { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, metadata: { name: id }, spec: next }
            return (await this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, body })) as LedgerObject<D>
          }
          // cur.metadata.resourceVersion is the precondition.
          return (await this.api.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, name: id, body: { ...cur, spec: next } })) as LedgerObject<D>
        })
        return result
      } catch (e) {
        if (httpCode(e) !== 409) throw unavailable(`store: cannot write ${KIND} ${id}: ${(e as Error).message}`)
        // Jittered, so two controllers that keep colliding fall out of step.
        await new Promise((r) => setTimeout(r, Math.min(1 + attempt, 20) * Math.random()))
      }
    }
    throw aborted(`store: ${KIND} ${id} kept changing under ${MAX_ATTEMPTS} attempts; retry`)
  }

  close(): void {
    this.cache.close()
  }

  private ready(): Promise<void> {
    this.opening ??= this.cache.open().then(() => { this.watching = true }, (e: unknown) => {
      this.opening = undefined
      throw unavailable(`store: cannot watch ${PLURAL} (is the ${KIND} CRD installed?): ${(e as Error).message}`)
    })
    return this.opening
  }

  private async fetch(id: string): Promise<LedgerObject<D> | undefined> {
    try {
      return (await this.api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL, name: id })) as LedgerObject<D>
    } catch (e) {
      if (httpCode(e) === 404) return undefined
      throw unavailable(`store: cannot read ${KIND} ${id} (is its CRD installed?): ${(e as Error).message}`)
    }
  }
}
