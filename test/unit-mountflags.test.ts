// node/mountflags.ts: mount_flags -> bind flags, mount_setattr's attributes, the remount's MS_*
// bits, and comparing a live mount's ST_* bits with what a repeated publish asks for.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { MOUNT_ATTR, MS, ST } from '../native/index.js'
import { asksForFlags, BIND_MOUNT_OPTIONS, flagsMismatch, mountAttr, parseBindFlags, remountBits, type BindFlags } from '../node/mountflags.js'

const NONE: BindFlags = { readonly: false, nosuid: false, nodev: false, noexec: false, noatime: false, nodiratime: false, strictatime: false }
const F = 'volume_capability.mount.mount_flags'

t.test('parseBindFlags: options, comma-joined entries, later options override earlier ones', async (t) => {
  const cases: [string[], boolean, Partial<BindFlags>][] = [
    [[], false, {}],
    [['rw', 'defaults', 'bind', 'rbind', ''], false, {}],
    [['ro'], false, { readonly: true }],
    [['rw'], true, { readonly: true }], // the request's readonly wins over rw
    [['nosuid,nodev', ' noexec '], false, { nosuid: true, nodev: true, noexec: true }],
    [['nosuid', 'suid'], false, {}],
    [['nodev', 'dev', 'noexec', 'exec'], false, {}],
    [['noatime'], false, { noatime: true }],
    [['noatime', 'relatime'], false, {}],
    [['noatime', 'strictatime'], false, { strictatime: true }],
    [['strictatime', 'noatime'], false, { noatime: true }],
    [['nodiratime'], false, { nodiratime: true }],
    [['nodiratime', 'diratime'], false, {}],
  ]
  for (const [flags, ro, want] of cases) t.same(parseBindFlags(F, flags, ro), { ...NONE, ...want }, `${JSON.stringify(flags)} readonly=${ro}`)
})

t.test('parseBindFlags: anything a bind cannot apply is INVALID_ARGUMENT naming entry and option', async (t) => {
  const cases: [string[], RegExp][] = [
    [['rw', 'uid=1000'], /mount_flags\[1\].*"uid=1000"/],
    [['nosuid,context=system_u:object_r'], /mount_flags\[0\].*context=/],
    [['RO'], /"RO"/],
    [['ro=1'], /"ro=1"/],
    [['sync'], /"sync"/],
    [['remount'], /"remount"/],
    [['loop'], /"loop"/],
  ]
  for (const [flags, re] of cases) t.throws(() => parseBindFlags(F, flags, false), { code: status.INVALID_ARGUMENT, message: re }, JSON.stringify(flags))
  t.ok(BIND_MOUNT_OPTIONS.includes('nosuid') && !BIND_MOUNT_OPTIONS.includes('uid'))
})

t.test('parseBindFlags: Object.prototype names are not mount options', async (t) => {
  for (const opt of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
    let got: unknown = 'accepted'
    try {
      parseBindFlags(F, [opt], false)
    } catch (e) {
      got = (e as { code?: unknown }).code ?? (e as Error).name
    }
    t.equal(got, status.INVALID_ARGUMENT, `${opt}: INVALID_ARGUMENT (got ${String(got)})`)
  }
})

t.test('asksForFlags is true exactly when some flag is set', async (t) => {
  t.equal(asksForFlags(NONE), false)
  for (const k of Object.keys(NONE) as (keyof BindFlags)[]) t.equal(asksForFlags({ ...NONE, [k]: true }), true, k)
})

