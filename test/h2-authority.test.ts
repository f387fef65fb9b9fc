// Why tscsi fronts its gRPC servers (common/h2front.ts), proven against Node itself, and the
// HPACK repair (common/hpack.ts) byte by byte. The client-matrix test runs real clients; this one
// sends hand-made frames, to reach what no client library lets a test choose.
import t, { type Test } from 'tap'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import * as grpc from '@grpc/grpc-js'
import { HpackError, TableMirror, acceptableAuthority, huffmanDecode, repairHeaderBlock } from '../common/hpack.js'
import { csiPackage, listen, parseEndpoint } from '../common/grpc.js'
import { EMPTY_MESSAGE, TYPE, connect, frame, grpcRequest, literal } from './helpers/h2-raw.js'

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ''), 'hex')
const END_STREAM = 0x1
const END_HEADERS = 0x4

async function bareServer(t: Test): Promise<{ port: number; streams: string[] }> {
  const streams: string[] = []
  const s = http2.createServer()
  s.on('stream', (st, headers) => {
    streams.push(String(headers[':authority']))
    st.respond({ ':status': 200 })
    st.end()
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise<void>((r) => s.close(() => r())))
  return { port: (s.address() as AddressInfo).port, streams }
}

t.test('the root cause: a bare node:http2 server resets a stream whose :authority holds "/"', async (t) => {
  const { port, streams } = await bareServer(t)
  const c = await connect({ port })
  t.teardown(() => c.close())
  c.send(frame(TYPE.HEADERS, END_HEADERS | END_STREAM, 1, grpcRequest(literal(':authority', '127.0.0.1:10000'))))
  t.equal(await c.outcome(1), 'answered', 'HOST:PORT is answered')
  // What csc (grpc-go 1.19) sends: the whole endpoint, the rest of its request being ordinary.
  c.send(frame(TYPE.HEADERS, END_HEADERS | END_STREAM, 3, grpcRequest(literal(':authority', 'tcp://127.0.0.1:10000'))))
  t.equal(await c.outcome(3), 'RST_STREAM 1', 'tcp://HOST:PORT is reset with PROTOCOL_ERROR (1)')
  c.send(frame(TYPE.HEADERS, END_HEADERS | END_STREAM, 5, grpcRequest(literal(':authority', '/run/csi/csi.sock'))))
  t.equal(await c.outcome(5), 'RST_STREAM 1', 'a socket path is reset too')
  t.same(streams, ['127.0.0.1:10000'], "the refused streams never reach the 'stream' event")
})

t.test('acceptableAuthority agrees with nghttp2 on every byte', async (t) => {
  const { port } = await bareServer(t)
  const disagree: string[] = []
  let accepted = 0
  for (let b = 0; b < 256; b++) {
    // One connection per byte: a refused byte may cost nghttp2 the whole connection.
    const value = Buffer.from([0x61, b, 0x62])
    const c = await connect({ port })
    c.send(frame(TYPE.HEADERS, END_HEADERS | END_STREAM, 1, grpcRequest(literal(':authority', value))))
    const ok = (await c.outcome(1).catch(() => 'closed')) === 'answered'
    c.close()
    if (ok) accepted++
    if (ok !== acceptableAuthority(value)) disagree.push(`0x${b.toString(16)} nghttp2 ${ok ? 'accepts' : 'refuses'}`)
  }
  t.same(disagree, [], 'no byte on which the two disagree')
  t.ok(accepted > 70 && accepted < 90, `nghttp2 accepted ${accepted} of 256 bytes (not all, not none)`)
})

t.test('Huffman strings decode as RFC 7541 C.4 gives them', async (t) => {
  t.equal(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff')).toString(), 'www.example.com')
  t.equal(huffmanDecode(hex('a8eb 1064 9cbf')).toString(), 'no-cache')
  // grpc-go's encoding of csc's authority (golang.org/x/net/http2/hpack.AppendHuffmanString).
  t.equal(huffmanDecode(hex('492bb8c30113ab81702e1b81')).toString(), 'tcp://127.0.0.1:1')
  t.throws(() => huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4fe')), { name: 'HpackError' }, 'padding that is not all ones')
  t.throws(() => huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff ff')), { name: 'HpackError' }, 'a byte of padding too many')
})

t.test('repairHeaderBlock rewrites a refused :authority in place and keeps the table in step', async (t) => {
  const table = new TableMirror()
  const good = grpcRequest(literal(':authority', 'localhost', true))
  t.equal(repairHeaderBlock(good, table), good, 'an acceptable block is returned as the same buffer')

  // Literal with incremental indexing, name by static index 1 (:authority), Huffman value: csc.
  const sent = Buffer.concat([hex('41 8c 492bb8c30113ab81702e1b81'), literal(':path', '/x')])
  const repaired = repairHeaderBlock(sent, table)
  t.same(repaired.subarray(0, 19), Buffer.concat([hex('41 11'), Buffer.from('tcp:__127.0.0.1:1')]), 'plain string, same decoded length')
  t.same(repaired.subarray(19), literal(':path', '/x'), 'the other fields are untouched')
  t.equal(table.name(62), ':authority', 'the repaired entry is the newest in the table')
  t.equal(table.name(63), ':authority', 'after the one for localhost')

  // A later request refers to the entry by index: nothing to repair, nghttp2 holds the new value.
  const indexed = hex('be')
  t.equal(repairHeaderBlock(indexed, table), indexed)
  // A new value under the dynamic entry's name (4-bit prefix index 62: 0f 2f) is repaired too.
  const byDynamicName = Buffer.concat([hex('0f 2f 06'), Buffer.from('/run/x')])
  t.same(repairHeaderBlock(byDynamicName, table), Buffer.concat([hex('0f 2f 06'), Buffer.from('_run_x')]))
  // A size update to 0 empties the table, as it empties nghttp2's.
  repairHeaderBlock(hex('20'), table)
  t.throws(() => table.name(62), { name: 'HpackError' })
  t.throws(() => repairHeaderBlock(hex('41 0a 61'), new TableMirror()), { name: 'HpackError' }, 'a truncated string')
})

t.test('listen(): a refused authority is answered, split across frames, padded, and by index', async (t) => {
  const server = new grpc.Server()
  server.addService(csiPackage().Identity.service, { GetPluginInfo: (_c: unknown, cb: grpc.sendUnaryData<unknown>) => cb(null, { name: 'x' }) })
  const running = await listen(server, parseEndpoint('tcp://127.0.0.1:0'))
  t.teardown(() => running.close(1000))
  const port = Number(running.address.split(':').pop())

  const c = await connect({ port })
  t.teardown(() => c.close())
  const block = grpcRequest(literal(':authority', 'tcp://127.0.0.1:10000', true))
  // HEADERS with PADDED and PRIORITY (pad length 3, dependency 0, weight 15), then CONTINUATION.
  const head = Buffer.concat([Buffer.from([3]), hex('00000000 0f'), block.subarray(0, 20), Buffer.alloc(3)])
  c.send(frame(TYPE.HEADERS, 0x8 | 0x20, 1, head), frame(TYPE.CONTINUATION, END_HEADERS, 1, block.subarray(20)))
  c.send(frame(TYPE.DATA, END_STREAM, 1, EMPTY_MESSAGE))
  t.equal(await c.outcome(1), 'answered')
  const data = await c.waitFor((f) => f.type === TYPE.DATA && f.stream === 1)
  t.same(data.payload, hex('00 00000003 0a0178'), 'GetPluginInfo answered {name: "x"}')

  // The second request names :authority by its index in the dynamic table (62).
  c.send(frame(TYPE.HEADERS, END_HEADERS, 3, Buffer.concat([hex('be'), grpcRequest(Buffer.alloc(0))])), frame(TYPE.DATA, END_STREAM, 3, EMPTY_MESSAGE))
  t.equal(await c.outcome(3), 'answered', 'a request by index is answered')

  // grpc-js takes the fast path: a plain socket, the bytes read so far put back.
  const Identity = csiPackage().Identity
  const js = new Identity(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, Function>
  t.teardown(() => js.close())
  const res = await new Promise<any>((resolve, reject) => js.GetPluginInfo!.call(js, {}, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))))
  t.equal(res.name, 'x', 'grpc-js is answered')

  // Not HTTP/2 at all: handed to nghttp2 as before, which ends the connection.
  const h1 = await connect({ port }, false)
  h1.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'))
  await t.rejects(h1.waitFor(() => false), /closed/, 'an HTTP/1 request ends its connection')
})

t.test('close() ends connections that never sent a request', async (t) => {
  const server = new grpc.Server()
  const running = await listen(server, parseEndpoint('tcp://127.0.0.1:0'))
  const c = await connect({ port: Number(running.address.split(':').pop()) })
  await running.close(1000)
  await t.rejects(c.waitFor(() => false), /closed/, 'the idle connection was closed')
})
