// Table tests for common/validate.ts: every request field is checked here before it can become
// part of a path, so hostile values matter as much as good ones.
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { CsiError } from '../common/errors.js'
import {
  checkMap, isNodeId, MAX_PATH_BYTES, ownIdOrUndefined, parseBytes, requireId, requireNodeId, requirePath, requireString,
} from '../common/validate.js'

const HEX32 = '0123456789abcdef0123456789abcdef'

/** Runs fn and returns the CsiError code it threw, 'ok' when it returned, or the thrown value. */
function outcome(fn: () => unknown): number | 'ok' | unknown {
  try {
    fn()
    return 'ok'
  } catch (e) {
    return e instanceof CsiError ? e.code : e
  }
}

t.test('requireString: printable, non-empty, at most 128 bytes', async (t) => {
  const cases: [unknown, number | 'ok'][] = [
    ['pvc-1', 'ok'],
    ['x'.repeat(128), 'ok'],
    ['x'.repeat(129), status.INVALID_ARGUMENT],
    ['é'.repeat(64), 'ok'], // 128 bytes
    ['é'.repeat(65), status.INVALID_ARGUMENT], // 130 bytes, 65 characters
    ['', status.INVALID_ARGUMENT],
    [undefined, status.INVALID_ARGUMENT],
    [null, status.INVALID_ARGUMENT],
    [42, status.INVALID_ARGUMENT],
    ['a\u0000b', status.INVALID_ARGUMENT],
    ['a\nb', status.INVALID_ARGUMENT],
    ['a\u007fb', status.INVALID_ARGUMENT],
    ['a\u001bb', status.INVALID_ARGUMENT],
    ['../..', 'ok'], // a name, not a path: requireId/requirePath guard paths
  ]
  for (const [v, want] of cases) t.equal(outcome(() => requireString('name', v)), want, JSON.stringify(v))
  t.throws(() => requireString('the_field', ''), { message: /^the_field: / }, 'the message starts with the field name')
})

t.test('requireId: our ids pass; malformed is INVALID_ARGUMENT; well-formed but foreign is NOT_FOUND', async (t) => {
  const cases: [unknown, string, number | 'ok'][] = [
    [`v-${HEX32}`, 'v', 'ok'],
    [`s-${HEX32}`, 's', 'ok'],
    [`s-${HEX32}`, 'v', status.NOT_FOUND], // a snapshot id where a volume id is wanted
    [`v-${HEX32.toUpperCase()}`, 'v', status.NOT_FOUND],
    [`v-${HEX32}0`, 'v', status.NOT_FOUND],
    [`v-${HEX32.slice(1)}`, 'v', status.NOT_FOUND],
    [`v-${HEX32}/..`, 'v', status.NOT_FOUND],
    ['../../etc/passwd', 'v', status.NOT_FOUND],
    ['v-../../x', 'v', status.NOT_FOUND],
    [`v-${HEX32}\n`, 'v', status.INVALID_ARGUMENT],
    [`v-${HEX32}\u0000`, 'v', status.INVALID_ARGUMENT],
    ['', 'v', status.INVALID_ARGUMENT],
    [undefined, 'v', status.INVALID_ARGUMENT],
    ['v'.repeat(129), 'v', status.INVALID_ARGUMENT],
  ]
  for (const [v, kind, want] of cases) t.equal(outcome(() => requireId('volume_id', v, kind as 'v')), want, `${JSON.stringify(v)} as ${kind}`)
})

t.test('ownIdOrUndefined: undefined for foreign ids, INVALID_ARGUMENT for malformed ones', async (t) => {
  t.equal(ownIdOrUndefined('volume_id', `v-${HEX32}`, 'v'), `v-${HEX32}`)
  t.equal(ownIdOrUndefined('volume_id', 'someone-elses-id', 'v'), undefined)
  t.equal(ownIdOrUndefined('volume_id', `s-${HEX32}`, 'v'), undefined)
  t.equal(outcome(() => ownIdOrUndefined('volume_id', '', 'v')), status.INVALID_ARGUMENT)
  t.equal(outcome(() => ownIdOrUndefined('volume_id', 'a\u0000', 'v')), status.INVALID_ARGUMENT)
})

t.test('node ids: DNS-like names up to 128 characters', async (t) => {
  for (const ok of ['node-a', 'ip-10-0-0-1.ec2.internal', 'N_1', 'a', 'a'.repeat(128)]) t.ok(isNodeId(ok), ok)
  for (const bad of ['', '-a', 'a-', '.a', 'a/b', '../x', 'a b', 'a'.repeat(129), 'ü']) t.notOk(isNodeId(bad), JSON.stringify(bad))
  t.equal(outcome(() => requireNodeId('node_id', '../x')), status.INVALID_ARGUMENT)
})

