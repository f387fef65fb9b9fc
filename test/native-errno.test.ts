import t from 'tap'
import { readFileSync } from 'node:fs'
import { ErrnoError, errnoMessage, errnoName, errnoNumber, fromNodeError, isErrno } from '../native/index.js'

t.test('ErrnoError fields and message', async (t) => {
  const e = new ErrnoError(1, 'mount', '/b', '/a')
  t.ok(e instanceof Error)
  t.ok(e instanceof ErrnoError)
  t.equal(e.name, 'ErrnoError')
  t.equal(e.errno, 1)
  t.equal(e.code, 'EPERM')
  t.equal(e.syscall, 'mount')
  t.equal(e.path, '/b')
  t.equal(e.source, '/a')
  t.equal(e.message, 'mount(/a -> /b): EPERM (Operation not permitted)')

  const p = new ErrnoError(2, 'statx', '/nope')
  t.equal(p.message, 'statx(/nope): ENOENT (No such file or directory)')
  t.equal(p.source, undefined)
  t.notOk('source' in p, 'absent optional fields are not set at all')

  const bare = new ErrnoError(9, 'close')
  t.equal(bare.message, 'close: EBADF (Bad file descriptor)')
  t.equal(bare.path, undefined)

  const unknown = new ErrnoError(4000, 'ioctl')
  t.equal(unknown.code, 'ERRNO_4000')
  t.match(unknown.message, /^ioctl: ERRNO_4000 \(Unknown error 4000\)$/)

  t.ok(isErrno(p))
  t.ok(isErrno(p, 'ENOENT'))
  t.notOk(isErrno(p, 'EPERM'))
  t.notOk(isErrno(new Error('x')))
})

t.test('errno name table', async (t) => {
  t.equal(errnoNumber('ENOENT'), 2)
  t.equal(errnoNumber('EPERM'), 1)
  t.equal(errnoNumber('EBUSY'), 16)
  t.equal(errnoNumber('EINVAL'), 22)
  t.equal(errnoName(2), 'ENOENT')
  t.equal(errnoName(1), 'EPERM')
  t.equal(errnoName(16), 'EBUSY')
  t.equal(errnoName(22), 'EINVAL')
  t.equal(errnoName(40), 'ELOOP')
  t.equal(errnoName(30), 'EROFS')
  // Aliased numbers resolve to the name Node's own fs errors use.
  t.equal(errnoName(11), 'EAGAIN')
  t.equal(errnoNumber('EWOULDBLOCK'), 11)
  t.equal(errnoMessage(22), 'Invalid argument')
  // Not in the local table: falls back to libuv's text, capitalised.
  t.match(errnoMessage(errnoNumber('EPIPE')!), /^Broken pipe$/i)
})

t.test('fromNodeError on a real fs error', async (t) => {
  let caught: unknown
  try {
    readFileSync('/definitely/not/here')
  } catch (e) {
    caught = e
  }
  t.ok(caught, 'fs threw')
  const e = fromNodeError(caught, 'open')
  t.ok(e instanceof ErrnoError)
  t.equal(e.errno, 2, 'negative Node errno becomes positive')
  t.equal(e.code, 'ENOENT')
  t.equal(e.syscall, 'open')
  t.equal(e.path, '/definitely/not/here', 'path taken from the Node error')
  t.equal(e.cause, caught)

  const withPath = fromNodeError(caught, 'read', '/override')
  t.equal(withPath.path, '/override')

  // Code-only errors (no numeric errno) are still recognised.
  const codeOnly = Object.assign(new Error('busy'), { code: 'EBUSY' })
  t.equal(fromNodeError(codeOnly, 'umount2').errno, 16)

  // An ErrnoError passes through untouched.
  const orig = new ErrnoError(13, 'open', '/x')
  t.equal(fromNodeError(orig, 'other'), orig)
})

t.test('fromNodeError re-throws non-errno errors unchanged', async (t) => {
  const plain = new TypeError('not a syscall failure')
  t.throws(() => fromNodeError(plain, 'open'), plain)
  const wrongCode = Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' })
  t.throws(() => fromNodeError(wrongCode, 'open'), wrongCode)
  t.throws(() => fromNodeError('a string', 'open'), 'a string' as unknown as Error)
  t.throws(() => fromNodeError(null, 'open'))
})