t.test('mountAttr: what is asked is set, nothing is cleared but the atime field for a new atime mode', async (t) => {
  const A = MOUNT_ATTR
  const cases: [string, Partial<BindFlags>, { set: number; clear: number }][] = [
    ['nothing asked', {}, { set: 0, clear: 0 }],
    ['readonly', { readonly: true }, { set: A.RDONLY, clear: 0 }],
    ['nosuid+nodev+noexec', { nosuid: true, nodev: true, noexec: true }, { set: A.NOSUID | A.NODEV | A.NOEXEC, clear: 0 }],
    ['noatime', { noatime: true }, { set: A.NOATIME, clear: A.ATIME }],
    ['strictatime', { strictatime: true }, { set: A.STRICTATIME, clear: A.ATIME }],
    ['nodiratime keeps the atime mode', { nodiratime: true }, { set: A.NODIRATIME, clear: 0 }],
    ['everything', { readonly: true, nosuid: true, nodev: true, noexec: true, noatime: true, nodiratime: true },
      { set: A.RDONLY | A.NOSUID | A.NODEV | A.NOEXEC | A.NOATIME | A.NODIRATIME, clear: A.ATIME }],
  ]
  for (const [what, f, want] of cases) t.same(mountAttr({ ...NONE, ...f }), want, what)
  for (const k of Object.keys(NONE) as (keyof BindFlags)[]) {
    const a = mountAttr({ ...NONE, [k]: true })
    t.ok(a.set !== 0 || a.clear !== 0, `${k} changes something`)
    t.equal(a.set & A.ATIME & ~a.clear, 0, `${k}: an atime mode is never set without clearing the field`)
  }
})

t.test('remountBits: requested flags, plus every flag the mount already has', async (t) => {
  const base = MS.BIND | MS.REMOUNT
  const cases: [string, Partial<BindFlags>, number, number][] = [
    ['nothing asked, nothing current', {}, 0, base | MS.RELATIME],
    ['readonly', { readonly: true }, 0, base | MS.RDONLY | MS.RELATIME],
    ['nosuid+nodev+noexec', { nosuid: true, nodev: true, noexec: true }, 0, base | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.RELATIME],
    ['current ro kept', {}, ST.RDONLY, base | MS.RDONLY | MS.RELATIME],
    ['current nosuid/nodev/noexec kept', { readonly: true }, ST.NOSUID | ST.NODEV | ST.NOEXEC,
      base | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC | MS.RELATIME],
    ['noatime asked', { noatime: true }, ST.RELATIME, base | MS.NOATIME],
    ['current noatime kept', {}, ST.NOATIME, base | MS.NOATIME],
    ['strictatime asked', { strictatime: true }, 0, base | MS.STRICTATIME],
    ['nodiratime asked', { nodiratime: true }, 0, base | MS.NODIRATIME | MS.RELATIME],
    ['current nodiratime kept', {}, ST.NODIRATIME, base | MS.NODIRATIME | MS.RELATIME],
  ]
  for (const [what, f, current, want] of cases) t.equal(remountBits({ ...NONE, ...f }, current), want, what)
  const bits = remountBits(NONE, 0)
  t.notOk(bits & MS.NOATIME && bits & MS.RELATIME, 'never two atime modes at once')
})

t.test('flagsMismatch: readonly must agree; requested restrictions must be present', async (t) => {
  const cases: [string, Partial<BindFlags>, number, RegExp | undefined][] = [
    ['rw asked, rw mounted', {}, ST.RELATIME, undefined],
    ['ro asked, ro mounted', { readonly: true }, ST.RDONLY, undefined],
    ['ro asked, rw mounted', { readonly: true }, 0, /read-write/],
    ['rw asked, ro mounted', {}, ST.RDONLY, /read-only/],
    ['nosuid asked, present', { nosuid: true }, ST.NOSUID, undefined],
    ['nosuid asked, missing', { nosuid: true }, 0, /nosuid/],
    ['several missing are all named', { nodev: true, noexec: true }, 0, /nodev, noexec/],
    ['noatime asked, missing', { noatime: true }, ST.RELATIME, /noatime/],
    ['extra restrictions on the mount are fine', {}, ST.NOSUID | ST.NODEV, undefined],
  ]
  for (const [what, f, st, want] of cases) {
    const got = flagsMismatch({ ...NONE, ...f }, st)
    if (want) t.match(got, want, what)
    else t.equal(got, undefined, what)
  }
})

t.test('flagsMismatch also notices a missing nodiratime', async (t) => {
  t.match(flagsMismatch({ ...NONE, nodiratime: true }, ST.RELATIME), /nodiratime/, 'nodiratime asked, mount lacks it')
})
