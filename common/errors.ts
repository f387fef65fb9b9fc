// The project's one error type. Every layer below the gRPC boundary throws either a CsiError
// or a domain error that the boundary converts with toCsiError(); grpc-js only ever sees a
// numeric status, so nothing reaches a client as UNKNOWN because a raw Node error leaked out.
import { status } from '@grpc/grpc-js'

export { status as Code }

export class CsiError extends Error {
  // grpc-js reads `code` (must be a number) and `details` from a thrown/returned error.
  readonly code: status
  readonly details: string

  constructor(code: status, message: string) {
    super(message)
    this.name = 'CsiError'
    this.code = code
    // The CSI spec asks for empty status details beyond the message; grpc-js puts `details`
    // into the status message, so both carry the same human-readable text.
    this.details = message
  }
}

// Shorthands keep call sites readable: `throw invalid('volume_id', 'must not be empty')`.
export const invalid = (field: string, reason: string): CsiError =>
  Object.assign(new CsiError(status.INVALID_ARGUMENT, `${field}: ${reason}`), { reason })

/**
 * What an input check that throws invalid() says about a value, without the field it named:
 * undefined when the value passes. For tables of checks that answer with reasons.
 */
export function invalidReason(check: () => unknown): string | undefined {
  try {
    check()
    return undefined
  } catch (e) {
    const reason = (e as { reason?: unknown }).reason
    if (e instanceof CsiError && e.code === status.INVALID_ARGUMENT && typeof reason === 'string') return reason
    throw e
  }
}
export const notFound = (message: string): CsiError => new CsiError(status.NOT_FOUND, message)
export const alreadyExists = (message: string): CsiError => new CsiError(status.ALREADY_EXISTS, message)
export const failedPrecondition = (message: string): CsiError =>
  new CsiError(status.FAILED_PRECONDITION, message)
export const aborted = (message: string): CsiError => new CsiError(status.ABORTED, message)
export const outOfRange = (message: string): CsiError => new CsiError(status.OUT_OF_RANGE, message)
export const exhausted = (message: string): CsiError => new CsiError(status.RESOURCE_EXHAUSTED, message)
export const unavailable = (message: string): CsiError => new CsiError(status.UNAVAILABLE, message)
export const internal = (message: string): CsiError => new CsiError(status.INTERNAL, message)

// Errno codes that say something the client can act on. Everything else is INTERNAL with the
// syscall and path in the message, which is what an operator needs to debug it.
const ERRNO_TO_STATUS: Record<string, status> = {
  ENOENT: status.NOT_FOUND,
  ENAMETOOLONG: status.INVALID_ARGUMENT,
  ENOSPC: status.RESOURCE_EXHAUSTED,
  EDQUOT: status.RESOURCE_EXHAUSTED,
  EBUSY: status.FAILED_PRECONDITION,
  ENOTDIR: status.FAILED_PRECONDITION,
  EISDIR: status.FAILED_PRECONDITION,
  ELOOP: status.FAILED_PRECONDITION,
  EROFS: status.FAILED_PRECONDITION,
}

interface ErrnoLike {
  code: string
  errno?: number
  syscall?: string
  path?: string
  message: string
}

function isErrnoLike(e: unknown): e is ErrnoLike {
  return e instanceof Error && typeof (e as { code?: unknown }).code === 'string'
}

/** Converts anything thrown below the boundary into a CsiError; never returns UNKNOWN. */
export function toCsiError(e: unknown): CsiError {
  if (e instanceof CsiError) return e
  if (isErrnoLike(e)) {
    const code = Object.hasOwn(ERRNO_TO_STATUS, e.code) ? ERRNO_TO_STATUS[e.code]! : status.INTERNAL
    return new CsiError(code, e.message)
  }
  if (e instanceof Error) return new CsiError(status.INTERNAL, e.message)
  return new CsiError(status.INTERNAL, String(e))
}

/** The gRPC code's name, for logs and metrics labels. */
export function codeName(code: number): string {
  return status[code] ?? `CODE_${code}`
}
