// Bounded waiting for another process to act on an object (the node realising a volume the
// controller recorded). Driven by watch notifications; a slow poll of the backing store covers a
// notification that never comes.
import type { Collection, StoredObject } from './types.js'

/**
 * Resolves with decide()'s first non-undefined answer, or undefined when timeoutMs passes.
 * decide() sees the object as the store has it (undefined when it does not exist).
 */
export function waitFor<S, T, R>(
  coll: Collection<S, T>,
  id: string,
  decide: (obj: StoredObject<S, T> | undefined) => R | undefined,
  timeoutMs: number,
  pollMs = 500,
): Promise<R | undefined> {
  return new Promise<R | undefined>((resolve, reject) => {
    let done = false
    const finish = (r: R | undefined, err?: unknown): void => {
      if (done) return
      done = true
      unwatch()
      clearTimeout(timer)
      clearInterval(poll)
      if (err !== undefined) reject(err)
      else resolve(r)
    }
    const check = (fresh: boolean): void => {
      ;(fresh ? coll.refresh(id) : coll.get(id)).then((obj) => {
        const r = decide(obj)
        if (r !== undefined) finish(r)
      }, (e) => finish(undefined, e))
    }
    const unwatch = coll.watch((changed) => {
      if (changed === id) check(false)
    })
    const timer = setTimeout(() => finish(undefined), timeoutMs)
    const poll = setInterval(() => check(true), pollMs)
    check(false)
  })
}