t.test('requirePath: absolute and normalised only', async (t) => {
  const cases: [unknown, number | 'ok'][] = [
    ['/var/lib/kubelet/pods/x/mount', 'ok'],
    ['/a', 'ok'],
    ['/a/..b/c..', 'ok'], // dots inside names are fine
    ['/', status.INVALID_ARGUMENT],
    ['', status.INVALID_ARGUMENT],
    [undefined, status.INVALID_ARGUMENT],
    [7, status.INVALID_ARGUMENT],
    ['relative/path', status.INVALID_ARGUMENT],
    ['./x', status.INVALID_ARGUMENT],
    ['/a/../b', status.INVALID_ARGUMENT],
    ['/..', status.INVALID_ARGUMENT],
    ['/a/./b', status.INVALID_ARGUMENT],
    ['/a//b', status.INVALID_ARGUMENT],
    ['//a', status.INVALID_ARGUMENT],
    ['/a/', status.INVALID_ARGUMENT],
    ['/a/b\u0000/c', status.INVALID_ARGUMENT],
    ['/a/b\n', status.INVALID_ARGUMENT],
    ['/' + Array(40).fill('a'.repeat(100)).join('/'), 'ok'],
    ['/' + 'a'.repeat(255), 'ok'],
    ['/' + 'a'.repeat(256), status.INVALID_ARGUMENT],
    ['/' + Array(41).fill('a'.repeat(100)).join('/'), status.INVALID_ARGUMENT],
  ]
  for (const [v, want] of cases) t.equal(outcome(() => requirePath('target_path', v)), want, JSON.stringify(v)?.slice(0, 60))
  t.throws(() => requirePath('target_path', 'rel'), { message: /target_path/ })
})

t.test('checkMap: string maps with 128-byte keys and values', async (t) => {
  t.same(checkMap('parameters', undefined), {})
  t.same(checkMap('parameters', null), {})
  t.same(checkMap('parameters', { a: '1', b: '' }), { a: '1', b: '' })
  t.equal(outcome(() => checkMap('parameters', 'a=1')), status.INVALID_ARGUMENT)
  t.equal(outcome(() => checkMap('parameters', { a: 1 })), status.INVALID_ARGUMENT)
  t.equal(outcome(() => checkMap('parameters', { a: null })), status.INVALID_ARGUMENT)
  t.equal(outcome(() => checkMap('parameters', { ['k'.repeat(129)]: 'v' })), status.INVALID_ARGUMENT)
  t.equal(outcome(() => checkMap('parameters', { k: 'v'.repeat(129) })), status.INVALID_ARGUMENT)
  t.equal(outcome(() => checkMap('parameters', { 'k\u0000': 'v' })), status.INVALID_ARGUMENT)
  t.throws(() => checkMap('parameters', { a: 1 }), { message: /parameters\[a\]/ }, 'names the key')
  t.equal(outcome(() => checkMap('parameters', ['a'])), status.INVALID_ARGUMENT, 'an array is not a map')
})

t.test('parseBytes: non-negative int64 decimal strings; absent means 0', async (t) => {
  const cases: [unknown, bigint | number][] = [
    [undefined, 0n],
    [null, 0n],
    ['', 0n],
    ['0', 0n],
    ['1073741824', 1073741824n],
    [1048576, 1048576n],
    ['9223372036854775807', 9223372036854775807n],
    ['9223372036854775808', status.INVALID_ARGUMENT],
    ['18446744073709551615', status.INVALID_ARGUMENT],
    ['-1', status.INVALID_ARGUMENT],
    [-1, status.INVALID_ARGUMENT],
    ['1.5', status.INVALID_ARGUMENT],
    [1.5, status.INVALID_ARGUMENT],
    ['1e9', status.INVALID_ARGUMENT],
    ['10GiB', status.INVALID_ARGUMENT],
    ['abc', status.INVALID_ARGUMENT],
    [Number.NaN, status.INVALID_ARGUMENT],
    [Number.POSITIVE_INFINITY, status.INVALID_ARGUMENT],
    [{}, status.INVALID_ARGUMENT],
  ]
  for (const [v, want] of cases) {
    let got: unknown
    try {
      got = parseBytes('capacity_range.required_bytes', v)
    } catch (e) {
      got = e instanceof CsiError ? e.code : e
    }
    t.equal(got, want, typeof v === "number" ? String(v) : String(JSON.stringify(v)))
  }
})

t.test('parseBytes accepts only decimal integers, not other things BigInt() coerces', async (t) => {
  for (const v of ['0x10', '0b11', true, [], ['5']]) {
    t.equal(outcome(() => parseBytes('capacity_range.required_bytes', v)), status.INVALID_ARGUMENT, JSON.stringify(v))
  }
})
