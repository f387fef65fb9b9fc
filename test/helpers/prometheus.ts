// A real Prometheus (Debian's package, installed by scripts/metrics-tools.sh) started on
// 127.0.0.1 with a generated config, promtool, and the metrics sidecar process it scrapes.
// Every process started here is killed in the test's teardown.
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { ROOT } from './driver.js'

export const PROMETHEUS = '/usr/bin/prometheus'
export const PROMTOOL = '/usr/bin/promtool'
export const RULES_FILE = path.join(ROOT, 'deploy/monitoring/prometheus-rules.yaml')
export const SIDECAR_MAIN = path.join(ROOT, 'dist/sidecar/main.js')

interface TapLike {
  teardown(fn: () => unknown): void
  // tap's skip() and fail() have several overloads; only the one-message form is used here.
  skip(...args: any[]): unknown
  fail(...args: any[]): unknown
}

/**
 * True when prometheus and promtool are installed. Otherwise the test is skipped with the reason,
 * or fails under CI (CI=true), where a skipped check would let a missing install step pass.
 */
export function haveTools(t: TapLike): boolean {
  const missing = [PROMETHEUS, PROMTOOL].filter((p) => !existsSync(p))
  if (missing.length === 0) return true
  const why = `${missing.join(' and ')} missing: run scripts/metrics-tools.sh (installs Debian's prometheus package)`
  if (process.env['CI']) t.fail(why)
  else t.skip(why, () => {})
  return false
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ host: '127.0.0.1', port: 0 }, () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })
}

export interface Child {
  child: ChildProcess
  logs: () => string
  exited: Promise<number | null>
}

function run(t: TapLike, cmd: string, args: string[]): Child {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let logs = ''
  child.stdout!.on('data', (b) => (logs += b))
  child.stderr!.on('data', (b) => (logs += b))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await exited
  })
  return { child, logs: () => logs, exited }
}

async function until<T>(what: string, timeoutMs: number, step: () => Promise<T | undefined>, logs?: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await step()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`${what} within ${timeoutMs} ms${last ? ` (last error: ${(last as Error).message})` : ''}${logs ? `\n${logs()}` : ''}`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

export interface Sidecar extends Child {
  /** http://127.0.0.1:PORT */
  url: string
  hostPort: string
}

/**
 * Starts dist/sidecar/main.js with the given flags plus `--http-endpoint 127.0.0.1:0`, and reads
 * the port it got from its "Server listening at" log line (no race for a port picked in advance).
 */
export async function startSidecar(t: TapLike, args: string[]): Promise<Sidecar> {
  if (!existsSync(SIDECAR_MAIN)) throw new Error('dist/sidecar/main.js is missing: run `npm run build` (npm test does) first')
  const c = run(t, process.execPath, [SIDECAR_MAIN, '--http-endpoint', '127.0.0.1:0', ...args])
  const url = await until('the sidecar to listen', 15_000, async () => {
    if (c.child.exitCode !== null) throw new Error(`the sidecar exited with ${c.child.exitCode}`)
    return /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(c.logs())?.[1]
  }, c.logs)
  return { ...c, url, hostPort: url.slice('http://'.length) }
}

export interface Sample {
  metric: Record<string, string>
  value: [number, string]
}

export interface Prometheus extends Child {
  url: string
  /** An instant query; rejects with Prometheus' message when the expression is invalid. */
  query(expr: string): Promise<Sample[]>
  /** Polls the query until ok(result) holds; rejects with the last result after timeoutMs. */
  waitFor(expr: string, ok: (r: Sample[]) => boolean, timeoutMs?: number): Promise<Sample[]>
  get(pathAndQuery: string): Promise<any>
}

export interface Target {
  hostPort: string
  labels?: Record<string, string>
}

/** Prometheus on 127.0.0.1, scraping the targets every second, with the project's alert rules loaded. */
export async function startPrometheus(t: TapLike, dir: string, targets: Target[]): Promise<Prometheus> {
  mkdirSync(dir, { recursive: true })
  const port = await freePort()
  const config = path.join(dir, 'prometheus.yml')
  // JSON is YAML; no YAML writer needed.
  writeFileSync(config, JSON.stringify({
    global: { scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' },
    rule_files: [RULES_FILE],
    scrape_configs: [{ job_name: 'tscsi-sidecar', static_configs: targets.map((x) => ({ targets: [x.hostPort], labels: x.labels ?? {} })) }],
  }, null, 2))
  const url = `http://127.0.0.1:${port}`
  const c = run(t, PROMETHEUS, [
    `--config.file=${config}`,
    `--storage.tsdb.path=${path.join(dir, 'data')}`,
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ])
  const get = async (pathAndQuery: string): Promise<any> => {
    const res = await fetch(url + pathAndQuery)
    const body = (await res.json()) as { status: string; data?: unknown; error?: string }
    if (body.status !== 'success') throw new Error(`${pathAndQuery}: ${body.error ?? res.status}`)
    return body.data
  }
  await until('prometheus to be ready', 30_000, async () => {
    if (c.child.exitCode !== null) throw new Error(`prometheus exited with ${c.child.exitCode}`)
    return (await fetch(`${url}/-/ready`)).ok ? true : undefined
  }, c.logs)
  const query = async (expr: string): Promise<Sample[]> => {
    const data = (await get(`/api/v1/query?query=${encodeURIComponent(expr)}`)) as { resultType: string; result: Sample[] }
    return data.result
  }
  const waitFor = async (expr: string, ok: (r: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> => {
    let last: Sample[] = []
    try {
      return await until(`${expr} to hold`, timeoutMs, async () => {
        last = await query(expr)
        return ok(last) ? last : undefined
      })
    } catch (e) {
      throw new Error(`${(e as Error).message}; last result ${JSON.stringify(last)}`)
    }
  }
  return { ...c, url, query, waitFor, get }
}

export interface ToolRun {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs promtool with the arguments, feeding stdin when given. */
export function promtool(args: string[], stdin?: string): Promise<ToolRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(PROMTOOL, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin ?? '')
  })
}
