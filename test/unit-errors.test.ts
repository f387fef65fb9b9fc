// common/errors.ts (the one error type and its translation) and common/log.ts (secret redaction).
import { status } from '@grpc/grpc-js'
import t from 'tap'
import { codeName, CsiError, invalid, toCsiError } from '../common/errors.js'
import { redact } from '../common/log.js'
import { ErrnoError, errnoNumber, fromNodeError } from '../native/index.js'

function nodeError(code: string, message = `${code}: boom`): Error {
  return Object.assign(new Error(message), { code })
}

t.test('CsiError carries a numeric code and the message as details', async (t) => {
  const e = invalid('volume_id', 'must not be empty')
  t.ok(e instanceof Error)
  t.ok(e instanceof CsiError)
  t.equal(e.code, status.INVALID_ARGUMENT)
  t.equal(e.message, 'volume_id: must not be empty')
  t.equal(e.details, e.message)
  t.equal(e.name, 'CsiError')
})

t.test('toCsiError maps errno codes to the codes the spec names', async (t) => {
  const cases: [string, status][] = [
    ['ENOENT', status.NOT_FOUND],
    ['ENOSPC', status.RESOURCE_EXHAUSTED],
    ['EDQUOT', status.RESOURCE_EXHAUSTED],
    ['EBUSY', status.FAILED_PRECONDITION],
    ['ENOTDIR', status.FAILED_PRECONDITION],
    ['ELOOP', status.FAILED_PRECONDITION],
    ['EROFS', status.FAILED_PRECONDITION],
    ['EPERM', status.INTERNAL],
    ['EIO', status.INTERNAL],
    ['ERR_INVALID_ARG_TYPE', status.INTERNAL],
    ['', status.INTERNAL],
  ]
  for (const [code, want] of cases) {
    const got = toCsiError(nodeError(code))
    t.equal(got.code, want, `${JSON.stringify(code)} -> ${status[want]}`)
    t.equal(got.message, `${code}: boom`, 'message kept')
  }
  const errno = new ErrnoError(errnoNumber('ENOENT')!, 'mkdir', '/x')
  t.equal(toCsiError(errno).code, status.NOT_FOUND, 'ErrnoError from native/')
  t.match(toCsiError(errno).message, /mkdir\(\/x\)/, 'syscall and path in the message')
  t.equal(toCsiError(fromNodeError(nodeError('EBUSY'), 'rmdir', '/y')).code, status.FAILED_PRECONDITION)
})

t.test('toCsiError never answers UNKNOWN or a non-number, whatever was thrown', async (t) => {
  const thrown: unknown[] = [
    new Error('plain'), new TypeError('type'), 'a string', 42, undefined, null, { code: 'ENOENT' },
    Object.assign(new Error('numeric code'), { code: 14 }), // e.g. a grpc ServiceError
    Object.assign(new Error('odd'), { code: 'constructor' }),
    Object.assign(new Error('odd'), { code: 'toString' }),
    Object.assign(new Error('odd'), { code: '__proto__' }),
    Object.assign(new Error('odd'), { code: 'hasOwnProperty' }),
  ]
  for (const e of thrown) {
    const got = toCsiError(e)
    const label = e instanceof Error ? `Error code=${String((e as { code?: unknown }).code)}` : String(e)
    const isValid = typeof got.code === 'number' && got.code !== status.UNKNOWN && got.code !== status.OK && status[got.code] !== undefined
    t.ok(got instanceof CsiError, `${label}: a CsiError`)
    t.ok(isValid, `${label}: a real gRPC code (got ${typeof got.code})`)
  }
  const same = invalid('x', 'y')
  t.equal(toCsiError(same), same, 'a CsiError passes through unchanged')
})

t.test('codeName names every status and survives unknown numbers', async (t) => {
  t.equal(codeName(status.NOT_FOUND), 'NOT_FOUND')
  t.equal(codeName(status.OK), 'OK')
  t.equal(codeName(999), 'CODE_999')
})

t.test('redact hides the values of every secrets map, keeping the keys', async (t) => {
  const req = {
    volume_id: 'v-1',
    secrets: { password: 'hunter2', user: 'admin' },
    node_stage_secrets: { token: 't0k' },
    nested: { controller_expand_secrets: { k: 'v' }, list: [{ node_publish_secrets: { a: 'b' } }] },
    volume_context: { 'not-secret': 'visible' },
  }
  const copy = JSON.parse(JSON.stringify(req))
  const out = redact(req) as any
  t.same(out.secrets, { password: '***', user: '***' })
  t.same(out.node_stage_secrets, { token: '***' })
  t.same(out.nested.controller_expand_secrets, { k: '***' }, 'any *_secrets field, nested')
  t.same(out.nested.list[0].node_publish_secrets, { a: '***' }, 'inside arrays')
  t.same(out.volume_context, { 'not-secret': 'visible' }, 'other maps untouched')
  t.equal(out.volume_id, 'v-1')
  t.same(req, copy, 'the input is not modified')
  t.notMatch(JSON.stringify(out), /hunter2|t0k|admin/)
  t.equal(redact(null), null)
  t.equal(redact('s'), 's')
})

t.test('redact never lets a secret value through, whatever its shape', async (t) => {
  const out = JSON.stringify(redact({ secrets: 'hunter2', node_stage_secrets: ['t0k'] }))
  t.notMatch(out, /hunter2/, 'a string where a map was expected')
  t.notMatch(out, /t0k/, 'an array of secrets')
})
