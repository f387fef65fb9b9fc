// The set-up the real-API-server suites share: whether they can run here, and a kube-apiserver
// (with etcd) that serves tscsi's CRDs, torn down with the driver processes and mounts the
// test adds to it.
import { execFile } from 'node:child_process'
import path from 'node:path'
import { readdirSync } from 'node:fs'
import { promisify } from 'node:util'
import { MNT, umount2 } from '../../native/index.js'
import { KUBECTL, missingApiServerBinaries, startApiServer, type ApiServer } from './apiserver.js'
import { ROOT, type Proc } from './driver.js'
import type { TT } from './csi.js'

const run = promisify(execFile)
const CRD_DIR = path.join(ROOT, 'deploy/kubernetes/crds')

/**
 * Why the suite cannot run here, or undefined. Without root it skips; a missing binary skips
 * only outside CI, where it is a missing build step and must fail instead.
 */
export function kubeSkipReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'real API server tests run as root only (the node plugins mount tmpfs pools)'
  const missing = missingApiServerBinaries()
  const ci = !!process.env['CI'] && process.env['CI'] !== 'false'
  if (missing.length && !ci) return `needs ${missing.map((f) => path.basename(f)).join(', ')}: run \`bash scripts/k8s-tools.sh\``
  return undefined
}

export interface KubeWorld {
  dir: string
  api: ApiServer
  kubeconfig: string
  /** Killed (SIGKILL) at teardown. */
  procs: Proc[]
  /** Detached at teardown, last first. */
  mounts: string[]
  kubectl(...args: string[]): Promise<string>
}

/** A real API server with every CRD of deploy/kubernetes/crds established. */
export async function kubeWorld(t: TT): Promise<KubeWorld> {
  const procs: Proc[] = []
  const mounts: string[] = []
  let api: ApiServer | undefined
  t.teardown(async () => {
    for (const p of procs) p.child.kill('SIGKILL')
    await Promise.all(procs.map((p) => p.exited))
    for (const m of mounts.reverse()) { try { umount2(m, MNT.DETACH) } catch { /* gone */ } }
    await api?.stop()
  })
  const dir = t.testdir()
  api = await startApiServer(path.join(dir, 'api'))
  const kubeconfig = api.kubeconfigPath
  const kubectl = async (...args: string[]) => (await run(KUBECTL, ['--kubeconfig', kubeconfig, ...args])).stdout
  await kubectl('apply', '-f', CRD_DIR)
  const crds = readdirSync(CRD_DIR).map((f) => `crd/${f.replace(/^tscsi\.dev_/, '').replace(/\.yaml$/, '')}.tscsi.dev`)
  await kubectl('wait', '--for', 'condition=established', '--timeout=60s', ...crds)
  return { dir, api, kubeconfig, procs, mounts, kubectl }
}
