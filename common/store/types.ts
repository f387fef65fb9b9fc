// The store interface both entrypoints depend on. Two implementations share these semantics
// (and the same tests): a local folder of JSON documents and, in a later issue, the Kubernetes
// API with custom resources.
//
// Contract:
// - Every object has an id, a spec (written by exactly one kind of writer: the controller for
//   volumes) and an optional status (written by the node that realises it).
// - putSpec/putStatus replace the whole part atomically: a reader sees the old or the new
//   document, never a mix, and a process killed at any instant leaves one of the two.
// - remove() of a missing object succeeds (idempotent), as in the hostpath driver's state.
// - watch() tells listeners the id of every object that changed, in this process or another,
//   at least once per change (duplicates allowed); listeners re-read with get().
// - Errors thrown are CsiErrors (UNAVAILABLE when the backing store cannot be reached).
// - Several controller processes may share one store. Where they decide on the same thing
//   (how much of a node's pool is promised, which project ids are taken) they do it through the
//   ledger's compare-and-swap, never through a cache or a lock held in one process.
import type { ExportSpec, ExportStatus, LedgerDoc, NodeSpec, NodeStatus, SnapshotSpec, SnapshotStatus, VolumeSpec, VolumeStatus } from './model.js'

export interface StoredObject<S, T> {
  id: string
  spec: S
  status?: T
}

export interface Collection<S, T> {
  get(id: string): Promise<StoredObject<S, T> | undefined>
  /** Re-reads the object from the backing store, bypassing any cache. */
  refresh(id: string): Promise<StoredObject<S, T> | undefined>
  /** Every object, sorted by id. */
  list(): Promise<StoredObject<S, T>[]>
  putSpec(id: string, spec: S): Promise<void>
  /**
   * Writes the spec only if no object with this id exists (in the backing store, not a cache):
   * true when this call made it, false when it was there already, made by this process or another.
   */
  create(id: string, spec: S): Promise<boolean>
  /** Writing a status for an object without a spec is refused (the object was removed). */
  putStatus(id: string, status: T): Promise<void>
  /**
   * Deletes the object. `force` also drops what would keep it (the Kubernetes finalizer that
   * waits for the node): only for objects whose node is gone for good.
   */
  remove(id: string, opts?: { force?: boolean }): Promise<void>
  watch(listener: (id: string) => void): () => void
}

/** What a ledger change decides: the document to write (none: write nothing) and the answer. */
export interface LedgerChange<D, R> {
  next?: D
  result: R
}

/**
 * Documents changed only by compare-and-swap, for state several controllers decide on together.
 * update() calls change() with the document as last known and writes change()'s answer only if
 * that is still the current version (nobody wrote in between); if it was not, it reads the
 * backing store and calls change() again (so change() must be pure). A decision to write nothing
 * is also only returned once made on a version read from the backing store. It gives up with ABORTED after a
 * bounded number of conflicts. The result is that of the call whose write stuck (or that wrote
 * nothing). update() is idempotent exactly when change() is.
 */
export interface Ledger<D> {
  /** The document as this process last saw it: may be stale, so only for ranking, never deciding. */
  get(id: string): Promise<D | undefined>
  update<R>(id: string, change: (cur: D | undefined) => LedgerChange<D, R>): Promise<R>
}

/** Where warnings about a PersistentVolume go so `kubectl describe pv` shows them. */
export interface EventSink {
  warnPersistentVolume(pvName: string, reason: string, message: string): Promise<void>
}

export interface Store {
  volumes: Collection<VolumeSpec, VolumeStatus>
  nodes: Collection<NodeSpec, NodeStatus>
  snapshots: Collection<SnapshotSpec, SnapshotStatus>
  /** NFS exports whose free space a node measures for GetCapacity (model.ts exportSpec). */
  exports: Collection<ExportSpec, ExportStatus>
  /** Written by controllers only; node plugins never read it (the mount path needs no ledger). */
  ledger: Ledger<LedgerDoc>
  /** Only where there is a cluster to record events in. */
  events?: EventSink
  /** True when the backing store answers; Probe reports it. */
  healthy(): Promise<boolean>
  close(): Promise<void>
}

export type VolumeObject = StoredObject<VolumeSpec, VolumeStatus>
export type NodeObject = StoredObject<NodeSpec, NodeStatus>
export type SnapshotObject = StoredObject<SnapshotSpec, SnapshotStatus>
export type ExportObject = StoredObject<ExportSpec, ExportStatus>
