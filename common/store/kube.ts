// The store in a cluster: custom resources in API group tscsi.dev (deploy/kubernetes/crds/),
// with the same contract as the local folder (see types.ts). Specs are written to the main
// resource and statuses to the status subresource, so the controller's and the node's writes
// never overwrite each other; a stale resourceVersion (409) is retried against a fresh read,
// which cannot lose an update because each part has one writer.
//
// Each collection lists once, then watches from that list's resourceVersion, keeping a cache
// (kube-cache.ts) that get() and list() answer from and that our own requests' answers go into.
// A watch that ends or fails is re-established with a fresh list, after a backoff (1 s doubling
// to 30 s) unless it had delivered something. A node plugin passes a label selector so it only
// sees its own node's volumes. The fresh list each time also bounds how long an answer can stay
// laid over the watch's object.
//
// client-node's informer (ListWatch in 1.4) would replace only that list/watch/backoff code, and
// it does not serve: on any error but 410 (a failed list, a refused or broken watch) it reports
// 'error' and stops for good, and it re-opens a watch the server ended at once however often that
// happens, so a server that ends every watch straight away (or with an ERROR event) is hammered.
import type { CustomObjectsApi, Watch } from '@kubernetes/client-node'
import { failedPrecondition, unavailable } from '../errors.js'
import type { Logger } from '../log.js'
import { KubeCache } from './kube-cache.js'
import { GROUP, VERSION } from './resources.js'
import type { Collection, StoredObject } from './types.js'

export const NODE_LABEL = 'tscsi.dev/node'
/** Held by every volume object until its node has removed the data. */
export const DATA_FINALIZER = 'tscsi.dev/data'

export interface KubeObject<S, T> {
  apiVersion: string
  kind: string
  metadata: {
    name: string
    resourceVersion?: string
    labels?: Record<string, string>
    finalizers?: string[]
    deletionTimestamp?: string
  }
  spec: S
  status?: T
}

export interface KubeCollectionOptions<S, T> {
  plural: string
  kind: string
  /** Restricts what this process sees (node plugins: their own node's objects). */
  labelSelector?: string
  labelsFor?: (spec: S) => Record<string, string>
  finalizer?: string
  /** True when a status says the finalizer's work is done. */
  releases?: (status: T) => boolean
  /** How a deletionTimestamp (a delete from outside the driver) shows in the spec. */
  onDeleting?: (spec: S, at: string) => S
  /** Owners set at creation, so Kubernetes' garbage collector removes the object with them. */
  ownerReferences?: (id: string) => object[] | undefined
}

export function httpCode(e: unknown): number | undefined {
  const c = (e as { code?: unknown })?.code
  return typeof c === 'number' ? c : undefined
}

/** The one call of client-node's Watch used here; tests pass a fake that delivers events by hand. */
export type Watcher = Pick<Watch, 'watch'>

export class KubeCollection<S, T> implements Collection<S, T> {
  private readonly cache = new KubeCache<KubeObject<S, T>>((id) => this.tell(id), (id) => this.reread(id))
  private readonly listeners = new Set<(id: string) => void>()
  // Each cached object's view, for as long as the cache holds that object: an unchanged object
  // keeps its view across listings, so callers can cache what they derive from it (ListVolumes
  // keeps its encoded entries by view, as on the local store).
  private readonly views = new WeakMap<KubeObject<S, T>, StoredObject<S, T>>()
  private abort: AbortController | undefined
  private closed = false
  private backoffMs = 1000
  private retryTimer: NodeJS.Timeout | undefined

  constructor(
    private readonly api: CustomObjectsApi,
    private readonly watcher: Watcher,
    private readonly o: KubeCollectionOptions<S, T>,
    private readonly log: Logger,
  ) {}

  async open(): Promise<void> {
    const rv = await this.relist()
    this.startWatch(rv)
  }

  close(): void {
    this.closed = true
    this.abort?.abort()
    if (this.retryTimer) clearTimeout(this.retryTimer)
  }

  async get(id: string): Promise<StoredObject<S, T> | undefined> {
    return this.view(this.cache.get(id))
  }

  async refresh(id: string): Promise<StoredObject<S, T> | undefined> {
    return this.view(await this.cache.run(id, () => this.fetch(id)))
  }

