// The guest suites' rig (test/vm/*.vm.ts, run by scripts/test-vm.sh in a QEMU guest): the real
// controller and node plugin from the project's dist/, with their state and data on one of the
// guest's scratch disks, and the CO operations those suites repeat. The suites are compiled to
// dist/vm/, so the driver's own build is found from the project root, not from this file's.
import { closeSync, fsyncSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeSync } from 'node:fs'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { listLoopDevices } from '../../native/index.js'
import { client, spawnDriver, type CsiClient, type Proc } from './driver.js'
import type { VolumeCapability } from '../../proto/gen/csi/v1/VolumeCapability.js'

export const MiB = 1 << 20
/** The project root: this file runs as dist/vm/test/helpers/vm-rig.js. */
export const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../..')

export const mountCap = (fsType = '') => ({ mount: { fs_type: fsType, mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'mount' }) satisfies VolumeCapability
export const blockCap = { block: {}, access_mode: { mode: 'SINGLE_NODE_WRITER' }, access_type: 'block' } satisfies VolumeCapability

/** Both driver processes over one folder (state/, data/, CO paths); restartable, as a node reboot or upgrade does. */
export class VmDriver {
  procs: Proc[] = []
  c!: CsiClient<'Controller'>
  n!: CsiClient<'Node'>
  private sockets = mkdtempSync('/tmp/tscsi-vm-')
  constructor(readonly dir: string, private nodeFlags: string[] = []) {
    mkdirSync(dir, { recursive: true })
  }

  async start(): Promise<this> {
    const launch = (kind: 'controller' | 'node', extra: string[] = []) =>
      spawnDriver({ kind, dir: this.dir, extra, distRoot: PROJECT, socket: path.join(this.sockets, `${kind}.sock`), nodeId: 'vm-node', readyTimeoutMs: 300_000, pollMs: 200 })
    const ctl = await launch('controller')
    const node = await launch('node', this.nodeFlags)
    this.procs = [ctl, node]
    this.c = client('Controller', ctl.socket)
    this.n = client('Node', node.socket)
    return this
  }

  /** SIGKILL to both, as a crash or a power cut leaves them; mounts and loop devices stay. */
  async kill(): Promise<void> {
    this.c?.close()
    this.n?.close()
    for (const p of this.procs) p.child.kill('SIGKILL')
    await Promise.all(this.procs.map((p) => p.exited))
    this.procs = []
  }

  nodeLogs(): string {
    return this.procs[1]?.logs() ?? ''
  }
}

export interface Published {
  volume: { volume_id: string; capacity_bytes: string; volume_context: Record<string, string> }
  staging: string
  target: string
  base: RequestBase
}

/** The request fields NodeStage/NodePublish repeat. */
export interface RequestBase {
  volume_id: string
  volume_capability: VolumeCapability
  volume_context: Record<string, string>
}

/** CreateVolume, NodeStageVolume and NodePublishVolume, with the CO's folders made as kubelet makes them. */
export async function createAndPublish(d: VmDriver, name: string, capability: VolumeCapability, params: Record<string, string>, size: number): Promise<Published> {
  const { volume } = await d.c.CreateVolume({ name, volume_capabilities: [capability], parameters: params, capacity_range: { required_bytes: String(size) } }, 300_000)
  const staging = path.join(d.dir, 'kubelet', `${name}-staging`)
  const target = path.join(d.dir, 'kubelet', `${name}-pod`, 'vol')
  mkdirSync(staging, { recursive: true })
  mkdirSync(path.dirname(target), { recursive: true })
  const base = { volume_id: volume.volume_id, volume_capability: capability, volume_context: volume.volume_context }
  await stageAndPublish(d, { volume, staging, target, base })
  return { volume, staging, target, base }
}

/** The node half alone: what kubelet repeats after a reboot. */
export async function stageAndPublish(d: VmDriver, p: Omit<Published, 'volume'> & { volume?: unknown }): Promise<void> {
  await d.n.NodeStageVolume({ ...p.base, staging_target_path: p.staging }, 300_000)
  await d.n.NodePublishVolume({ ...p.base, staging_target_path: p.staging, target_path: p.target }, 300_000)
}

/**
 * Writes 1 MiB chunks to file, each synced so a quota or a full filesystem answers at that chunk
 * (delayed allocation would otherwise report it at close), until max bytes or an error.
 */
export function fillFile(file: string, max: number, fillByte = 7): { written: number; code?: string } {
  const fd = openSync(file, 'w')
  const chunk = Buffer.alloc(MiB, fillByte)
  let written = 0
  try {
    while (written < max) {
      written += writeSync(fd, chunk)
      fsyncSync(fd)
    }
    return { written }
  } catch (e) {
    return { written, code: (e as NodeJS.ErrnoException).code }
  } finally {
    try { closeSync(fd) } catch { /* the same error again at close */ }
  }
}

export const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex')

/** Loop devices backed by files under dir. */
export const loopsUnder = (dir: string) => listLoopDevices().filter((l) => l.backingFile.startsWith(dir + '/'))

/** The kernel a suite ran on, for its first comment line. */
export const kernelRelease = (): string => readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()

/**
 * Runs a shell script as a pod's process runs: root, but without CAP_SYS_RESOURCE (container
 * runtimes leave it out of the default set). That capability lets a process ignore the VFS
 * quota limits ext4 enforces, so a writer that kept it would fill past any project quota.
 */
export function asPod(script: string): { status: number | null; out: string } {
  const r = spawnSync('setpriv', ['--inh-caps=-sys_resource', '--bounding-set=-sys_resource', '--', 'bash', '-c', script], { encoding: 'utf8' })
  return { status: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` }
}

/** The errno a tool's strerror text names. */
const errnoOf = (text: string): string | undefined =>
  /Disk quota exceeded/.test(text) ? 'EDQUOT' : /No space left on device/.test(text) ? 'ENOSPC' : /\S/.test(text) ? `other: ${text.trim().slice(-200)}` : undefined

/** As a pod: 1 MiB synchronous writes to file until maxMiB or an error (dd's own count of bytes). */
export function podFill(file: string, maxMiB: number): { written: number; code?: string; capSysResource: boolean } {
  const r = asPod(`echo "capeff $(awk '/^CapEff/ {print $2}' /proc/self/status)"
dd if=/dev/zero of='${file}' bs=1M count=${maxMiB} oflag=dsync 2>&1`)
  const written = Number(/^(\d+) bytes/m.exec(r.out)?.[1] ?? -1)
  const cap = BigInt('0x' + (/capeff ([0-9a-f]+)/.exec(r.out)?.[1] ?? 'ffffffffff'))
  const err = r.out.split('\n').filter((l) => /^dd: /.test(l)).join('\n')
  return { written, code: errnoOf(err), capSysResource: ((cap >> 24n) & 1n) === 1n }
}

/** As a pod: creates up to max empty files in dir; how many were made and the error that stopped it. */
export function podTouch(dir: string, max: number): { made: number; code?: string } {
  const r = asPod(`cd '${dir}' || exit 9; n=0; while [ $n -lt ${max} ]; do touch "f$n" 2>/tmp/touch.err || break; n=$((n + 1)); done; echo "made $n"; cat /tmp/touch.err`)
  return { made: Number(/made (\d+)/.exec(r.out)?.[1] ?? -1), code: errnoOf(r.out.replace(/made \d+\n?/, '')) }
}

/**
 * Runs scripts/sanity.sh (csi-sanity against a fresh controller and node plugin) with these
 * csi-sanity arguments, and checks on t that every spec it ran passed.
 */
export function sanityPasses(t: { ok(v: unknown, m: string): void; equal(a: unknown, b: unknown, m: string): void; comment(m: string): void }, args: string[]): void {
  const r = spawnSync('bash', ['scripts/sanity.sh', '--', ...args], { cwd: PROJECT, encoding: 'utf8', maxBuffer: 64 << 20 })
  const out = `${r.stdout}${r.stderr}`
  const m = /^SANITY passed=(\d+) failed=(\d+) skipped=(\d+)/m.exec(out)
  if (!m || m[2] !== '0') t.comment(out.split('\n').slice(-200).join('\n'))
  t.ok(m, 'sanity.sh reported a summary')
  t.ok(Number(m?.[1]) > 0, `${m?.[1]} specs passed`)
  t.equal(Number(m?.[2]), 0, 'no spec failed')
  t.comment(`passed=${m?.[1]} failed=${m?.[2]} skipped=${m?.[3]}`)
}
