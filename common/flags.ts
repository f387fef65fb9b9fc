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

// Go's time.ParseDuration units, in nanoseconds: sums and fractions stay exact as bigint.
const UNIT_NS: Record<string, bigint> = { ns: 1n, us: 1_000n, 'µs': 1_000n, 'μs': 1_000n, ms: 1_000_000n, s: 1_000_000_000n, m: 60_000_000_000n, h: 3_600_000_000_000n }
// One `<number><unit>` step; Go wants a digit on at least one side of the dot.
const DURATION_PART = /^(?:(\d+)(?:\.(\d*))?|\.(\d+))(ns|us|µs|μs|ms|s|m|h)/
// Node timers silently turn delays above 2^31-1 ms (24.8 days) into 1 ms.
const MAX_TIMER_NS = BigInt(2 ** 31 - 1) * 1_000_000n

export interface DurationRule {
  /**
   * 'go': exactly what Go's time.ParseDuration takes, for the flags of a program that stands in
   * for a kubernetes-csi sidecar, whose manifests must mean the same thing here (`1` or ` 1s` is
   * an error there). 'ours', the default: that, plus a bare number of seconds and blanks around
   * the value, which the driver's own flags have always taken.
   */
  syntax?: 'go' | 'ours'
  /** Refuse zero as well as negative durations (a deadline of 0 fails every call at once). */
  positive?: boolean
}

/**
 * A duration flag in milliseconds: Go's syntax (`500ms`, `30s`, `1m30s`, `1.5h`, `0`; units ns,
 * us, µs, ms, s, m, h), and with the default syntax a bare number of seconds (`45`). Negative
 * durations and any above what a Node timer holds are refused; every mistake is a FlagError
 * naming the flag.
 */
export function parseDuration(flag: string, value: string, rule: DurationRule = {}): number {
  const go = rule.syntax === 'go'
  const refuse = (why: string) => new FlagError(`--${flag} ${JSON.stringify(value)}: ${why}`)
  const expected = go ? 'expected a Go duration such as 1s, 500ms or 1m30s' : 'expected a duration such as 500ms, 30s, 1m30s or a number of seconds'
  let s = go ? value : value.trim()
  const negative = s.startsWith('-')
  if (negative || s.startsWith('+')) s = s.slice(1)
  if (!go && /^[0-9.]+$/.test(s)) s += 's'
  let ns = 0n
  if (s !== '0') {
    if (s === '') throw refuse(expected)
    while (s !== '') {
      const m = DURATION_PART.exec(s)
      if (!m) throw refuse(expected)
      const whole = m[1] ?? ''
      const fraction = m[2] ?? m[3] ?? ''
      const unit = UNIT_NS[m[4]!]!
      ns += BigInt(whole || '0') * unit + (BigInt(fraction || '0') * unit) / 10n ** BigInt(fraction.length)
      s = s.slice(m[0].length)
    }
  }
  if (rule.positive && (negative || ns === 0n)) throw refuse('must be greater than zero')
  if (negative && ns !== 0n) throw refuse('must not be negative')
  if (ns > MAX_TIMER_NS) throw refuse('at most 24 days (596h)')
  return Number(ns) / 1e6
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
