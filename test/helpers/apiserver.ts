// A real, throwaway Kubernetes API server for tests: etcd and kube-apiserver from .tools/bin (put
// there by `bash scripts/k8s-tools.sh`), both on 127.0.0.1 with free ports, all state under `dir`.
// Authentication is a static token for an admin in system:masters, authorization is RBAC, so tests
// can also check least-privilege roles by adding tokens or service-account tokens of their own.
import { spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync, randomBytes } from 'node:crypto'
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import https from 'node:https'
import net from 'node:net'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const TOOLS_BIN = path.join(ROOT, '.tools/bin')
export const ETCD = path.join(TOOLS_BIN, 'etcd')
export const KUBE_APISERVER = path.join(TOOLS_BIN, 'kube-apiserver')
export const KUBECTL = path.join(TOOLS_BIN, 'kubectl')

export interface ApiServer {
  /** `dir/kubeconfig`: the admin token, server https://127.0.0.1:PORT, insecure-skip-tls-verify. */
  kubeconfigPath: string
  server: string
  /** The admin's bearer token (user "admin", group system:masters). */
  token: string
  etcdUrl: string
  /** Milliseconds from spawning etcd to the API server's /readyz answering ok. */
  startupMs: number
  /** Kills both processes and waits for them to exit. Safe to call more than once. */
  stop(): Promise<void>
}

/** The tools that startApiServer needs and that are not there yet (empty when all are). */
export function missingApiServerBinaries(): string[] {
  return [ETCD, KUBE_APISERVER, KUBECTL].filter((f) => {
    try {
      return !(statSync(f).mode & 0o111)
    } catch {
      return true
    }
  })
}

const STARTUP_TIMEOUT_MS = 90_000

