// Command-line flags in the style kubernetes-csi drivers use (`--endpoint unix:///csi/csi.sock`,
// `--nodeid=$(NODE_NAME)`). Each entrypoint declares its flags; parsing, defaults, help text and
// errors that name the flag live here once.
import { parseArgs } from 'node:util'
import { LOG_LEVELS } from './log.js'

export interface FlagDef {
  type: 'string' | 'boolean'
  default?: string | boolean
  /** May be given several times; the value is then a list. */
  multiple?: boolean
  help: string
}

export type FlagDefs = Record<string, FlagDef>

export class FlagError extends Error {}

export function parseFlags<D extends FlagDefs>(
  argv: string[],
  defs: D,
): { [K in keyof D]: D[K]['type'] extends 'boolean' ? boolean : D[K]['multiple'] extends true ? string[] : string } {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = { help: { type: 'boolean' } }
  for (const [name, def] of Object.entries(defs)) options[name] = { type: def.type, ...(def.multiple && { multiple: true }) }
  // Boolean flags also take `--flag=true|false`, as Go's flag package (and so every
  // kubernetes-csi manifest) allows; util.parseArgs on Node 20 knows only `--flag`.
  const explicit: Record<string, boolean> = {}
  const args = argv.filter((a) => {
    const m = /^--([^=]+)=(.*)$/.exec(a)
    if (!m || defs[m[1]!]?.type !== 'boolean') return true
    if (m[2] !== 'true' && m[2] !== 'false') throw new FlagError(`--${m[1]}: expected true or false, got ${JSON.stringify(m[2])}`)
    explicit[m[1]!] = m[2] === 'true'
    return false
  })
  let parsed
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: false })
  } catch (e) {
    throw new FlagError((e as Error).message)
  }
  if (parsed.values['help']) throw new FlagError(usage(defs))
  const out: Record<string, string | boolean | string[]> = {}
  for (const [name, def] of Object.entries(defs)) {
    const v = explicit[name] ?? parsed.values[name] ?? def.default
    out[name] = v === undefined ? (def.multiple ? [] : def.type === 'boolean' ? false : '') : (v as string | boolean | string[])
  }
  return out as never
}

export function usage(defs: FlagDefs): string {
  const lines = ['Flags:']
  for (const [name, def] of Object.entries(defs)) {
    const d = def.default === undefined || def.default === '' ? '' : ` (default ${JSON.stringify(def.default)})`
    lines.push(`  --${name}${def.type === 'string' ? ' VALUE' : ''}\n      ${def.help}${d}`)
  }
  return lines.join('\n')
}

/** The --log-level flag every program takes. */
export const LOG_LEVEL_FLAG = { type: 'string', default: 'info', help: 'fatal, error, warn, info, debug or trace' } as const satisfies FlagDef

/** A --log-level value pino knows; anything else is a FlagError (exit 2), not a pino stack trace. */
export function parseLogLevel(value: string): string {
  if (!(LOG_LEVELS as readonly string[]).includes(value)) throw new FlagError(`--log-level ${JSON.stringify(value)}: expected one of ${LOG_LEVELS.join(', ')}`)
  return value
}

/** `30s`, `500ms`, `2m`, `1h`, or a bare number of seconds, as milliseconds. */
export function parseDuration(flag: string, value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim())
  if (!m?.[1]) throw new FlagError(`--${flag} ${JSON.stringify(value)}: expected a duration such as 500ms, 30s or 2m`)
  const n = Number(m[1])
  const unit = m[2] ?? 's'
  const ms = n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!
  // Node timers silently turn delays above 2^31-1 ms (24.8 days) into 1 ms.
  if (ms > 2 ** 31 - 1) throw new FlagError(`--${flag} ${JSON.stringify(value)}: at most 24 days (596h)`)
  return ms
}

export function parseCount(flag: string, value: string): number {
  if (!/^\d{1,10}$/.test(value) || Number(value) > 2 ** 31 - 1) throw new FlagError(`--${flag} ${JSON.stringify(value)}: expected an integer from 0 to 2147483647`)
  return Number(value)
}

/** Runs an entrypoint's main, printing flag errors without a stack trace. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    if (e instanceof FlagError) {
      process.stderr.write(e.message + '\n')
      process.exit(2)
    }
    process.stderr.write(`fatal: ${(e as Error)?.stack ?? String(e)}\n`)
    process.exit(1)
  })
}

/**
 * The metrics socket for a process: the flag's value, or beside a unix CSI socket by default.
 * `off` disables it; a tcp:// CSI endpoint has no default (the sidecar needs a path to share).
 */
export function metricsSocketFlag(value: string, csiSocket: string | undefined, defaultFor: (p: string) => string): string | undefined {
  if (value === 'off') return undefined
  if (value !== '') {
    if (!value.startsWith('/')) throw new FlagError(`--metrics-socket ${JSON.stringify(value)}: expected an absolute path or off`)
    return value
  }
  return csiSocket ? defaultFor(csiSocket) : undefined
}
