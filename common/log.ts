// Structured JSON logs through pino (the logger fastify uses), one line per RPC.
import { pino, type Logger } from 'pino'

export type { Logger }

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

export function createLogger(level: string, name: string): Logger {
  return pino({ level, name, base: { pid: process.pid } })
}

/** A logger that writes nothing, for tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' })
}

const SECRET_KEYS = new Set(['secrets', 'controller_publish_secrets', 'node_stage_secrets', 'node_publish_secrets'])

/**
 * A copy of a request or response fit for a debug log: every secrets map keeps its keys (useful
 * when a key is missing) but loses its values. CSI puts secrets only in fields named *secrets.
 */
export function redact(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redact)
  if (value === null || typeof value !== 'object') return value
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (SECRET_KEYS.has(k) || k.endsWith('_secrets')) {
      out[k] = v && typeof v === 'object' ? Object.fromEntries(Object.keys(v).map((key) => [key, '***'])) : v === undefined || v === null ? v : '***'
    } else {
      out[k] = redact(v)
    }
  }
  return out
}
