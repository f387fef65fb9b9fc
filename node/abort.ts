// Cancellation on the node: a CO that stops waiting (its deadline passed, or it cancelled the
// call) aborts the handler's AbortSignal, and the work the handler waits on stops: a mkfs child
// is killed, a copy stops at its next chunk, nothing new starts. A kernel call already in flight
// is never abandoned, because the per-volume lock must stay held until it returns; the signal is
// looked at again once it has.
import { Code, CsiError } from '../common/errors.js'

/**
 * The error a handler answers with once its signal is aborted. A reason that already is a
 * CsiError (the boundary's choice of code) is kept; a timeout (AbortSignal.timeout(), or a
 * reason named TimeoutError) is DEADLINE_EXCEEDED; anything else is CANCELLED.
 */
export function stopped(signal: AbortSignal, what: string): CsiError {
  const reason: unknown = signal.reason
  if (reason instanceof CsiError) return reason
  const timeout = (reason as { name?: unknown } | undefined)?.name === 'TimeoutError'
  return new CsiError(timeout ? Code.DEADLINE_EXCEEDED : Code.CANCELLED, `${what} stopped: ${timeout ? "the caller's deadline passed" : "the caller cancelled the call"}`)
}

/** Throws stopped() when the signal is aborted; for the points between steps of long work. */
export function checkSignal(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw stopped(signal, what)
}

