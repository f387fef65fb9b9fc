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
import type { NodeSpec, NodeStatus, SnapshotSpec, SnapshotStatus, VolumeSpec, VolumeStatus } from './model.js'

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
  /** Writing a status for an object without a spec is refused (the object was removed). */
  putStatus(id: string, status: T): Promise<void>
  /**
   * Deletes the object. `force` also drops what would keep it (the Kubernetes finalizer that
   * waits for the node): only for objects whose node is gone for good.
   */
  remove(id: string, opts?: { force?: boolean }): Promise<void>
  watch(listener: (id: string) => void): () => void
}

/** Where warnings about a PersistentVolume go so `kubectl describe pv` shows them. */
export interface EventSink {
  warnPersistentVolume(pvName: string, reason: string, message: string): Promise<void>
}

export interface Store {
  volumes: Collection<VolumeSpec, VolumeStatus>
  nodes: Collection<NodeSpec, NodeStatus>
  snapshots: Collection<SnapshotSpec, SnapshotStatus>
  /** Only where there is a cluster to record events in. */
  events?: EventSink
  /** True when the backing store answers; Probe reports it. */
  healthy(): Promise<boolean>
  close(): Promise<void>
}

export type VolumeObject = StoredObject<VolumeSpec, VolumeStatus>
export type NodeObject = StoredObject<NodeSpec, NodeStatus>
export type SnapshotObject = StoredObject<SnapshotSpec, SnapshotStatus>
