// The hostile suite's world: a canary tree outside the roots, the CO's side of the host with its
// traps (symlinks, device nodes, a tmpfs), a running controller and node plugin, two volumes, and
// the tables of hostile values the cases draw from. test/hostile-paths.test.ts runs the cases
// (cases-node.ts, cases-controller.ts) against it.
import type { Test } from 'tap'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { buildCanary, isUnder, mountPoints, snapshotTree, type Snapshot } from '../canary.js'
import { client, mountCap, testRig } from '../driver.js'
import { mount, readMountInfo } from '../../../native/index.js'
import { codeName, outcome, startIn, type Outcome } from '../rpc-outcome.js'

export const OK = 0
export const INVALID = 3
export const DEADLINE = 4
export const NOT_FOUND = 5
export const EXISTS = 6
export const PRECONDITION = 9
export const ABORTED = 10
export const UNIMPLEMENTED = 12
export const INTERNAL = 13
export const UNKNOWN = 2
export const EXHAUSTED = 8
export const OUT_OF_RANGE = 11

export interface Case {
  /** `Service.Method field: value label` */
  label: string
  call: () => Promise<unknown>
  expect: number[]
  /** For INVALID_ARGUMENT answers: the message must name this field. */
  field?: string
  /** Undo a success (unpublish, unstage, delete); must itself succeed. */
  undo?: (res: any) => Promise<void>
  /** Extra invariants; returns problems. */
  check?: (o: Outcome) => string[]
}

/** Hostile strings for id-like fields, with the code each deserves as a volume id. */
export function idValues(): { label: string; v: string; code: number }[] {
  const hex = '0123456789abcdef0123456789abcdef'
  return [
    { label: 'empty', v: '', code: INVALID },
    { label: '..', v: '..', code: NOT_FOUND },
    { label: '../../canary', v: '../../canary', code: NOT_FOUND },
    { label: '/etc/passwd', v: '/etc/passwd', code: NOT_FOUND },
    { label: 'v-<hex>/../x', v: `v-${hex}/../x`, code: NOT_FOUND },
    { label: 'NUL inside', v: `v-${hex.slice(0, 16)}\0${hex.slice(17)}`, code: INVALID },
    { label: 'trailing NUL', v: `v-${hex}\0`, code: INVALID },
    { label: 'newline', v: `v-${hex}\n`, code: INVALID },
    { label: 'ESC sequence', v: '\x1b[2Jv-x', code: INVALID },
    { label: 'DEL', v: 'v-\x7f', code: INVALID },
    { label: '129 ASCII bytes', v: 'v'.repeat(129), code: INVALID },
    { label: '130 bytes in 65 chars (é)', v: 'é'.repeat(65), code: INVALID },
    { label: '128 ASCII bytes', v: 'v'.repeat(128), code: NOT_FOUND },
    { label: 'uppercase hex', v: `v-${hex.toUpperCase()}`, code: NOT_FOUND },
    { label: 'fullwidth digits', v: 'v-' + '０１２３４５６７８９ａｂｃｄｅｆ'.repeat(2), code: NOT_FOUND },
    { label: 'U+2215 DIVISION SLASH', v: `v-${hex}\u2215..\u2215x`, code: NOT_FOUND },
    { label: 'fullwidth dots/solidus', v: '．．／．．／canary', code: NOT_FOUND },
    { label: 'zero width space', v: `v-${hex.slice(0, 31)}\u200b`, code: NOT_FOUND },
    { label: 'RTL override', v: `v-\u202e${hex}`, code: NOT_FOUND },
    { label: 'snapshot id shape', v: `s-${hex}`, code: NOT_FOUND },
    { label: 'unknown own-shape id', v: `v-${'0'.repeat(32)}`, code: NOT_FOUND },
  ]
}

/** Values for free-form strings (names, map values): what must be refused as malformed. */
export function stringValues(): { label: string; v: string; bad: boolean }[] {
  return [
    { label: 'NUL', v: 'a\0b', bad: true },
    { label: 'newline', v: 'a\nb', bad: true },
    { label: 'ESC', v: '\x1b[31mred', bad: true },
    { label: 'DEL', v: 'a\x7f', bad: true },
    { label: '129 bytes', v: 'x'.repeat(129), bad: true },
    { label: '130 bytes in 65 chars', v: 'é'.repeat(65), bad: true },
    { label: '..', v: '..', bad: false },
    { label: '../../canary', v: '../../canary', bad: false },
    { label: '/etc/passwd', v: '/etc/passwd', bad: false },
    { label: 'U+2215 look-alike', v: '\u2215..\u2215canary', bad: false },
    { label: 'fullwidth', v: '．．／canary', bad: false },
    { label: '128 bytes', v: 'y'.repeat(128), bad: false },
  ]
}


