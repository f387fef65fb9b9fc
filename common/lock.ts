// Concurrency as its own layer. Two kinds of lock, because the CSI spec wants two behaviours:
//  - TryLocks: a second operation on a volume that is already busy fails at once with ABORTED
//    ("an operation is pending for this volume"); the CO retries with backoff.
//  - Mutex queues: internal critical sections (placement on a node) wait their turn.
import { aborted } from './errors.js'

export class TryLocks {
  private readonly held = new Set<string>()

  /** Runs fn while holding every key; ABORTED if any is held. Keys are released even on throw. */
  async run<T>(keys: string | string[], what: string, fn: () => Promise<T> | T): Promise<T> {
    const list = Array.isArray(keys) ? keys : [keys]
    for (const k of list) {
      if (this.held.has(k)) throw aborted(`an operation on ${what} is already in progress; retry later`)
    }
    for (const k of list) this.held.add(k)
    try {
      return await fn()
    } finally {
      for (const k of list) this.held.delete(k)
    }
  }

  isHeld(key: string): boolean {
    return this.held.has(key)
  }
}

export class Mutexes {
  private readonly tails = new Map<string, Promise<unknown>>()

  /** Runs fn after every earlier fn with the same key has settled. */
  async run<T>(key: string, fn: () => Promise<T> | T): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve()
    const next = prev.then(fn, fn)
    const tail = next.catch(() => undefined)
    this.tails.set(key, tail)
    try {
      return await next
    } finally {
      // Drop the entry when nobody queued behind us, so the map does not grow with every key.
      if (this.tails.get(key) === tail) this.tails.delete(key)
    }
  }
}
