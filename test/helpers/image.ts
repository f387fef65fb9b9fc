// The images scripts/image.sh builds, taken apart and run without a container runtime: unpacked
// into a folder and entered with chroot in a private mount namespace, and imported into a private
// containerd started here. Everything this starts or mounts is undone by the caller's teardown.
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { ROOT } from './driver.js'

export interface BuiltImage { ref: string, file: string }

/** Runs scripts/image.sh ARGS; returns the "REF FILE" lines it prints, and how long it took. */
export function buildImages(args: string[]): { images: BuiltImage[], seconds: number, stderr: string } {
  const t0 = Date.now()
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/image.sh'), ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`scripts/image.sh ${args.join(' ')} exited ${r.status}:\n${r.stderr.slice(-4000)}`)
  const images = r.stdout.trim().split('\n').filter(Boolean).map((l) => {
    const [ref, file] = l.split(' ')
    return { ref: ref ?? '', file: file ?? '' }
  })
  return { images, seconds: (Date.now() - t0) / 1000, stderr: r.stderr }
}

export interface ArchiveManifest { Config: string, RepoTags: string[], Layers: string[] }
export interface ImageConfig { config: { User?: string, Env?: string[], Entrypoint?: string[], WorkingDir?: string }, rootfs: { diff_ids: string[] } }

/** Unpacks a docker-archive: its manifest and config, and its layers in order into `root`. */
export function unpackImage(file: string, work: string): { manifest: ArchiveManifest, config: ImageConfig, root: string } {
  const archive = path.join(work, 'archive')
  const root = path.join(work, 'root')
  mkdirSync(archive, { recursive: true })
  mkdirSync(root, { recursive: true })
  run('tar', ['-xf', file, '-C', archive])
  const manifest = (JSON.parse(readFileSync(path.join(archive, 'manifest.json'), 'utf8')) as ArchiveManifest[])[0]
  if (!manifest) throw new Error(`${file}: an empty manifest.json`)
  const config = JSON.parse(readFileSync(path.join(archive, manifest.Config), 'utf8')) as ImageConfig
  // Our layers only add files, so plain extraction in order is the image's filesystem; a whiteout
  // would mean a layer deletes, which this would get wrong, so it is refused.
  for (const layer of manifest.Layers) {
    const names = run('tar', ['-tf', path.join(archive, layer)]).stdout
    if (/(^|\/)\.wh\./m.test(names)) throw new Error(`${layer} holds a whiteout`)
    run('tar', ['-xf', path.join(archive, layer), '-C', root, '--numeric-owner', '--same-permissions'])
  }
  rmSync(archive, { recursive: true, force: true })
  return { manifest, config, root }
}

/**
 * Runs `sh -c script` inside the unpacked image as `user` (uid:gid), with the image's PATH, /proc
 * and the host's /dev. The private mount namespace takes every mount with it when the command
 * exits; binding the root onto itself makes / a real mount in the image's mount table.
 */
export function inImage(root: string, script: string, user = '0:0'): SpawnSyncReturns<string> {
  return execInImage(root, ['/usr/bin/env', '-i', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOME=/tmp', '/bin/sh', '-c', script], user)
}

/** Runs argv in the unpacked image with no shell in between (a one-binary image has none). */
export function execInImage(root: string, argv: string[], user = '0:0'): SpawnSyncReturns<string> {
  const setup = 'mkdir -p "$1/proc" "$1/dev" && mount --rbind "$1" "$1" && mount -t proc proc "$1/proc" && mount --rbind /dev "$1/dev" && ' +
    'r="$1" u="$2" && shift 2 && exec chroot --userspec="$u" "$r" "$@"'
  // own-mounts.sh first: the namespace must not hold copies of other tests' mounts (their loop
  // devices would stay attached after those tests unmount them).
  return spawnSync('unshare', ['-m', '--propagation', 'private', 'bash', path.join(ROOT, 'scripts/own-mounts.sh'), root, 'sh', '-c', setup, 'in-image', root, user, ...argv],
    { encoding: 'utf8', timeout: 120_000 })
}

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 << 20 })
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr}`)
  return r
}

/** Mount points at or below `dir` in this process's mount namespace. */
export function mountsBelow(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8').split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m === dir || m.startsWith(dir + '/'))
}

/** Processes whose command line names `dir`. */
export function processesNaming(dir: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid) continue
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(dir)) out.push(Number(p))
    } catch { /* gone meanwhile */ }
  }
  return out
}

export interface Containerd { ctr(args: string[]): SpawnSyncReturns<string>, stop(): Promise<void>, log: string }

/**
 * Debian's containerd on `dir`: its own root, state, socket and plugin folder, as
 * scripts/e2e/cluster.sh configures the e2e's, without the CRI plugin (nothing here runs pods, and
 * without it nothing touches the host's CNI folders).
 */
export async function startContainerd(dir: string): Promise<Containerd> {
  mkdirSync(dir, { recursive: true })
  const sock = path.join(dir, 'containerd.sock')
  const config = path.join(dir, 'config.toml')
  writeFileSync(config, [
    'version = 2',
    `root = "${dir}/root"`,
    `state = "${dir}/state"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${sock}"`,
    '[ttrpc]',
    `  address = "${sock}.ttrpc"`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = "${dir}/opt"`,
    '',
  ].join('\n'))
  const log = path.join(dir, 'containerd.log')
  const fd = openSync(log, 'a')
  const child = spawn('/usr/bin/containerd', ['--config', config], { stdio: ['ignore', fd, fd], detached: true })
  closeSync(fd)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const ctr = (args: string[]) => spawnSync('ctr', ['--address', sock, ...args], { encoding: 'utf8', timeout: 300_000 })
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    child.kill('SIGTERM')
    const t = setTimeout(() => child.kill('SIGKILL'), 15_000)
    await exited
    clearTimeout(t)
  }
  for (let i = 0; i < 120; i++) {
    if (ctr(['version']).status === 0) return { ctr, stop, log }
    if (child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 250))
  }
  await stop()
  throw new Error(`containerd did not answer on ${sock}: ${existsSync(log) ? readFileSync(log, 'utf8').slice(-2000) : ''}`)
}