/** Sets the world up; the test's teardown takes it down (rig, clients, mounts). */
export async function hostileEnv(t: Test) {
  const rig = testRig(t)
  const dir = realpathSync(rig.dir)
  const data = path.join(dir, 'data')
  const state = path.join(dir, 'state')
  const kub = path.join(dir, 'kubelet')
  const canary = path.join(dir, 'canary')
  const tmpfs = path.join(dir, 'tmpfs')
  buildCanary(canary)
  const original = snapshotTree(canary)
  let baseline: Snapshot = original
  const baseMounts = new Set(mountPoints())

  // The CO's side of the host: staging and pod folders, and the traps.
  for (const d of ['staging/A', 'staging/fresh', 'staging/ℓook∕alike', 'pods/p1', 'pods/p2', 'pods/nonempty', 'pods/emptydir']) mkdirSync(path.join(kub, d), { recursive: true })
  writeFileSync(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n')
  writeFileSync(path.join(kub, 'pods/file-target'), 'a regular file\n')
  writeFileSync(path.join(kub, 'staging/file'), 'a regular file\n')
  execFileSync('mknod', [path.join(kub, 'pods/devnode'), 'c', '1', '3'])
  symlinkSync(path.join(canary, 'empty'), path.join(kub, 'pods/lnk-target'))
  symlinkSync(canary, path.join(kub, 'pods/lnk-parent'))
  symlinkSync(data, path.join(kub, 'pods/lnk-data'))
  symlinkSync(path.join(data, 'volumes'), path.join(kub, 'pods/lnk-volumes'))
  symlinkSync(path.join(canary, 'missing'), path.join(kub, 'pods/lnk-dangling'))
  symlinkSync(path.join(canary, 'stage'), path.join(kub, 'stg-link'))
  symlinkSync(canary, path.join(kub, 'stg-parent'))
  symlinkSync(path.join(kub, 'staging/A'), path.join(kub, 'lnk-staging'))
  symlinkSync(path.join(kub, 'staging'), path.join(kub, 'lnk-staging-parent'))
  symlinkSync(path.join(canary, 'missing'), path.join(kub, 'lnk-dangling-parent'))
  // A 300-byte path made of short components: valid (the spec wants >= 128 accepted).
  const longDir = path.join(kub, 'pods', ...Array.from({ length: 5 }, (_, i) => `${i}`.repeat(50)))
  mkdirSync(longDir, { recursive: true })
  const longStaging = path.join(kub, 'staging', ...Array.from({ length: 5 }, (_, i) => `${i}`.repeat(50)))
  mkdirSync(longStaging, { recursive: true })
  // A different filesystem under the test folder.
  mkdirSync(tmpfs)
  mount('tmpfs', tmpfs, 'tmpfs', 0, 'size=1m,mode=0755')
  mkdirSync(path.join(tmpfs, 'pods'))
  mkdirSync(path.join(tmpfs, 'stage'))
  const fsMounts = new Set(mountPoints())

  // The plugin runs with the test folder as its working directory, so a relative path that a
  // bug resolved would point into the canary ("canary/empty").
  const ctl = await startIn(dir, 'controller', rig.dir, ['--enable-attach', '--realise-timeout', '10s'], t)
  rig.procs.push(ctl)
  const node = await startIn(dir, 'node', rig.dir, [], t)
  rig.procs.push(node)
  const c = client('Controller', ctl.socket)
  const n = client('Node', node.socket)
  t.teardown(() => { c.close(); n.close() })

  const A = (await c.CreateVolume({ name: 'hostile-a', volume_capabilities: [mountCap()] })).volume
  const B = (await c.CreateVolume({ name: 'hostile-b', volume_capabilities: [mountCap()] })).volume
  const stagingA = path.join(kub, 'staging/A')
  await n.NodeStageVolume({ volume_id: A.volume_id, staging_target_path: stagingA, volume_capability: mountCap(), volume_context: A.volume_context })
  const volDirA = path.join(data, 'volumes', A.volume_id)
  writeFileSync(path.join(volDirA, 'a.txt'), 'volume A\n')
  mkdirSync(path.join(volDirA, 'sub'))
  // A standing publication of A, for cases that aim other volumes at it.
  const pubA = path.join(kub, 'pods/p2/pubA')
  await n.NodePublishVolume({ volume_id: A.volume_id, staging_target_path: stagingA, target_path: pubA, volume_capability: mountCap(), volume_context: A.volume_context })

  const cap = mountCap()
  const stageReq = (over: Record<string, unknown>) => ({ volume_id: A.volume_id, staging_target_path: path.join(kub, 'staging/fresh'), volume_capability: cap, volume_context: A.volume_context, ...over })
  const publishReq = (over: Record<string, unknown>) => ({
    volume_id: A.volume_id, staging_target_path: stagingA, target_path: path.join(kub, 'pods/p1/mount'), volume_capability: cap, readonly: false, volume_context: A.volume_context, ...over,
  })
  const unstage = (p: string) => async () => {
    const o = await outcome(n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p }))
    if (o.code !== OK) throw new Error(`undo: NodeUnstageVolume ${p}: ${codeName(o.code)} ${o.message}`)
  }
  const unpublish = (p: string) => async () => {
    const o = await outcome(n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p }))
    if (o.code !== OK) throw new Error(`undo: NodeUnpublishVolume ${p}: ${codeName(o.code)} ${o.message}`)
    if (existsSync(p)) throw new Error(`undo: NodeUnpublishVolume left ${p} behind`)
  }
  const deleteCreated = async (res: any) => {
    const o = await outcome(c.DeleteVolume({ volume_id: res.volume.volume_id }))
    if (o.code !== OK) throw new Error(`undo: DeleteVolume: ${codeName(o.code)} ${o.message}`)
  }
  const stillThere = (file: string, content: string) => (): string[] =>
    existsSync(file) && readFileSync(file, 'utf8') === content ? [] : [`${file} was changed or removed`]
  const tmpfsMounted = (): string[] => (mountPoints().includes(tmpfs) ? [] : ['the tmpfs at the target was unmounted'])
  const symlinkKept = (p: string) => (): string[] => {
    try {
      return lstatSync(p).isSymbolicLink() ? [] : [`${p} is no longer a symlink`]
    } catch {
      return [`${p} (a symlink the CO put there) was removed`]
    }
  }

  // Paths that are malformed as strings: every path field must refuse them, naming itself.
  const malformedPaths: { label: string; v: string }[] = [
    { label: 'empty', v: '' },
    { label: 'relative into canary', v: 'canary/empty' },
    { label: './relative', v: './canary/stage' },
    { label: '../relative', v: '../canary' },
    { label: 'bare ..', v: '..' },
    { label: '.. segments', v: `${kub}/pods/../../canary/empty` },
    { label: 'trailing ..', v: `${kub}/pods/p1/..` },
    { label: '. segment', v: `${kub}/pods/./p1/mount` },
    { label: 'double slash', v: `${kub}/pods//p1/mount` },
    { label: 'trailing slash', v: `${kub}/pods/p1/mount/` },
    { label: 'root', v: '/' },
    { label: 'NUL', v: `${kub}/pods/p1/mount\0/../../../canary` },
    { label: 'newline', v: `${kub}/pods/p1/mo\nunt` },
    { label: 'tab', v: `${kub}/pods/p1/mo\tunt` },
    { label: 'ESC', v: `${kub}/pods/p1/\x1b[2J` },
    { label: '4097 bytes', v: '/' + 'a/'.repeat(2047) + 'bb' },
  ]
  // Paths inside (or above) the driver's data root, as written or through a symlink.
  const rootPaths: { label: string; v: string; codes?: number[] }[] = [
    { label: 'the data root', v: data },
    { label: 'the volumes folder', v: path.join(data, 'volumes') },
    { label: "volume B's directory", v: path.join(data, 'volumes', B.volume_id) },
    { label: 'new dir in the volumes folder', v: path.join(data, 'volumes', 'new') },
    { label: 'a parent of the data root', v: dir },
    { label: 'symlink to the data root', v: path.join(kub, 'pods/lnk-data'), codes: [INVALID, PRECONDITION] },
    { label: 'through a symlinked parent into the volumes folder', v: path.join(kub, 'pods/lnk-volumes', B.volume_id) },
    { label: 'new dir through a symlinked parent into the volumes folder', v: path.join(kub, 'pods/lnk-volumes', 'new') },
  ]
  // The state dir (the local store) is the driver's other root.
  const statePaths: { label: string; v: string; stage: number[]; publish: number[] }[] = [
    { label: 'the state dir', v: state, stage: [INVALID], publish: [INVALID] },
    { label: "the store's volumes folder", v: path.join(state, 'store/volumes'), stage: [INVALID], publish: [INVALID] },
    { label: 'new dir in the state dir', v: path.join(state, 'new'), stage: [INVALID, PRECONDITION], publish: [INVALID] },
  ]
  // Paths outside the roots that reach the canary other than by being the given path.
  const escapeTargets: { label: string; v: string }[] = [
    { label: 'symlinked parent -> canary (existing empty dir)', v: path.join(kub, 'pods/lnk-parent/empty') },
    { label: 'symlinked parent -> canary (new dir)', v: path.join(kub, 'pods/lnk-parent/newdir') },
    { label: '/proc/self/root + canary (existing empty dir)', v: `/proc/self/root${canary}/empty` },
    { label: '/proc/self/cwd + canary (new dir)', v: '/proc/self/cwd/canary/newdir' },
    { label: 'symlinked parent -> canary/sub (new dir)', v: path.join(kub, 'pods/lnk-parent/sub/newdir') },
  ]
  const escapeStaging: { label: string; v: string }[] = [
    { label: 'symlinked parent -> canary (existing dir)', v: path.join(kub, 'stg-parent/stage') },
    { label: '/proc/self/root + canary (existing dir)', v: `/proc/self/root${canary}/stage` },
    { label: '/proc/self/cwd + canary (existing dir)', v: '/proc/self/cwd/canary/sub' },
  ]
  // Written as /proc/self/..., such a path is not under kubelet's folders at all, which is
  // refused as INVALID_ARGUMENT naming the field; a symlinked parent below them is a
  // FAILED_PRECONDITION (the path is well-formed, the disk is not as the CO should leave it).
  const escapeCodes = (v: string) => (v.startsWith('/proc/') ? [INVALID, PRECONDITION] : [PRECONDITION])
  const nameTooLong = path.join(kub, 'pods/p1', 'n'.repeat(256))
  const pathTooLong = '/' + 'a/'.repeat(2046) + 'bbb' // 4096 bytes: PATH_MAX counts the NUL

  // Values for volume_context and mount_flags, shared by the Node and Controller cases.
  const ctxValues: { label: string; v: Record<string, string>; expect: number[] }[] = [
    { label: 'kind ../../canary', v: { 'tscsi.dev/kind': '../../canary' }, expect: [INVALID] },
    { label: 'kind with NUL', v: { 'tscsi.dev/kind': 'dir\0' }, expect: [INVALID] },
    { label: 'kind fullwidth', v: { 'tscsi.dev/kind': 'ｄｉｒ' }, expect: [INVALID] },
    // The node finds the volume's kind on disk; a context naming another served kind is harmless.
    { label: 'kind image for a dir volume', v: { 'tscsi.dev/kind': 'image' }, expect: [OK, INVALID] },
    { label: '129-byte key', v: { ['k'.repeat(129)]: 'v' }, expect: [INVALID] },
    { label: '129-byte value', v: { k: 'v'.repeat(129) }, expect: [INVALID] },
    { label: 'key with NUL', v: { 'k\0': 'v' }, expect: [INVALID] },
    { label: 'value with newline', v: { k: 'a\nb' }, expect: [INVALID] },
  ]
  const flagValues: { label: string; v: string[]; expect: number[] }[] = [
    { label: '../../canary', v: ['../../canary'], expect: [INVALID] },
    { label: 'bind,remount', v: ['bind,remount'], expect: [INVALID] },
    { label: 'ro with NUL', v: ['ro\0'], expect: [INVALID] },
    { label: 'newline', v: ['ro\nnosuid'], expect: [INVALID] },
    { label: '129 bytes', v: ['n'.repeat(129)], expect: [INVALID] },
    { label: 'fullwidth ro', v: ['ｒｏ'], expect: [INVALID] },
    { label: 'upperdir=/ (overlay option)', v: ['upperdir=/'], expect: [INVALID] },
    { label: 'many valid', v: ['nosuid', 'nodev,noexec', 'bind'], expect: [OK] },
  ]

  function filesUnder(d0: string): string[] {
    const out: string[] = []
    for (const e of readdirSync(d0, { withFileTypes: true })) {
      const p0 = path.join(d0, e.name)
      if (e.isDirectory()) out.push(...filesUnder(p0))
      else if (e.isFile()) out.push(p0)
    }
    return out
  }
  function ourMountsOutside(): string[] {
    const tag = `/${path.basename(dir)}/`
    return readMountInfo().filter((m) => !isUnder(m.mountPoint, dir) && (m.root + '/').includes(tag)).map((m) => m.mountPoint)
  }
  function volumesOutsideRoot(): string[] {
    // Every volume directory the node made must be a v-<hex> entry of the volumes folder.
    return readdirSync(path.join(data, 'volumes')).filter((e) => !/^v-[0-9a-f]{32}$/.test(e)).map((e) => `unexpected entry in the volumes folder: ${JSON.stringify(e)}`)
  }
  function unpublishKeep(p: string) {
    return async () => {
      await outcome(n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p }))
    }
  }

  return {
    rig, dir, data, state, kub, canary, tmpfs, original,
    baseMounts, longDir, longStaging, fsMounts, ctl, node, c, n,
    A, B, stagingA, volDirA, pubA, cap, stageReq, publishReq,
    unstage, unpublish, deleteCreated, stillThere, tmpfsMounted, symlinkKept, malformedPaths, rootPaths,
    statePaths, escapeTargets, escapeStaging, escapeCodes, nameTooLong, pathTooLong, filesUnder, ourMountsOutside,
    volumesOutsideRoot, unpublishKeep, ctxValues, flagValues,
  }
}

export type HostileEnv = Awaited<ReturnType<typeof hostileEnv>>
