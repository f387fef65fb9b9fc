// Helpers for the end-to-end scenarios: they run against the cluster scripts/e2e.sh brought up,
// whose facts (kubeconfig, node name, kubelet dir, data root) are in $E2E_RUN/env. Everything goes
// through kubectl, as a user would, and the node side is read straight from this host (the node
// plugin is a host process here, so its mounts are in this mount namespace).
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RUN = process.env.E2E_RUN ?? ''
if (!RUN || !existsSync(path.join(RUN, 'env'))) throw new Error('E2E_RUN is not set to a running e2e cluster: run `bash scripts/e2e.sh`')

export const env: Record<string, string> = Object.fromEntries(
  readFileSync(path.join(RUN, 'env'), 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
)
export const DRIVER = 'local.tscsi.dev'
export const TOPOLOGY_KEY = 'topology.tscsi.dev/node'
export const NODE = env.NODE_NAME
export const KUBELET_DIR = env.KUBELET_DIR
export const DATA_ROOT = path.join(RUN, 'data')
const KUBECTL = path.join(ROOT, '.tools/bin/kubectl')

export interface Result { code: number; stdout: string; stderr: string }

export function kubectlTry(args: string[], input?: string, timeoutMs = 60_000): Result {
  const r = spawnSync(KUBECTL, ['--kubeconfig', env.KUBECONFIG, ...args], { input, encoding: 'utf8', timeout: timeoutMs })
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : '') }
}

export function kubectl(args: string[], input?: string): string {
  const r = kubectlTry(args, input)
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr.trim()}`)
  return r.stdout
}

export function apply(ns: string, yaml: string): void { kubectl(['apply', '-n', ns, '-f', '-'], yaml) }
export function getJson(ns: string, kind: string, name: string): any {
  const r = kubectlTry(['get', '-n', ns, kind, name, '-o', 'json'])
  return r.code === 0 ? JSON.parse(r.stdout) : undefined
}
/** Runs a shell command in the pod's first container: {code, stdout, stderr}. */
export function podExec(ns: string, pod: string, script: string): Result {
  return kubectlTry(['exec', '-n', ns, pod, '--', 'sh', '-c', script])
}

/** Polls until `fn` returns a truthy value; fails after `timeoutMs` with the last value seen. */
export async function waitFor<T>(what: string, fn: () => T | undefined | null | false | Promise<T | undefined | null | false>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
      last = v
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what} (last: ${JSON.stringify(last)?.slice(0, 300)})`)
    await new Promise((r) => setTimeout(r, 1000))
  }
}

/** A fresh namespace for one scenario, deleted (with everything in it) when the test ends. */
export async function namespace(t: Test, name: string): Promise<string> {
  kubectl(['create', 'namespace', name])
  t.teardown(() => { kubectlTry(['delete', 'namespace', name, '--wait=true', '--timeout=120s'], undefined, 150_000) })
  await waitFor(`service account default in ${name}`, () => kubectlTry(['get', 'sa', 'default', '-n', name]).code === 0, 60_000)
  return name
}

export function pvc(name: string, sc: string, size: string, extra = ''): string {
  return `apiVersion: v1
kind: PersistentVolumeClaim
metadata: { name: ${name} }
spec:
  storageClassName: ${sc}
  accessModes: [ReadWriteOnce]
  resources: { requests: { storage: ${size} } }
${extra}`
}

/**
 * A busybox pod on the host network (the e2e tests volumes, not networking; no CNI state is made)
 * running `script`, then sleeping. `volumes` is the pod's volumes list, `mounts` the container's
 * volumeMounts/volumeDevices, as YAML fragments.
 */
export function pod(name: string, script: string, volumes: string, mounts: string): string {
  return `apiVersion: v1
kind: Pod
metadata: { name: ${name} }
spec:
  hostNetwork: true
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  containers:
    - name: main
      image: tscsi-e2e.local/busybox:1
      imagePullPolicy: Never
      command: [sh, -c, ${JSON.stringify(`${script}\ntrap 'exit 0' TERM; while :; do sleep 1; done`)}]
${mounts.replace(/^/gm, '      ')}
  volumes:
${volumes.replace(/^/gm, '    ')}
`
}

export function claimVolume(claim: string): string { return `- name: data\n  persistentVolumeClaim: { claimName: ${claim} }` }
export const DATA_MOUNT = 'volumeMounts: [{ name: data, mountPath: /data }]'

export async function waitRunning(ns: string, name: string, timeoutMs = 180_000): Promise<any> {
  return waitFor(`pod ${ns}/${name} Running`, () => {
    const p = getJson(ns, 'pod', name)
    if (p?.status?.phase === 'Failed') throw new Error(`pod ${name} failed: ${JSON.stringify(p.status)}`)
    return p?.status?.phase === 'Running' ? p : undefined
  }, timeoutMs)
}

export async function waitGone(ns: string, kind: string, name: string, timeoutMs = 120_000): Promise<void> {
  await waitFor(`${kind} ${name} gone`, () => kubectlTry(['get', '-n', ns, kind, name]).code !== 0, timeoutMs)
}

/** The PV bound to a claim, once bound. */
export async function boundPv(ns: string, claim: string): Promise<any> {
  const name = await waitFor(`claim ${ns}/${claim} Bound`, () => {
    const c = getJson(ns, 'pvc', claim)
    return c?.status?.phase === 'Bound' ? c.spec.volumeName as string : undefined
  })
  return getJson('', 'pv', name)
}

/** Mount points in this host's mount table (the node plugin's and kubelet's namespace). */
export function mountPoints(): { point: string; opts: string; fs: string; source: string }[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').trim().split('\n').map((l) => {
    const f = l.split(' ')
    const sep = f.indexOf('-')
    return { point: f[4].replace(/\\040/g, ' '), opts: `${f[5]},${f[sep + 3] ?? ''}`, fs: f[sep + 1], source: f[sep + 2] }
  })
}

/** The kubelet's publish target of a pod's CSI volume `pv`. */
export function targetPath(podUid: string, pv: string): string {
  return path.join(KUBELET_DIR, 'pods', podUid, 'volumes', 'kubernetes.io~csi', pv, 'mount')
}

/** Where a volume's data lives on the node: <data-root>/volumes/<volume id>. */
export function volumeDir(volumeId: string): string { return path.join(DATA_ROOT, 'volumes', volumeId) }

/** Files named `name` under `dir`, searched a few levels deep (the layout inside is the driver's). */
export function findFile(dir: string, name: string, depth = 3): string | undefined {
  if (!existsSync(dir)) return undefined
  for (const e of readdirSync(dir)) {
    const p = path.join(dir, e)
    if (e === name) return p
    if (depth > 0 && statSync(p, { throwIfNoEntry: false })?.isDirectory()) {
      const f = findFile(p, name, depth - 1)
      if (f) return f
    }
  }
  return undefined
}

/** Restarts the node plugin through scripts/e2e/driver.sh (it keeps the pid for teardown). */
export function driverScript(...args: string[]): Result {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/e2e/driver.sh'), args[0], RUN, ...args.slice(1)], { encoding: 'utf8', timeout: 120_000 })
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}
export function nodeMode(): string { return readFileSync(path.join(RUN, 'node-mode'), 'utf8').trim() }
export function nodePluginPid(): number { return Number(readFileSync(path.join(RUN, 'pids/tscsi-node'), 'utf8')) }
