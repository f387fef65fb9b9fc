// Hostile ids, names, parameters and paths against the REAL controller and node plugin (root).
//
// A table of cases covers every id, name, map and path field of every RPC of both services. Each
// case must be answered with the code the CSI spec names (INVALID_ARGUMENT naming the field for a
// malformed value, NOT_FOUND for an id that is not ours, FAILED_PRECONDITION where the spec says),
// and after each case nothing outside the driver's data root or the given target may have been
// created, mounted over, chmodded or removed: a canary tree sits outside the roots exactly where
// the hostile paths point (symlinks, `..`, /proc/self/root, relative paths from the plugin's
// working directory), and is compared byte for byte after every case and after the suite. The
// mount table must gain nothing outside the test folder and nothing under the canary.
// Every assertion is a plain one: a wrong answer or a touched canary turns the run red.
import t from 'tap'
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { buildCanary, detachUnder, diffSnapshots, isUnder, mountPoints, restoreCanary, snapshotTree, type Snapshot } from './helpers/canary.js'
import { mountCap, testRig } from './helpers/driver.js'
import { mount, readMountInfo } from '../native/index.js'
import { codeName, isRoot, outcome, startIn, typedClient, type Outcome } from './helpers/rpc-outcome.js'

const OK = 0
const INVALID = 3
const DEADLINE = 4
const NOT_FOUND = 5
const EXISTS = 6
const PRECONDITION = 9
const ABORTED = 10
const UNIMPLEMENTED = 12
const INTERNAL = 13
const UNKNOWN = 2
const EXHAUSTED = 8
const OUT_OF_RANGE = 11