export async function startApiServer(dir: string): Promise<ApiServer> {
  const missing = missingApiServerBinaries()
  if (missing.length) {
    throw new Error(`missing ${missing.join(', ')}: run \`bash scripts/k8s-tools.sh\` first (it builds kube-apiserver and kubectl into .tools/bin and installs etcd)`)
  }
  const t0 = Date.now()
  mkdirSync(dir, { recursive: true })
  const [etcdClient, etcdPeer, securePort] = await freePorts(3)
  const etcdUrl = `http://127.0.0.1:${etcdClient}`
  const server = `https://127.0.0.1:${securePort}`

  const procs: Proc[] = []
  const killAll = (): void => { for (const p of procs) p.child.kill('SIGKILL') }
  // Should the test process end without calling stop(), take the servers down with it.
  process.on('exit', killAll)
  let stopped = false
  const stop = async (): Promise<void> => {
    if (stopped) return
    stopped = true
    killAll()
    await Promise.all(procs.map((p) => p.exited))
    process.off('exit', killAll)
  }

  try {
    procs.push(launch('etcd', ETCD, [
      '--name', 'tscsi-test',
      '--data-dir', path.join(dir, 'etcd'),
      '--listen-client-urls', etcdUrl,
      '--advertise-client-urls', etcdUrl,
      '--listen-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${etcdPeer}`,
      '--initial-cluster', `tscsi-test=http://127.0.0.1:${etcdPeer}`,
      '--logger', 'zap', '--log-outputs', 'stderr',
    ], dir))
    await waitFor(procs, `etcd at ${etcdUrl}`, async () => {
      const res = await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2000) })
      return res.ok && /"health":\s*"true"/.test(await res.text())
    })

    const { publicKey, privateKey } = generateKeyPairSync('rsa', {
      modulusLength: 2048,
      publicKeyEncoding: { type: 'spki', format: 'pem' },
      privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
    })
    const saPub = path.join(dir, 'sa.pub')
    const saKey = path.join(dir, 'sa.key')
    writeFileSync(saPub, publicKey)
    writeFileSync(saKey, privateKey, { mode: 0o600 })
    const token = randomBytes(24).toString('hex')
    const tokens = path.join(dir, 'tokens.csv')
    // token,user,uid,"group1,group2"
    writeFileSync(tokens, `${token},admin,admin-uid,"system:masters"\n`, { mode: 0o600 })

    procs.push(launch('kube-apiserver', KUBE_APISERVER, [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      `--secure-port=${securePort}`,
      // Loopback only. The kubernetes Service's endpoints may not be a loopback address, so the
      // reconciler that writes them is off (nothing here routes to the service range anyway).
      '--advertise-address=127.0.0.1',
      '--endpoint-reconciler-type=none',
      `--cert-dir=${path.join(dir, 'apiserver-certs')}`, // it writes a self-signed serving cert there
      `--token-auth-file=${tokens}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      // As on real clusters (kubeadm sets it): a node plugin's DaemonSet is privileged, and without
      // this a server-side dry run of it would be refused.
      '--allow-privileged=true',
      '--profiling=false',
    ], dir))
    await waitFor(procs, `kube-apiserver /readyz at ${server}`, async () => {
      const { status, body } = await httpsGet(`${server}/readyz`, token)
      return status === 200 && body.trim() === 'ok'
    })

    const kubeconfigPath = path.join(dir, 'kubeconfig')
    writeFileSync(kubeconfigPath, [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: tscsi-test',
      '  cluster:',
      `    server: ${server}`,
      '    insecure-skip-tls-verify: true',
      'users:',
      '- name: admin',
      '  user:',
      `    token: ${token}`,
      'contexts:',
      '- name: tscsi-test',
      '  context:',
      '    cluster: tscsi-test',
      '    user: admin',
      'current-context: tscsi-test',
      '',
    ].join('\n'), { mode: 0o600 })
    return { kubeconfigPath, server, token, etcdUrl, startupMs: Date.now() - t0, stop }
  } catch (err) {
    await stop()
    const logs = procs.map((p) => `--- ${p.name} (${p.log}), last lines:\n${tail(p.log)}`).join('\n')
    throw new Error(`starting a test API server under ${dir} failed: ${(err as Error).message}\n${logs}`)
  }
}

interface Proc {
  name: string
  child: ChildProcess
  log: string
  exited: Promise<void>
  exit?: string
}

function launch(name: string, bin: string, args: string[], dir: string): Proc {
  const log = path.join(dir, `${name}.log`)
  const fd = openSync(log, 'a')
  // setpriv --pdeathsig: the kernel kills the server if this process dies before stop(), e.g.
  // when the test runner SIGKILLs a test that ran out of time. It execs, so the pid stays the same.
  const usePdeath = existsSync('/usr/bin/setpriv')
  const child = usePdeath
    ? spawn('/usr/bin/setpriv', ['--pdeathsig', 'KILL', '--', bin, ...args], { stdio: ['ignore', fd, fd] })
    : spawn(bin, args, { stdio: ['ignore', fd, fd] })
  closeSync(fd)
  const p: Proc = { name, child, log, exited: Promise.resolve() }
  p.exited = new Promise((resolve) => {
    child.once('error', (err) => { p.exit ??= `failed to start: ${err.message}`; resolve() })
    child.once('exit', (code, signal) => { p.exit ??= signal ? `killed by ${signal}` : `exited with ${code}`; resolve() })
  })
  return p
}

/** Polls `ready` until it returns true; fails at once when one of `procs` has exited. */
async function waitFor(procs: Proc[], what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS
  let last = 'no answer yet'
  for (;;) {
    const dead = procs.find((p) => p.exit !== undefined)
    if (dead) throw new Error(`${dead.name} ${dead.exit} while waiting for ${what}`)
    try {
      if (await ready()) return
      last = 'not ready'
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${STARTUP_TIMEOUT_MS / 1000}s waiting for ${what} (${last})`)
    await new Promise((r) => setTimeout(r, 200))
  }
}

function httpsGet(url: string, token: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    // Only ever 127.0.0.1, whose serving cert the API server made up itself.
    const req = https.get(url, { rejectUnauthorized: false, headers: { authorization: `Bearer ${token}` }, timeout: 5000 }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error('request timed out')))
    req.on('error', reject)
  })
}

/** Distinct free TCP ports on 127.0.0.1, all held until every one is picked so none repeats. */
async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = []
  try {
    for (let i = 0; i < n; i++) {
      const s = net.createServer()
      servers.push(s)
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(0, '127.0.0.1', () => resolve()) })
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port)
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))))
  }
}

function tail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch (err) {
    return `(cannot read: ${(err as Error).message})`
  }
}
