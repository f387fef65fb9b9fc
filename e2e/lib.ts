// Helpers for the end-to-end scenarios: they run against the cluster scripts/e2e.sh brought up,
// whose facts (kubeconfig, node name, kubelet dir, data root) are in $E2E_RUN/env. Everything goes
// through kubectl, as a user would, and the node side is read straight from this host: the node
// plugin runs in a pod (helm install), and its mounts reach this mount namespace because the chart
// mounts the kubelet directory and the data root with Bidirectional propagation.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { listLoopDevices, loopBackingId } from '../native/index.js'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const RUN = process.env.E2E_RUN ?? ''
if (!RUN || !existsSync(path.join(RUN, 'env'))) throw new Error('E2E_RUN is not set to a running e2e cluster: run `bash scripts/e2e.sh`')

/** The facts the scenarios read: scripts/e2e/cluster.sh writes them, driver.sh setup adds IMAGE_TAGS. */
const ENV_KEYS = ['RUN', 'NODE_NAME', 'KUBECONFIG', 'KUBELET_DIR', 'CONTAINERD_SOCK', 'IMAGE_TAGS'] as const
export const env = readEnv()

function readEnv(): Record<(typeof ENV_KEYS)[number], string> {
  const all: Record<string, string> = Object.fromEntries(
    readFileSync(path.join(RUN, 'env'), 'utf8').split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  )
  const missing = ENV_KEYS.filter((k) => all[k] === undefined)
  if (missing.length > 0) throw new Error(`${RUN}/env has no ${missing.join(', ')}: bring the cluster up with \`bash scripts/e2e.sh\``)
  return all as Record<(typeof ENV_KEYS)[number], string>
}
export const DRIVER = 'local.tscsi.dev'
export const TOPOLOGY_KEY = 'topology.tscsi.dev/node'
export const NODE = env.NODE_NAME
export const KUBELET_DIR = env.KUBELET_DIR
export const DATA_ROOT = path.join(RUN, 'data')
const KUBECTL = path.join(ROOT, '.tools/bin/kubectl')

export interface Result { code: number; stdout: string; stderr: string }

export function kubectlTry(args: string[], input?: string, timeoutMs = 60_000): Result {
  const r = spawnSync(KUBECTL, ['--kubeconfig', env.KUBECONFIG, ...args], { input, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 << 20 })
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
    return { point: (f[4] ?? '').replace(/\\040/g, ' '), opts: `${f[5]},${f[sep + 3] ?? ''}`, fs: f[sep + 1] ?? '', source: f[sep + 2] ?? '' }
  })
}

/** The kubelet's publish target of a pod's CSI volume `pv`. */
export function targetPath(podUid: string, pv: string): string {
  return path.join(KUBELET_DIR, 'pods', podUid, 'volumes', 'kubernetes.io~csi', pv, 'mount')
}

/**
 * Loop devices backed by a file on the data root, each as the image file it holds (or "inode N"
 * for a file not in images/), sorted. Matched by the backing file's device and inode: sysfs's
 * backing_file text is the path in the mount namespace that attached it, and once the node
 * plugin's container is gone it reads "/images/v-....img".
 */
export function dataRootLoops(): string[] {
  const dev = readFileSync(path.join(RUN, 'data-dev'), 'utf8').trim()
  const images = path.join(DATA_ROOT, 'images')
  const byIno = new Map<string, string>()
  for (const f of existsSync(images) ? readdirSync(images) : []) byIno.set(String(statSync(path.join(images, f)).ino), path.join(images, f))
  // The backing file's identity from LOOP_GET_STATUS64 (native/), as the node plugin reads it.
  const backed = listLoopDevices().map((l) => loopBackingId(l.device)).filter((id) => id?.dev === dev)
  return backed.map((id) => byIno.get(String(id!.ino)) ?? `inode ${id!.ino}`).sort()
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

/**
 * Deletes pods and waits until they are gone: kubelet unpublished and unstaged their volumes
 * through the node plugin. On a timeout returns the kubelet's last volume error instead (kubelet
 * records failed unmounts in its log, not as events).
 */
export async function deletePods(ns: string, ...names: string[]): Promise<true | string> {
  kubectl(['delete', 'pod', '-n', ns, ...names, '--wait=false'])
  try {
    return await waitFor(`pods ${names.join(', ')} gone`, () => names.every((n) => kubectlTry(['get', 'pod', '-n', ns, n]).code !== 0), 150_000)
  } catch {
    const log = readFileSync(path.join(RUN, 'logs/kubelet.log'), 'utf8').split('\n').filter((l) => l.includes('No retries permitted'))
    return `still there; kubelet: ${(log.at(-1) ?? 'no volume error logged').replace(/^.*?(error: )/, '$1')}`
  }
}

/** scripts/e2e/driver.sh CMD RUN ARGS...: install/upgrade, uninstall, node-pid. */
export function driverScript(cmd: string, ...args: string[]): Result {
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/e2e/driver.sh'), cmd, RUN, ...args], { encoding: 'utf8', timeout: 420_000 })
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
}
export function nodeMode(): string { return 'builtin' }

export const RELEASE_NS = 'tscsi'
export const NODE_METRICS_PORT = 9809
export const CONTROLLER_METRICS_PORT = 9808
/** tscsi's pods of one component (node or controller), as kubectl returns them. */
export function driverPods(component: 'node' | 'controller'): any[] {
  return JSON.parse(kubectl(['get', 'pods', '-n', RELEASE_NS, '-l', `app.kubernetes.io/component=${component}`, '-o', 'json'])).items
}
/** The one node plugin pod (a single-node cluster), not one being deleted. */
export function nodePod(): any {
  const live = driverPods('node').filter((p) => !p.metadata.deletionTimestamp)
  if (live.length !== 1) throw new Error(`expected one tscsi-node pod, found ${live.length}`)
  return live[0]
}
export function containerStatus(p: any, name: string): any { return p.status?.containerStatuses?.find((c: any) => c.name === name) }
/** Waits until the kubelet has restarted the tscsi-node container past `restarts` and it is ready; the node pod then. */
export async function nodeRestarted(restarts: number, timeoutMs: number): Promise<any> {
  return waitFor('kubelet restarts tscsi-node', () => {
    const p = nodePod()
    const c = containerStatus(p, 'tscsi-node')
    return c.restartCount > restarts && c.ready && p
  }, timeoutMs)
}
/** Host pid of the tscsi-node container's process (found through containerd's task list). */
export function nodePluginPid(): number {
  const r = driverScript('node-pid')
  if (r.code !== 0 || !/^\d+$/.test(r.stdout.trim())) throw new Error(`no tscsi-node process: ${r.stderr.trim()}`)
  return Number(r.stdout.trim())
}
/** HTTP status of the node pod's tscsi-metrics /healthz, by pod address as the kubelet probes it; 0 if it does not answer. */
export async function nodeHealth(): Promise<number> {
  try {
    return (await fetch(`http://${nodePod().status.podIP}:${NODE_METRICS_PORT}/healthz`, { signal: AbortSignal.timeout(5000) })).status
  } catch { return 0 }
}