interface Case {
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
function idValues(): { label: string; v: string; code: number }[] {
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
function stringValues(): { label: string; v: string; bad: boolean }[] {
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

if (!isRoot()) {
  t.test('hostile ids, names, parameters and paths', { skip: 'needs root: starts the real driver and mounts filesystems' }, () => {})
} else {
  t.test('hostile ids, names, parameters and paths', async (t) => {
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
    const c = typedClient('Controller', ctl.socket)
    const n = typedClient('Node', node.socket)
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

    // ---------------------------------------------------------------- the table
    const cases: Case[] = []
    const add = (c0: Case) => cases.push(c0)

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

    // ---- Node.NodeStageVolume
    for (const x of idValues()) {
      add({ label: `NodeStageVolume volume_id: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_id: x.v })), expect: [x.code], field: 'volume_id' })
    }
    add({ label: 'NodeStageVolume volume_id: volume B (real, other volume) at a fresh path', call: () => n.NodeStageVolume(stageReq({ volume_id: B.volume_id, volume_context: B.volume_context })), expect: [OK],
      undo: async () => { const o = await outcome(n.NodeUnstageVolume({ volume_id: B.volume_id, staging_target_path: path.join(kub, 'staging/fresh') })); if (o.code) throw new Error(o.message) } })
    for (const p of malformedPaths) {
      add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: [INVALID], field: 'staging_target_path' })
    }
    for (const p of rootPaths) {
      add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: p.codes ?? [INVALID], field: 'staging_target_path' })
    }
    for (const p of statePaths) {
      add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: p.stage, field: 'staging_target_path', undo: unstage(p.v) })
    }
    for (const p of escapeStaging) {
      add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: escapeCodes(p.v), undo: unstage(p.v) })
    }
    const stagePathCases: { label: string; v: string; expect: number[]; field?: string; undo?: boolean; check?: () => string[] }[] = [
      { label: 'symlink -> canary/stage', v: path.join(kub, 'stg-link'), expect: [PRECONDITION] },
      { label: 'symlink -> the staged path of A', v: path.join(kub, 'lnk-staging'), expect: [PRECONDITION] },
      { label: 'dangling symlink', v: path.join(kub, 'pods/lnk-dangling'), expect: [PRECONDITION] },
      { label: 'under a dangling symlinked parent', v: path.join(kub, 'lnk-dangling-parent/x'), expect: [PRECONDITION] },
      { label: 'a regular file', v: path.join(kub, 'staging/file'), expect: [PRECONDITION], check: stillThere(path.join(kub, 'staging/file'), 'a regular file\n') },
      { label: 'under a regular file', v: path.join(kub, 'staging/file/x'), expect: [PRECONDITION] },
      { label: 'does not exist', v: path.join(kub, 'staging/missing'), expect: [PRECONDITION] },
      { label: 'parent does not exist', v: path.join(kub, 'nope/x'), expect: [PRECONDITION] },
      { label: '256-byte component', v: path.join(kub, 'staging', 's'.repeat(256)), expect: [INVALID, PRECONDITION], field: 'staging_target_path' },
      { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, PRECONDITION], field: 'staging_target_path' },
      { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [EXISTS, PRECONDITION], check: tmpfsMounted },
      { label: 'a directory on another filesystem (tmpfs)', v: path.join(tmpfs, 'stage'), expect: [OK], undo: true },
      { label: 'a 300-byte path', v: longStaging, expect: [OK], undo: true },
      { label: 'look-alike name (U+2113, U+2215), existing', v: path.join(kub, 'staging/ℓook∕alike'), expect: [OK], undo: true },
      { label: 'look-alike dots (U+2024), missing', v: path.join(kub, 'staging/\u2024\u2024'), expect: [PRECONDITION] },
      { label: 'inside the staged volume A (through its staging mount)', v: path.join(stagingA, 'sub'), expect: [INVALID, PRECONDITION], undo: true },
      { label: 'the staged path of A again (idempotent)', v: stagingA, expect: [OK] },
    ]
    for (const p of stagePathCases) {
      const c0: Case = { label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: p.expect }
      if (p.field) c0.field = p.field
      if (p.undo) c0.undo = unstage(p.v)
      if (p.check) c0.check = p.check
      add(c0)
    }
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
    for (const x of ctxValues) {
      add({ label: `NodeStageVolume volume_context: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_context: { ...A.volume_context, ...x.v } })), expect: x.expect, field: 'volume_context', undo: unstage(path.join(kub, 'staging/fresh')) })
    }
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
    for (const x of flagValues) {
      add({ label: `NodeStageVolume mount_flags: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_capability: { ...cap, mount: { fs_type: '', mount_flags: x.v, volume_mount_group: '' } } })), expect: x.expect, field: 'mount_flags', undo: unstage(path.join(kub, 'staging/fresh')) })
    }
    for (const x of stringValues().filter((s) => s.bad)) {
      add({ label: `NodeStageVolume fs_type: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_capability: { ...cap, mount: { fs_type: x.v, mount_flags: [], volume_mount_group: '' } } })), expect: [INVALID], field: 'fs_type' })
      add({ label: `NodeStageVolume volume_mount_group: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_capability: { ...cap, mount: { fs_type: '', mount_flags: [], volume_mount_group: x.v } } })), expect: [INVALID], field: 'volume_mount_group' })
    }

    // ---- Node.NodeUnstageVolume
    for (const x of idValues()) {
      // A well-formed id that is not ours names nothing staged: NOT_FOUND, or OK as a no-op.
      add({ label: `NodeUnstageVolume volume_id: ${x.label}`, call: () => n.NodeUnstageVolume({ volume_id: x.v, staging_target_path: path.join(kub, 'staging/fresh') }), expect: x.code === NOT_FOUND ? [NOT_FOUND, OK] : [x.code], field: 'volume_id' })
    }
    add({ label: 'NodeUnstageVolume volume_id: volume B at the staged path of A', call: () => n.NodeUnstageVolume({ volume_id: B.volume_id, staging_target_path: stagingA }), expect: [PRECONDITION],
      check: () => (mountPoints().includes(stagingA) ? [] : ['the staging mount of A was taken down by an unstage of B']) })
    add({ label: 'NodeUnstageVolume volume_id: unknown own-shape id at the staged path of A', call: () => n.NodeUnstageVolume({ volume_id: `v-${'0'.repeat(32)}`, staging_target_path: stagingA }), expect: [PRECONDITION, NOT_FOUND],
      check: () => (mountPoints().includes(stagingA) ? [] : ['the staging mount of A was taken down']) })
    for (const p of malformedPaths) {
      add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: [INVALID], field: 'staging_target_path' })
    }
    for (const p of rootPaths) {
      add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: p.codes ?? [INVALID], field: 'staging_target_path' })
    }
    for (const p of statePaths) {
      add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: [INVALID, OK], field: 'staging_target_path' })
    }
    for (const p of escapeStaging) {
      // Nothing is staged there: a no-op OK is fine as long as nothing is touched.
      add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: [OK, PRECONDITION, INVALID] })
    }
    const unstagePathCases: { label: string; v: string; expect: number[]; check?: () => string[] }[] = [
      { label: 'symlink -> canary/stage', v: path.join(kub, 'stg-link'), expect: [PRECONDITION, OK], check: symlinkKept(path.join(kub, 'stg-link')) },
      { label: 'symlink -> the staged path of A', v: path.join(kub, 'lnk-staging'), expect: [PRECONDITION, OK], check: () => (mountPoints().includes(stagingA) ? [] : ['unstage through a symlink took down the real staging mount']) },
      { label: 'a regular file', v: path.join(kub, 'staging/file'), expect: [PRECONDITION, OK], check: stillThere(path.join(kub, 'staging/file'), 'a regular file\n') },
      { label: 'does not exist', v: path.join(kub, 'staging/missing'), expect: [OK] },
      { label: 'parent does not exist', v: path.join(kub, 'nope/x'), expect: [OK] },
      { label: 'under a regular file', v: path.join(kub, 'staging/file/x'), expect: [OK, PRECONDITION] },
      { label: '256-byte component', v: path.join(kub, 'staging', 's'.repeat(256)), expect: [INVALID, OK] },
      { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, OK] },
      { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [PRECONDITION], check: tmpfsMounted },
      { label: 'a pod target of a foreign filesystem', v: path.join(tmpfs, 'pods'), expect: [OK, PRECONDITION], check: () => (existsSync(path.join(tmpfs, 'pods')) ? [] : ['the CO\'s directory was removed']) },
    ]
    for (const p of unstagePathCases) {
      const c0: Case = { label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: p.expect, field: 'staging_target_path' }
      if (p.check) c0.check = p.check
      add(c0)
    }

    add({
      label: "NodeUnstageVolume staging_target_path: a dir volume whose data holds a file named 'device'",
      call: async () => {
        const st = path.join(kub, 'staging/fresh')
        await n.NodeStageVolume(stageReq({ volume_id: B.volume_id, volume_context: B.volume_context, staging_target_path: st }))
        writeFileSync(path.join(data, 'volumes', B.volume_id, 'device'), 'user data named device\n')
        return n.NodeUnstageVolume({ volume_id: B.volume_id, staging_target_path: st })
      },
      expect: [OK],
      check: stillThere(path.join(data, 'volumes', B.volume_id, 'device'), 'user data named device\n'),
    })

    // ---- Node.NodePublishVolume
    for (const x of idValues()) {
      add({ label: `NodePublishVolume volume_id: ${x.label}`, call: () => n.NodePublishVolume(publishReq({ volume_id: x.v })), expect: [x.code], field: 'volume_id' })
    }
    add({ label: 'NodePublishVolume volume_id: volume B (not staged) with the staging path of A', call: () => n.NodePublishVolume(publishReq({ volume_id: B.volume_id, volume_context: B.volume_context })), expect: [PRECONDITION] })
    for (const p of malformedPaths) {
      add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: [INVALID], field: 'target_path' })
      if (p.v !== '') add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v })), expect: [INVALID], field: 'staging_target_path' })
    }
    add({ label: 'NodePublishVolume staging_target_path: empty', call: () => n.NodePublishVolume(publishReq({ staging_target_path: '' })), expect: [PRECONDITION] })
    for (const p of rootPaths) {
      add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: p.codes ?? [INVALID], field: 'target_path' })
      add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v })), expect: p.codes ?? [INVALID], field: 'staging_target_path' })
    }
    for (const p of statePaths) {
      add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: p.publish, field: 'target_path', undo: unpublishKeep(p.v) })
    }
    for (const p of escapeTargets) {
      add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: escapeCodes(p.v), undo: unpublishKeep(p.v) })
    }
    for (const p of escapeStaging) {
      add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v })), expect: escapeCodes(p.v) })
    }
    const targetCases: { label: string; v: string; expect: number[]; field?: string; undo?: boolean; check?: () => string[] }[] = [
      { label: 'symlink -> canary/empty', v: path.join(kub, 'pods/lnk-target'), expect: [PRECONDITION], check: symlinkKept(path.join(kub, 'pods/lnk-target')) },
      { label: 'dangling symlink -> canary/missing', v: path.join(kub, 'pods/lnk-dangling'), expect: [PRECONDITION] },
      { label: 'under a dangling symlinked parent', v: path.join(kub, 'lnk-dangling-parent/mount'), expect: [PRECONDITION] },
      { label: 'a regular file', v: path.join(kub, 'pods/file-target'), expect: [PRECONDITION], check: stillThere(path.join(kub, 'pods/file-target'), 'a regular file\n') },
      { label: 'under a regular file', v: path.join(kub, 'pods/file-target/mount'), expect: [PRECONDITION] },
      { label: 'parent does not exist', v: path.join(kub, 'pods/nope/mount'), expect: [PRECONDITION] },
      { label: 'a non-empty directory the CO made', v: path.join(kub, 'pods/nonempty'), expect: [OK, PRECONDITION], undo: false, check: stillThere(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n') },
      { label: '256-byte component', v: nameTooLong, expect: [INVALID, PRECONDITION], field: 'target_path' },
      { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, PRECONDITION], field: 'target_path' },
      { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [EXISTS, PRECONDITION], check: tmpfsMounted },
      { label: 'a new dir on another filesystem (tmpfs)', v: path.join(tmpfs, 'pods/mount'), expect: [OK], undo: true },
      { label: 'a 300-byte path', v: path.join(longDir, 'mount'), expect: [OK], undo: true },
      { label: 'look-alike name (U+2215 slashes with ..)', v: path.join(kub, 'pods/p1/a\u2215..\u2215..\u2215canary'), expect: [OK], undo: true },
      { label: 'look-alike fullwidth dots', v: path.join(kub, 'pods/p1/\uff0e\uff0e'), expect: [OK], undo: true },
      { label: 'look-alike one-dot leaders', v: path.join(kub, 'pods/p1/\u2024\u2024'), expect: [OK], undo: true },
      { label: 'same as the staging path', v: stagingA, expect: [INVALID, PRECONDITION], field: 'target_path', check: () => (mountPoints().includes(stagingA) ? [] : ['the staging mount was lost']) },
      { label: 'inside the staged volume A (through its staging mount)', v: path.join(stagingA, 'pod-mount'), expect: [INVALID, PRECONDITION], field: 'target_path', undo: true },
    ]
    for (const p of targetCases) {
      const c0: Case = { label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: p.expect }
      if (p.field) c0.field = p.field
      if (p.undo) c0.undo = unpublish(p.v)
      else if (p.expect.includes(OK)) c0.undo = unpublishKeep(p.v)
      if (p.check) c0.check = p.check
      add(c0)
    }
    const stagingCases: { label: string; v: string; expect: number[] }[] = [
      { label: 'symlink -> canary/stage', v: path.join(kub, 'stg-link'), expect: [PRECONDITION] },
      { label: 'symlink -> the staged path of A', v: path.join(kub, 'lnk-staging'), expect: [PRECONDITION] },
      { label: 'not staged (an empty dir)', v: path.join(kub, 'staging/fresh'), expect: [PRECONDITION] },
      { label: 'a regular file', v: path.join(kub, 'staging/file'), expect: [PRECONDITION] },
      { label: 'does not exist', v: path.join(kub, 'staging/missing'), expect: [PRECONDITION] },
      { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [PRECONDITION] },
      { label: '256-byte component', v: path.join(kub, 'staging', 's'.repeat(256)), expect: [INVALID, PRECONDITION] },
    ]
    for (const p of stagingCases) {
      add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v, target_path: path.join(kub, 'pods/p2/mount') })), expect: p.expect, field: 'staging_target_path', undo: unpublish(path.join(kub, 'pods/p2/mount')) })
    }
    for (const x of ctxValues) {
      add({ label: `NodePublishVolume volume_context: ${x.label}`, call: () => n.NodePublishVolume(publishReq({ volume_context: { ...A.volume_context, ...x.v } })), expect: x.expect, field: 'volume_context', undo: unpublish(path.join(kub, 'pods/p1/mount')) })
    }
    for (const x of flagValues) {
      add({ label: `NodePublishVolume mount_flags: ${x.label}`, call: () => n.NodePublishVolume(publishReq({ volume_capability: { ...cap, mount: { fs_type: '', mount_flags: x.v, volume_mount_group: '' } } })), expect: x.expect, field: 'mount_flags', undo: unpublish(path.join(kub, 'pods/p1/mount')) })
    }

    // ---- Node.NodeUnpublishVolume
    for (const x of idValues()) {
      add({ label: `NodeUnpublishVolume volume_id: ${x.label}`, call: () => n.NodeUnpublishVolume({ volume_id: x.v, target_path: path.join(kub, 'pods/p1/mount') }), expect: x.code === NOT_FOUND ? [NOT_FOUND, OK] : [x.code], field: 'volume_id' })
    }
    add({ label: 'NodeUnpublishVolume volume_id: not ours (the ephemeral path) at a non-empty directory the CO made', call: () => n.NodeUnpublishVolume({ volume_id: 'csi-0123456789abcdef', target_path: path.join(kub, 'pods/nonempty') }), expect: [PRECONDITION, OK],
      check: stillThere(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n') })
    add({ label: "NodeUnpublishVolume volume_id: volume B at A's publication", call: () => n.NodeUnpublishVolume({ volume_id: B.volume_id, target_path: pubA }), expect: [PRECONDITION],
      check: () => (mountPoints().includes(pubA) ? [] : ["A's publication was taken down by an unpublish of B"]) })
    add({ label: "NodeUnpublishVolume volume_id: unknown own-shape id at A's publication", call: () => n.NodeUnpublishVolume({ volume_id: `v-${'0'.repeat(32)}`, target_path: pubA }), expect: [PRECONDITION, NOT_FOUND],
      check: () => (mountPoints().includes(pubA) ? [] : ["A's publication was taken down"]) })
    add({ label: "NodePublishVolume volume_id: volume B onto A's publication", call: () => n.NodePublishVolume(publishReq({ volume_id: B.volume_id, volume_context: B.volume_context, target_path: pubA })), expect: [PRECONDITION, EXISTS] })
    for (const p of malformedPaths) {
      add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: [INVALID], field: 'target_path' })
    }
    for (const p of rootPaths) {
      add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: p.codes ?? [INVALID], field: 'target_path' })
    }
    for (const p of statePaths) {
      add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: [INVALID, PRECONDITION, OK], field: 'target_path',
        check: () => (existsSync(state) && existsSync(path.join(state, 'store/volumes')) ? [] : ['the state dir was removed']) })
    }
    for (const p of [...escapeTargets, ...escapeStaging]) {
      // Nothing is published there; whatever the answer, the canary must stay as it is.
      add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: [OK, PRECONDITION, INVALID] })
    }
    const unpublishCases: { label: string; v: string; expect: number[]; check?: () => string[] }[] = [
      { label: 'symlink -> canary/empty', v: path.join(kub, 'pods/lnk-target'), expect: [PRECONDITION, OK], check: symlinkKept(path.join(kub, 'pods/lnk-target')) },
      { label: 'a regular file', v: path.join(kub, 'pods/file-target'), expect: [PRECONDITION, OK], check: stillThere(path.join(kub, 'pods/file-target'), 'a regular file\n') },
      { label: 'a non-empty directory the CO made', v: path.join(kub, 'pods/nonempty'), expect: [PRECONDITION, OK], check: stillThere(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n') },
      { label: 'a character device node (not mounted)', v: path.join(kub, 'pods/devnode'), expect: [PRECONDITION, OK], check: () => (existsSync(path.join(kub, 'pods/devnode')) ? [] : ['the device node was removed']) },
      { label: 'symlinked parent -> canary/file.txt (regular file, not mounted)', v: path.join(kub, 'pods/lnk-parent/file.txt'), expect: [PRECONDITION, OK] },
      { label: '/proc/self/root + canary/secret (regular file, not mounted)', v: `/proc/self/root${canary}/secret`, expect: [INVALID, PRECONDITION, OK] },
      { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [PRECONDITION], check: tmpfsMounted },
      { label: 'the staged path of A (a mount of this volume that is not a publication)', v: stagingA, expect: [INVALID, PRECONDITION], check: () => (mountPoints().includes(stagingA) && existsSync(stagingA) ? [] : ['NodeUnpublishVolume took down the staging mount / removed the staging dir']) },
      { label: 'does not exist', v: path.join(kub, 'pods/p1/missing'), expect: [OK] },
      { label: 'parent does not exist', v: path.join(kub, 'pods/nope/mount'), expect: [OK] },
      { label: '256-byte component', v: nameTooLong, expect: [INVALID, OK] },
      { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, OK] },
    ]
    for (const p of unpublishCases) {
      const c0: Case = { label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: p.expect, field: 'target_path' }
      if (p.check) c0.check = p.check
      add(c0)
    }

    // ---- Node.NodeGetVolumeStats
    for (const x of idValues()) {
      add({ label: `NodeGetVolumeStats volume_id: ${x.label}`, call: () => n.NodeGetVolumeStats({ volume_id: x.v, volume_path: stagingA }), expect: [x.code], field: 'volume_id' })
    }
    for (const p of malformedPaths) {
      // csi-sanity asks for the stats of volume_path "some/path" and wants NOT_FOUND: a relative
      // path is somewhere the volume is not mounted. Every other malformed form is refused.
      const relative = p.v !== '' && !p.v.startsWith('/')
      add({ label: `NodeGetVolumeStats volume_path: ${p.label}`, call: () => n.NodeGetVolumeStats({ volume_id: A.volume_id, volume_path: p.v }), expect: relative ? [INVALID, NOT_FOUND] : [INVALID], field: 'volume_path' })
    }
    const statsCases: { label: string; v: string; expect: number[] }[] = [
      { label: 'symlink -> the staged path', v: path.join(kub, 'lnk-staging'), expect: [NOT_FOUND, OK] },
      { label: 'symlinked parent -> canary', v: path.join(kub, 'pods/lnk-parent/empty'), expect: [NOT_FOUND, OK] },
      { label: 'does not exist', v: path.join(kub, 'pods/p1/missing'), expect: [NOT_FOUND] },
      { label: '256-byte component', v: nameTooLong, expect: [INVALID, NOT_FOUND] },
      { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, NOT_FOUND] },
      { label: 'the data root', v: data, expect: [INVALID, NOT_FOUND, OK] },
    ]
    for (const p of statsCases) {
      add({ label: `NodeGetVolumeStats volume_path: ${p.label}`, call: () => n.NodeGetVolumeStats({ volume_id: A.volume_id, volume_path: p.v }), expect: p.expect, field: 'volume_path' })
    }
    for (const p of [...malformedPaths.filter((m) => /NUL|newline|4097/.test(m.label))]) {
      add({ label: `NodeGetVolumeStats staging_target_path: ${p.label}`, call: () => n.NodeGetVolumeStats({ volume_id: A.volume_id, volume_path: stagingA, staging_target_path: p.v }), expect: [INVALID], field: 'staging_target_path' })
    }
    for (const x of idValues().slice(0, 6)) {
      add({ label: `NodeExpandVolume volume_id: ${x.label}`, call: () => n.NodeExpandVolume({ volume_id: x.v, volume_path: stagingA }), expect: [x.code, UNIMPLEMENTED], field: 'volume_id' })
    }

    // ---- Controller.CreateVolume
    let nameSeq = 0
    const createReq = (over: Record<string, unknown>) => ({ name: `hostile-create-${++nameSeq}`, volume_capabilities: [cap], capacity_range: { required_bytes: String(1 << 20) }, ...over })
    add({ label: 'CreateVolume name: empty', call: () => c.CreateVolume(createReq({ name: '' })), expect: [INVALID], field: 'name' })
    // (LF in a name is the spec's business: see specNames below.)
    for (const x of stringValues().filter((v) => v.label !== 'newline')) {
      add({ label: `CreateVolume name: ${x.label}`, call: () => c.CreateVolume(createReq({ name: x.v })), expect: [x.bad ? INVALID : OK], field: 'name', undo: deleteCreated,
        check: () => volumesOutsideRoot() })
    }
    add({ label: 'CreateVolume name: an own-shape volume id', call: () => c.CreateVolume(createReq({ name: A.volume_id })), expect: [OK], undo: deleteCreated })
    const paramCases: { label: string; v: Record<string, string>; expect: number[] }[] = [
      { label: 'unknown key ../../canary', v: { '../../canary': 'x' }, expect: [INVALID] },
      { label: 'kind ../../canary', v: { kind: '../../canary' }, expect: [INVALID] },
      { label: 'kind with NUL', v: { kind: 'dir\0' }, expect: [INVALID] },
      { label: 'kind fullwidth', v: { kind: 'ｄｉｒ' }, expect: [INVALID] },
      { label: 'kind with trailing space', v: { kind: 'dir ' }, expect: [INVALID] },
      { label: '129-byte key', v: { ['csi.storage.k8s.io/' + 'k'.repeat(110)]: 'v' }, expect: [INVALID] },
      { label: '129-byte value', v: { 'csi.storage.k8s.io/pvc/name': 'v'.repeat(129) }, expect: [INVALID] },
      { label: 'key with NUL', v: { 'csi.storage.k8s.io/pvc\0': 'v' }, expect: [INVALID] },
      { label: 'value with newline', v: { 'csi.storage.k8s.io/pvc/name': 'a\nb' }, expect: [INVALID] },
      { label: 'provisioner key with .. value', v: { 'csi.storage.k8s.io/pvc/name': '../../canary' }, expect: [OK] },
      { label: 'key __proto__', v: JSON.parse('{"__proto__":"x"}') as Record<string, string>, expect: [INVALID, OK] },
      { label: 'key constructor', v: { constructor: 'x' }, expect: [INVALID] },
    ]
    for (const x of paramCases) {
      add({ label: `CreateVolume parameters: ${x.label}`, call: () => c.CreateVolume(createReq({ parameters: x.v })), expect: x.expect, field: 'parameters', undo: deleteCreated })
    }
    const segCases: { label: string; v: Record<string, string>; expect: number[] }[] = [
      { label: 'node ../../canary', v: { 'topology.tscsi.dev/node': '../../canary' }, expect: [EXHAUSTED] },
      { label: '129-byte key', v: { ['t'.repeat(129)]: 'e2e-node' }, expect: [INVALID] },
      { label: '129-byte value', v: { 'topology.tscsi.dev/node': 'n'.repeat(129) }, expect: [INVALID] },
      { label: 'value with NUL', v: { 'topology.tscsi.dev/node': 'e2e-node\0' }, expect: [INVALID] },
    ]
    for (const x of segCases) {
      add({ label: `CreateVolume accessibility_requirements.requisite: ${x.label}`, call: () => c.CreateVolume(createReq({ accessibility_requirements: { requisite: [{ segments: x.v }], preferred: [] } })), expect: x.expect, field: 'accessibility_requirements', undo: deleteCreated })
      add({ label: `CreateVolume accessibility_requirements.preferred: ${x.label}`, call: () => c.CreateVolume(createReq({ accessibility_requirements: { requisite: [], preferred: [{ segments: x.v }] } })), expect: x.expect.includes(EXHAUSTED) ? [OK, EXHAUSTED] : x.expect, field: 'accessibility_requirements', undo: deleteCreated })
    }
    for (const x of flagValues) {
      add({ label: `CreateVolume mount_flags: ${x.label}`, call: () => c.CreateVolume(createReq({ volume_capabilities: [{ ...cap, mount: { fs_type: '', mount_flags: x.v, volume_mount_group: '' } }] })),
        expect: x.v.some((f) => /[\0\n]/.test(f) || Buffer.byteLength(f) > 128) ? [INVALID] : [OK, INVALID], field: 'mount_flags', undo: deleteCreated })
    }
    for (const x of [{ label: 'negative', v: '-1' }, { label: 'beyond int64', v: '9223372036854775808' }]) {
      add({ label: `CreateVolume capacity_range.required_bytes: ${x.label}`, call: () => c.CreateVolume(createReq({ capacity_range: { required_bytes: x.v } })), expect: [INVALID, OUT_OF_RANGE], field: 'required_bytes', undo: deleteCreated })
    }

    // ---- Controller.DeleteVolume / ControllerGetVolume / ValidateVolumeCapabilities
    for (const x of idValues()) {
      // DeleteVolume of a volume that does not exist is OK (spec).
      add({ label: `DeleteVolume volume_id: ${x.label}`, call: () => c.DeleteVolume({ volume_id: x.v }), expect: [x.code === NOT_FOUND ? OK : x.code], field: 'volume_id',
        check: () => (existsSync(volDirA) && existsSync(path.join(data, 'volumes', B.volume_id)) ? [] : ['a real volume directory vanished']) })
      add({ label: `ControllerGetVolume volume_id: ${x.label}`, call: () => c.ControllerGetVolume({ volume_id: x.v }), expect: [x.code], field: 'volume_id' })
      add({ label: `ValidateVolumeCapabilities volume_id: ${x.label}`, call: () => c.ValidateVolumeCapabilities({ volume_id: x.v, volume_capabilities: [cap] }), expect: [x.code], field: 'volume_id' })
    }
    for (const x of paramCases.filter((p) => p.expect.length === 1 && p.expect[0] === INVALID && /129|NUL|newline/.test(p.label))) {
      add({ label: `ValidateVolumeCapabilities parameters: ${x.label}`, call: () => c.ValidateVolumeCapabilities({ volume_id: A.volume_id, volume_capabilities: [cap], parameters: x.v }), expect: [INVALID], field: 'parameters' })
    }
    for (const x of ctxValues.filter((v) => /129|NUL|newline/.test(v.label))) {
      add({ label: `ValidateVolumeCapabilities volume_context: ${x.label}`, call: () => c.ValidateVolumeCapabilities({ volume_id: A.volume_id, volume_capabilities: [cap], volume_context: x.v }), expect: [INVALID], field: 'volume_context' })
    }

    // ---- Controller.ControllerPublishVolume / ControllerUnpublishVolume (--enable-attach)
    for (const x of idValues()) {
      add({ label: `ControllerPublishVolume volume_id: ${x.label}`, call: () => c.ControllerPublishVolume({ volume_id: x.v, node_id: 'e2e-node', volume_capability: cap, readonly: false }), expect: [x.code], field: 'volume_id' })
      add({ label: `ControllerUnpublishVolume volume_id: ${x.label}`, call: () => c.ControllerUnpublishVolume({ volume_id: x.v, node_id: 'e2e-node' }), expect: [x.code === NOT_FOUND ? OK : x.code], field: 'volume_id' })
    }
    const nodeIds: { label: string; v: string; code: number }[] = [
      ...idValues().map((x) => ({ label: x.label, v: x.v, code: x.code })),
      { label: 'upper case of the real node', v: 'E2E-NODE', code: NOT_FOUND },
      { label: 'real node + zero width space', v: 'e2e-node\u200b', code: NOT_FOUND },
      { label: 'real node + trailing slash', v: 'e2e-node/', code: NOT_FOUND },
      { label: 'real node', v: 'e2e-node', code: OK },
    ]
    const unpubA = async () => { const o = await outcome(c.ControllerUnpublishVolume({ volume_id: A.volume_id, node_id: 'e2e-node' })); if (o.code) throw new Error(o.message) }
    for (const x of nodeIds) {
      add({ label: `ControllerPublishVolume node_id: ${x.label}`, call: () => c.ControllerPublishVolume({ volume_id: A.volume_id, node_id: x.v, volume_capability: cap, readonly: false }), expect: [x.code], field: 'node_id', undo: unpubA })
      add({ label: `ControllerUnpublishVolume node_id: ${x.label}`, call: () => c.ControllerUnpublishVolume({ volume_id: A.volume_id, node_id: x.v }), expect: [x.code === NOT_FOUND || x.code === OK || x.label === 'empty' ? OK : x.code], field: 'node_id' })
    }

    // ---- Controller.ListVolumes / GetCapacity
    for (const x of [...idValues().filter((v) => v.v !== ''), { label: 'a real id with a NUL', v: `${A.volume_id}\0`, code: INVALID }]) {
      // A well-formed id is a position in the sorted list (the last id of a page, possibly deleted since).
      add({ label: `ListVolumes starting_token: ${x.label}`, call: () => c.ListVolumes({ starting_token: x.v, max_entries: 1 }), expect: /^v-[0-9a-f]{32}$/.test(x.v) ? [ABORTED, OK] : [ABORTED] })
    }
    add({ label: 'ListVolumes max_entries: -1', call: () => c.ListVolumes({ max_entries: -1 }), expect: [INVALID], field: 'max_entries' })
    add({ label: 'ListVolumes max_entries: -2147483648', call: () => c.ListVolumes({ max_entries: -2147483648 }), expect: [INVALID], field: 'max_entries' })
    add({ label: 'ListVolumes max_entries: 2147483647', call: () => c.ListVolumes({ max_entries: 2147483647 }), expect: [OK] })
    for (const x of paramCases.filter((p) => !p.expect.includes(OK))) {
      add({ label: `GetCapacity parameters: ${x.label}`, call: () => c.GetCapacity({ volume_capabilities: [cap], parameters: x.v }), expect: x.expect, field: 'parameters' })
    }
    for (const x of segCases) {
      add({ label: `GetCapacity accessible_topology: ${x.label}`, call: () => c.GetCapacity({ volume_capabilities: [cap], accessible_topology: { segments: x.v } }), expect: x.expect.includes(EXHAUSTED) ? [OK] : x.expect, field: 'accessible_topology' })
    }
    // ---- Snapshots, content sources, modify (UNIMPLEMENTED while a version does not serve them)
    const snapIds = idValues().map((x) => ({ ...x, v: x.v.startsWith('v-') ? 's-' + x.v.slice(2) : x.v }))
    const deleteSnap = async (res: any) => {
      const o = await outcome(c.DeleteSnapshot({ snapshot_id: res.snapshot.snapshot_id }))
      if (o.code !== OK) throw new Error(`undo: DeleteSnapshot: ${codeName(o.code)} ${o.message}`)
    }
    let snapSeq = 0
    for (const x of idValues()) {
      add({ label: `CreateSnapshot source_volume_id: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: x.v, name: `hostile-snap-${++snapSeq}` }), expect: [x.code, UNIMPLEMENTED], field: 'source_volume_id', undo: deleteSnap })
      add({ label: `ControllerExpandVolume volume_id: ${x.label}`, call: () => c.ControllerExpandVolume({ volume_id: x.v, capacity_range: { required_bytes: '1' } }), expect: [x.code, UNIMPLEMENTED], field: 'volume_id' })
      add({ label: `ControllerModifyVolume volume_id: ${x.label}`, call: () => c.ControllerModifyVolume({ volume_id: x.v, mutable_parameters: {} }), expect: [x.code, UNIMPLEMENTED], field: 'volume_id' })
      add({ label: `CreateVolume volume_content_source.volume: ${x.label}`, call: () => c.CreateVolume(createReq({ volume_content_source: { volume: { volume_id: x.v } } })), expect: [x.code, UNIMPLEMENTED], field: 'volume_content_source', undo: deleteCreated })
    }
    for (const x of snapIds) {
      add({ label: `DeleteSnapshot snapshot_id: ${x.label}`, call: () => c.DeleteSnapshot({ snapshot_id: x.v }), expect: [x.code === NOT_FOUND ? OK : x.code, UNIMPLEMENTED], field: 'snapshot_id' })
      add({ label: `GetSnapshot snapshot_id: ${x.label}`, call: () => c.GetSnapshot({ snapshot_id: x.v }), expect: [x.code, UNIMPLEMENTED], field: 'snapshot_id' })
      // A filter that names nothing lists nothing (spec); a malformed one may be refused.
      add({ label: `ListSnapshots snapshot_id: ${x.label}`, call: () => c.ListSnapshots({ snapshot_id: x.v }), expect: x.code === INVALID ? [INVALID, OK, UNIMPLEMENTED] : [OK, UNIMPLEMENTED],
        check: (o) => (o.code === OK && o.res.entries.length > 0 ? ['a filter naming no snapshot listed some'] : []) })
      add({ label: `ListSnapshots source_volume_id: ${x.label}`, call: () => c.ListSnapshots({ source_volume_id: x.v.replace(/^s-/, 'v-') }), expect: x.code === INVALID ? [INVALID, OK, UNIMPLEMENTED] : [OK, UNIMPLEMENTED],
        check: (o) => (o.code === OK && o.res.entries.length > 0 ? ['a filter naming no volume listed some'] : []) })
      if (x.v !== '') add({ label: `ListSnapshots starting_token: ${x.label}`, call: () => c.ListSnapshots({ starting_token: x.v, max_entries: 1 }), expect: /^s-[0-9a-f]{32}$/.test(x.v) ? [ABORTED, OK, UNIMPLEMENTED] : [ABORTED, UNIMPLEMENTED] })
      add({ label: `CreateVolume volume_content_source.snapshot: ${x.label}`, call: () => c.CreateVolume(createReq({ volume_content_source: { snapshot: { snapshot_id: x.v } } })), expect: [x.code, UNIMPLEMENTED], field: 'volume_content_source', undo: deleteCreated })
    }
    for (const x of stringValues().filter((v) => v.label !== 'newline')) {
      add({ label: `CreateSnapshot name: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: B.volume_id, name: x.v }), expect: [x.bad ? INVALID : OK, UNIMPLEMENTED], field: 'name', undo: deleteSnap })
    }
    for (const x of paramCases.filter((p) => /129|NUL|newline/.test(p.label))) {
      add({ label: `CreateSnapshot parameters: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: B.volume_id, name: `hostile-snap-${++snapSeq}`, parameters: x.v }), expect: [INVALID, UNIMPLEMENTED], field: 'parameters', undo: deleteSnap })
      add({ label: `ControllerModifyVolume mutable_parameters: ${x.label}`, call: () => c.ControllerModifyVolume({ volume_id: B.volume_id, mutable_parameters: x.v }), expect: [INVALID, UNIMPLEMENTED], field: 'mutable_parameters' })
    }
    add({ label: 'ControllerModifyVolume mutable_parameters: unknown key ../../canary', call: () => c.ControllerModifyVolume({ volume_id: B.volume_id, mutable_parameters: { '../../canary': 'x' } }), expect: [INVALID, UNIMPLEMENTED], field: 'mutable_parameters' })
    // The spec's rule for names (CreateVolume, CreateSnapshot): any Unicode string within the
    // length limit except U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+007F-U+009F. So TAB,
    // LF and CR are allowed, and the C1 controls are not.
    const specNames: { label: string; v: string; ok: boolean }[] = [
      { label: 'TAB (allowed by the spec)', v: 'a\tb', ok: true },
      { label: 'LF (allowed by the spec)', v: 'a\nb', ok: true },
      { label: 'CR (allowed by the spec)', v: 'a\rb', ok: true },
      { label: 'U+0085 NEL (banned by the spec)', v: 'a\u0085b', ok: false },
      { label: 'U+009B CSI (banned by the spec)', v: '\u009b31mred', ok: false },
      { label: 'U+0080 (banned by the spec)', v: 'a\u0080', ok: false },
    ]
    for (const x of specNames) {
      add({ label: `CreateVolume name: ${x.label}`, call: () => c.CreateVolume(createReq({ name: x.v })), expect: [x.ok ? OK : INVALID], field: 'name', undo: deleteCreated })
      add({ label: `CreateSnapshot name: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: B.volume_id, name: x.v }), expect: [x.ok ? OK : INVALID, UNIMPLEMENTED], field: 'name', undo: deleteSnap })
    }

    // ---- Snapshot, restore and clone of a volume whose data a workload made hostile
    add({
      label: 'CreateSnapshot + restore + clone of a volume whose data holds symlinks to the canary, a fifo and a device node',
      call: async () => {
        const src = path.join(data, 'volumes', B.volume_id)
        symlinkSync(canary, path.join(src, 'esc-abs'))
        symlinkSync('../../../canary', path.join(src, 'esc-rel'))
        symlinkSync(path.join(canary, 'secret'), path.join(src, 'esc-file'))
        symlinkSync('/proc/self/root' + canary, path.join(src, 'esc-proc'))
        mkdirSync(path.join(src, 'dir'))
        symlinkSync('../../../../canary/sub', path.join(src, 'dir/esc-up'))
        execFileSync('mkfifo', [path.join(src, 'fifo')])
        execFileSync('mknod', [path.join(src, 'null'), 'c', '1', '3'])
        writeFileSync(path.join(src, 'plain.txt'), 'plain\n')
        const snap = await outcome(c.CreateSnapshot({ source_volume_id: B.volume_id, name: 'hostile-data-snap' }))
        if (snap.code === UNIMPLEMENTED) return { skipped: true }
        if (snap.code !== OK) throw Object.assign(new Error(snap.message), { code: snap.code, details: snap.message })
        const sid = snap.res.snapshot.snapshot_id
        for (let i = 0; i < 100; i++) {
          const g = await outcome(c.ListSnapshots({ snapshot_id: sid }))
          if (g.code === OK && g.res.entries[0]?.snapshot?.ready_to_use) break
          await new Promise((res) => setTimeout(res, 100))
        }
        // ABORTED means a copy is still running; retry as a CO would.
        const retry = async (f: () => Promise<unknown>) => {
          let o = await outcome(f())
          for (let k = 0; k < 100 && o.code === ABORTED; k++) {
            await new Promise((res) => setTimeout(res, 100))
            o = await outcome(f())
          }
          return o
        }
        const restored = await retry(() => c.CreateVolume(createReq({ name: 'hostile-restore', volume_content_source: { snapshot: { snapshot_id: sid } } })))
        const cloned = await retry(() => c.CreateVolume(createReq({ name: 'hostile-clone', volume_content_source: { volume: { volume_id: B.volume_id } } })))
        const problems: string[] = []
        for (const [what, o] of [['restore', restored], ['clone', cloned]] as const) {
          if (o.code !== OK) {
            problems.push(`${what}: ${codeName(o.code)} ${o.message}`)
            continue
          }
          const dst = path.join(data, 'volumes', o.res.volume.volume_id)
          for (const [name, link] of [['esc-abs', canary], ['esc-rel', '../../../canary'], ['esc-file', path.join(canary, 'secret')], ['esc-proc', '/proc/self/root' + canary], ['dir/esc-up', '../../../../canary/sub']] as const) {
            try {
              const st = lstatSync(path.join(dst, name))
              if (!st.isSymbolicLink() || readlinkSync(path.join(dst, name)) !== link) problems.push(`${what}: ${name} is not the same symlink (a ${st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other'})`)
            } catch {
              problems.push(`${what}: ${name} is missing`)
            }
          }
          // Nothing of the canary may have been read into the new volume (regular files only: a fifo would block).
          const leak = filesUnder(dst).filter((f) => /top secret|canary: nothing|deep canary/.test(readFileSync(f, 'utf8')))
          if (leak.length > 0) problems.push(`${what}: canary content was copied into the new volume: ${leak.join(', ')}`)
          await outcome(c.DeleteVolume({ volume_id: o.res.volume.volume_id }))
        }
        await outcome(c.DeleteSnapshot({ snapshot_id: sid }))
        return { problems }
      },
      expect: [OK],
      check: (o) => (o.res?.problems as string[] | undefined) ?? [],
    })
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

    // ---------------------------------------------------------------- run it
    const touched: string[] = []
    const badCodes: { label: string; text: string }[] = []
    let answered = 0
    for (const cs of cases) {
      const before = new Set(mountPoints())
      const o = await outcome(cs.call())
      answered++
      if (o.code === UNKNOWN || o.code === INTERNAL || o.code === DEADLINE || o.code === -1) badCodes.push({ label: cs.label, text: `${cs.label}: ${codeName(o.code)} ${o.message.slice(0, 160)}` })
      t.ok(cs.expect.includes(o.code), `${cs.label} -> ${codeName(o.code)} (want ${cs.expect.map(codeName).join('|')})${o.message ? `: ${o.message.slice(0, 200)}` : ''}`)
      if (o.code === INVALID && cs.field) t.match(o.message, cs.field, `${cs.label}: the message names ${cs.field}`)
      // Side effects: the canary, the mount table, and the case's own invariants.
      const problems: string[] = []
      const now = mountPoints()
      for (const mp of ourMountsOutside()) if (!before.has(mp)) problems.push(`new mount outside the test folder: ${mp}`)
      for (const mp of now) if (isUnder(mp, canary)) problems.push(`mount on the canary: ${mp}`)
      const diff = diffSnapshots(baseline, snapshotTree(canary))
      problems.push(...diff.map((d) => `canary changed: ${d}`))
      if (o.code === OK && cs.undo) {
        try {
          await cs.undo(o.res)
        } catch (e) {
          problems.push(String((e as Error).message))
        }
      }
      if (cs.check) problems.push(...cs.check(o))
      // Anything the case mounted and did not take down again is a leak (and would skew later cases).
      const leaked = [...mountPoints().filter((mp) => isUnder(mp, dir)), ...ourMountsOutside()].filter((mp) => !before.has(mp))
      if (leaked.length > 0) {
        problems.push(`mounts left by the case: ${leaked.join(', ')}`)
        for (const mp of leaked.reverse()) detachUnder(mp)
      }
      if (node.child.exitCode !== null || ctl.child.exitCode !== null) problems.push('a driver process exited')
      // Keep A staged and published for the next cases, whatever this one did.
      for (const [p, mk] of [[stagingA, () => n.NodeStageVolume({ volume_id: A.volume_id, staging_target_path: stagingA, volume_capability: cap, volume_context: A.volume_context })],
        [pubA, () => n.NodePublishVolume(publishReq({ target_path: pubA }))]] as const) {
        if (!mountPoints().includes(p)) {
          mkdirSync(p === stagingA ? p : path.dirname(p), { recursive: true })
          const r = await outcome(mk())
          problems.push(`repaired ${p} (re-mounted: ${codeName(r.code)})`)
        }
      }
      t.same(problems, [], `${cs.label}: no side effects outside the data root and the given path`)
      if (diff.length > 0 || now.some((mp) => isUnder(mp, canary))) {
        touched.push(cs.label)
        restoreCanary(canary)
        baseline = snapshotTree(canary)
      }
      if (node.child.exitCode !== null || ctl.child.exitCode !== null) break
    }
    t.comment(`hostile cases: ${cases.length} (answered ${answered})`)
    t.equal(answered, cases.length, 'every case was answered')
    t.same(badCodes.map((b) => b.text), [], 'no case answered UNKNOWN, INTERNAL or hung')

    // ---------------------------------------------------------------- after the suite
    t.equal(node.child.exitCode, null, 'the node plugin is still running')
    t.equal(ctl.child.exitCode, null, 'the controller is still running')
    // The real volume still works end to end.
    const target = path.join(kub, 'pods/p1/final')
    await n.NodePublishVolume(publishReq({ target_path: target }))
    t.equal(readFileSync(path.join(target, 'a.txt'), 'utf8'), 'volume A\n', 'volume A is intact and publishable')
    await n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: target })
    await n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: pubA })
    await n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: stagingA })
    t.same(mountPoints().filter((mp) => isUnder(mp, dir) && !fsMounts.has(mp)), [], 'no mount of a volume is left in the test folder')
    const outside = ourMountsOutside().filter((mp) => !baseMounts.has(mp))
    t.same(outside, [], 'the mount table gained nothing outside the test folder')
    await c.DeleteVolume({ volume_id: A.volume_id })
    await c.DeleteVolume({ volume_id: B.volume_id })
    const left = (await c.ListVolumes({})).entries.map((e: any) => e.volume.volume_id)
    t.same(left, [], 'every volume a case created was deleted again')
    // The whole canary, byte for byte, against the snapshot taken before the driver started.
    const final = diffSnapshots(original, snapshotTree(canary))
    t.same(final, [], 'the canary tree is byte-for-byte as before the suite')
    if (touched.length > 0) t.comment(`canary touched by ${touched.length} case(s): ${touched.join('; ')}`)
  })
}