  /** The cached object as the API server sent it, resourceVersion included. */
  cached(id: string): KubeObject<S, T> | undefined {
    return this.cache.get(id)
  }

  /**
   * Sends one write (or read) of object `id` and takes its answer into the cache, ahead of its
   * watch event; one at a time per object, so answers come back in the order they were made.
   */
  track<R extends KubeObject<S, T> | undefined>(id: string, call: () => Promise<R>): Promise<R> {
    return this.cache.run(id, call)
  }

  async list(): Promise<StoredObject<S, T>[]> {
    return this.cache.ids().sort().map((id) => this.listView(this.cache.get(id))).filter((v): v is StoredObject<S, T> => v !== undefined)
  }

  /** As view(), but the same view for the same cached object (list() callers must not mutate it). */
  private listView(obj: KubeObject<S, T> | undefined): StoredObject<S, T> | undefined {
    if (!obj) return undefined
    let v = this.views.get(obj)
    if (!v) {
      v = this.view(obj)
      if (v) this.views.set(obj, v)
    }
    return v
  }

  async putSpec(id: string, spec: S): Promise<void> {
    await this.retryConflicts(id, async (cur) => {
      if (!cur) return (await this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: this.o.plural, body: this.newObject(id, spec) })) as KubeObject<S, T>
      const body = { ...cur, metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, ...this.o.labelsFor?.(spec) } }, spec }
      return (await this.api.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: this.o.plural, name: id, body })) as KubeObject<S, T>
    })
  }

  async create(id: string, spec: S): Promise<boolean> {
    try {
      await this.cache.run(id, async () => (await this.api.createClusterCustomObject({ group: GROUP, version: VERSION, plural: this.o.plural, body: this.newObject(id, spec) })) as KubeObject<S, T>)
      return true
    } catch (e) {
      if (httpCode(e) !== 409) throw unavailable(`store: cannot create ${this.o.kind} ${id}: ${(e as Error).message}`)
      await this.cache.run(id, () => this.fetch(id))
      return false
    }
  }

  async putStatus(id: string, status: T): Promise<void> {
    let written: KubeObject<S, T> | undefined
    await this.retryConflicts(id, async (cur) => {
      if (!cur) throw failedPrecondition(`store: object ${id} no longer exists; status not written`)
      written = (await this.api.replaceClusterCustomObjectStatus({ group: GROUP, version: VERSION, plural: this.o.plural, name: id, body: { ...cur, status } })) as KubeObject<S, T>
      return written
    })
    if (this.o.finalizer && this.o.releases?.(status)) await this.release(id)
  }

  async remove(id: string, opts: { force?: boolean } = {}): Promise<void> {
    if (opts.force && this.o.finalizer) await this.release(id)
    try {
      await this.api.deleteClusterCustomObject({ group: GROUP, version: VERSION, plural: this.o.plural, name: id })
    } catch (e) {
      if (httpCode(e) !== 404) throw unavailable(`store: cannot delete ${this.o.kind} ${id}: ${(e as Error).message}`)
    }
    // The node releases the finalizer right after it reports the data gone, possibly a moment
    // after we asked for the delete: wait (bounded) so that a finished DeleteVolume means the
    // object is gone too.
    let left = await this.cache.run(id, () => this.fetch(id))
    for (let i = 0; left && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50))
      left = await this.cache.run(id, () => this.fetch(id))
    }
  }

  watch(listener: (id: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  private newObject(id: string, spec: S): KubeObject<S, T> {
    return {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: this.o.kind,
      metadata: {
        name: id, labels: this.o.labelsFor?.(spec) ?? {},
        ...(this.o.finalizer && { finalizers: [this.o.finalizer] }),
        ...(this.o.ownerReferences?.(id) && { ownerReferences: this.o.ownerReferences(id) }),
      },
      spec,
    }
  }

  private view(obj: KubeObject<S, T> | undefined): StoredObject<S, T> | undefined {
    if (!obj?.spec) return undefined
    let spec: S = obj.spec
    if (obj.metadata.deletionTimestamp && this.o.onDeleting) spec = this.o.onDeleting(spec, obj.metadata.deletionTimestamp)
    const out: StoredObject<S, T> = { id: obj.metadata.name, spec }
    if (obj.status !== undefined) out.status = obj.status
    return out
  }

  private async fetch(id: string): Promise<KubeObject<S, T> | undefined> {
    try {
      return (await this.api.getClusterCustomObject({ group: GROUP, version: VERSION, plural: this.o.plural, name: id })) as KubeObject<S, T>
    } catch (e) {
      if (httpCode(e) === 404) return undefined
      throw unavailable(`store: cannot read ${this.o.kind} ${id}: ${(e as Error).message}`)
    }
  }

  /** Runs write against the freshest object we know, re-reading on 409 (up to 5 times). */
  private async retryConflicts(id: string, write: (cur: KubeObject<S, T> | undefined) => Promise<KubeObject<S, T> | undefined>): Promise<void> {
    let cur = this.cache.get(id) ?? (await this.fetch(id))
    for (let attempt = 0; ; attempt++) {
      try {
        await this.cache.run(id, () => write(cur))
        return
      } catch (e) {
        const code = httpCode(e)
        if (code === undefined) throw e
        if (code !== 409 || attempt >= 4) throw unavailable(`store: cannot write ${this.o.kind} ${id}: ${(e as Error).message}`)
        cur = await this.fetch(id)
      }
    }
  }

  private async release(id: string): Promise<void> {
    await this.retryConflicts(id, async (cur) => {
      // Gone already is what releasing was for.
      if (!cur) return undefined
      const finalizers = (cur.metadata.finalizers ?? []).filter((f) => f !== this.o.finalizer)
      const body = { ...cur, metadata: { ...cur.metadata, finalizers } }
      try {
        return (await this.api.replaceClusterCustomObject({ group: GROUP, version: VERSION, plural: this.o.plural, name: id, body })) as KubeObject<S, T>
      } catch (e) {
        if (httpCode(e) === 404) return undefined
        throw e
      }
    })
  }

  private tell(id: string): void {
    for (const l of this.listeners) {
      try {
        l(id)
      } catch (e) {
        this.log.error({ err: e, id }, 'store listener failed')
      }
    }
  }

  /** For an answer a relist left unplaceable (see kube-cache.ts). */
  private reread(id: string): void {
    if (this.closed) return
    this.refresh(id).catch((err: unknown) => this.log.warn({ err, id, plural: this.o.plural }, 'store re-read failed; the next relist settles it'))
  }

  private async relist(): Promise<string> {
    const asked = this.cache.listing()
    try {
      const res = (await this.api.listClusterCustomObject({
        group: GROUP, version: VERSION, plural: this.o.plural, ...(this.o.labelSelector && { labelSelector: this.o.labelSelector }),
      })) as { items: KubeObject<S, T>[]; metadata: { resourceVersion: string } }
      this.cache.listed(asked, res.items)
      return res.metadata.resourceVersion
    } catch (e) {
      throw unavailable(`store: cannot list ${this.o.plural}: ${(e as Error).message}`)
    }
  }

  private startWatch(resourceVersion: string): void {
    if (this.closed) return
    const path = `/apis/${GROUP}/${VERSION}/${this.o.plural}`
    const params = { resourceVersion, allowWatchBookmarks: true, ...(this.o.labelSelector && { labelSelector: this.o.labelSelector }) }
    let delivered = false
    this.watcher
      .watch(path, params, (type, obj: KubeObject<S, T>) => {
        // ERROR carries a Status (410 Gone: too old to resume); the watch ends after it.
        if (type === 'ERROR') return
        delivered = true
        this.backoffMs = 1000
        if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED') return
        if (obj?.metadata?.name) this.cache.event(type, obj)
      }, (err) => this.restart(err, delivered))
      .then((ac) => { this.abort = ac }, (err) => this.restart(err, false))
  }

  /** A watch that failed, or ended having delivered nothing, is re-established after the backoff. */
  private restart(err: unknown, delivered: boolean): void {
    if (this.closed) return
    if (err) this.log.warn({ err, plural: this.o.plural, retryMs: this.backoffMs }, 'store watch ended; relisting')
    const delay = err || !delivered ? this.backoffMs : 0
    this.backoffMs = Math.min(this.backoffMs * 2, 30_000)
    this.retryTimer = setTimeout(() => {
      this.relist().then((rv) => this.startWatch(rv), (e) => this.restart(e, false))
    }, delay)
    this.retryTimer.unref()
  }
}
