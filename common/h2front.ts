// The front of the gRPC servers: tscsi accepts each connection itself and hands it to grpc-js
// through its connection injector, repairing the request headers of the clients that Node's
// HTTP/2 layer would otherwise refuse.
//
// Why: grpc-go before 1.55 (rexray/gocsi's csc of seed 003 is 1.19; old kubelets and sidecars too)
// sends its dial target as :authority, e.g. `tcp://127.0.0.1:10000` or `/run/csi/csi.sock`.
// nghttp2, inside Node's http2, refuses an authority containing '/' and resets the stream with
// PROTOCOL_ERROR before grpc-js sees it; Node 20 offers no option to relax that check (nghttp2's
// no_http_messaging is not exposed). Go's HTTP/2 server accepts such requests, so those clients
// work with every Go driver and failed with every call to tscsi.
//
// How, and what it costs: a connection is classified by its first request. One whose first
// header block is acceptable (grpc-js, current grpc-go, Python grpcio) goes to grpc-js as the
// plain socket, with the bytes read so far put back, so its calls run exactly as before. Only a
// connection whose authority needs repair runs through a JavaScript stream that rewrites header
// blocks (hpack.ts) and passes every other frame through untouched.
//
// To classify without waiting on a client that waits for the server's SETTINGS before its
// first request (grpc-js and current grpc-go do), the front sends an empty SETTINGS frame at
// once (the server preface; a second SETTINGS from nghttp2 later is ordinary HTTP/2) and removes
// the client's acknowledgement of it, which nghttp2 would take for an acknowledgement of its own.
import { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import { HpackError, TableMirror, repairHeaderBlock } from './hpack.js'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
export const EMPTY_SETTINGS = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])
const T = { DATA: 0, HEADERS: 1, PRIORITY: 2, SETTINGS: 4, WINDOW_UPDATE: 8, CONTINUATION: 9 }
const F = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 }
// nghttp2's SETTINGS_MAX_FRAME_SIZE under Node's defaults: a rebuilt HEADERS frame stays within it.
const MAX_FRAME = 16384
// A client that has sent this much without a request is not one of the clients this is for.
const SNIFF_LIMIT = 64 * 1024

export interface Frame { type: number; flags: number; stream: number; payload: Buffer; raw: Buffer }

/** Cuts client bytes into the preface and whole frames. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0)
  private prefaceSeen = false
  badPreface = false

  push(chunk: Buffer): void {
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk
  }

  /** The next preface (as a frame of type -1) or frame, or undefined until more bytes come. */
  next(): Frame | undefined {
    const b = this.pending
    if (!this.prefaceSeen) {
      const n = Math.min(b.length, PREFACE.length)
      if (!b.subarray(0, n).equals(PREFACE.subarray(0, n))) this.badPreface = true
      if (this.badPreface || b.length < PREFACE.length) return undefined
      this.prefaceSeen = true
      this.pending = b.subarray(PREFACE.length)
      return { type: -1, flags: 0, stream: 0, payload: Buffer.alloc(0), raw: b.subarray(0, PREFACE.length) }
    }
    if (b.length < 9) return undefined
    const len = b.readUIntBE(0, 3)
    if (b.length < 9 + len) return undefined
    this.pending = b.subarray(9 + len)
    return { type: b[3]!, flags: b[4]!, stream: b.readUInt32BE(5) & 0x7fffffff, payload: b.subarray(9, 9 + len), raw: b.subarray(0, 9 + len) }
  }

  rest(): Buffer {
    return this.pending
  }
}

export function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9)
  h.writeUIntBE(payload.length, 0, 3)
  h[3] = type
  h[4] = flags
  h.writeUInt32BE(stream, 5)
  return Buffer.concat([h, payload])
}

/** A HEADERS frame's header block fragment, and its priority fields (kept when rebuilt). */
function headersFragment(f: Frame): { fragment: Buffer; priority: Buffer } {
  let p = f.payload
  let pad = 0
  if (f.flags & F.PADDED) {
    pad = p[0] ?? 0
    p = p.subarray(1)
  }
  const priority = f.flags & F.PRIORITY ? p.subarray(0, 5) : Buffer.alloc(0)
  p = p.subarray(priority.length)
  if (pad > p.length) throw new HpackError('padding longer than the frame')
  return { fragment: p.subarray(0, p.length - pad), priority }
}

/**
 * Rewrites the client-to-server bytes of one connection: every header block goes through
 * repairHeaderBlock with one table mirror; a block that needed no change, and every other frame,
 * leaves as the very bytes that came in.
 */
export class RequestRepair {
  private reader = new FrameReader()
  private table = new TableMirror()
  private held: Frame[] = []

  /** dropAck: the client has yet to acknowledge the front's EMPTY_SETTINGS; that ACK is not nghttp2's. */
  constructor(private dropAck = false) {}

  push(chunk: Buffer): Buffer {
    this.reader.push(chunk)
    const out: Buffer[] = []
    for (let f = this.reader.next(); f; f = this.reader.next()) {
      if (this.dropAck && f.type === T.SETTINGS && f.flags & F.ACK) {
        this.dropAck = false
        continue
      }
      if (f.type !== T.HEADERS && f.type !== T.CONTINUATION && this.held.length === 0) {
        out.push(f.raw)
        continue
      }
      this.held.push(f)
      if (!(f.flags & F.END_HEADERS)) continue
      out.push(...this.block(this.held))
      this.held = []
    }
    if (this.reader.badPreface) throw new HpackError('not an HTTP/2 connection preface')
    return Buffer.concat(out)
  }

  private block(frames: Frame[]): Buffer[] {
    const head = frames[0]!
    if (head.type !== T.HEADERS) return frames.map((f) => f.raw) // nghttp2 reports the error
    const { fragment, priority } = headersFragment(head)
    const block = Buffer.concat([fragment, ...frames.slice(1).map((f) => f.payload)])
    const repaired = repairHeaderBlock(block, this.table)
    if (repaired === block) return frames.map((f) => f.raw)
    const out: Buffer[] = []
    const first = repaired.subarray(0, MAX_FRAME - priority.length)
    let rest = repaired.subarray(first.length)
    const flags = (head.flags & (F.END_STREAM | F.PRIORITY)) | (rest.length ? 0 : F.END_HEADERS)
    out.push(frame(T.HEADERS, flags, head.stream, Buffer.concat([priority, first])))
    while (rest.length) {
      const part = rest.subarray(0, MAX_FRAME)
      rest = rest.subarray(part.length)
      out.push(frame(T.CONTINUATION, rest.length ? 0 : F.END_HEADERS, head.stream, part))
    }
    return out
  }
}

/** A Duplex over the socket whose readable side is the repaired request stream. */
function repairingStream(socket: Socket, already: Buffer, ackPending: boolean): Duplex {
  const repair = new RequestRepair(ackPending)
  let paused = false
  const d = new Duplex({
    read() {
      if (paused) {
        paused = false
        socket.resume()
      }
    },
    write(chunk: Buffer, _enc, cb) {
      socket.write(chunk, cb)
    },
    final(cb) {
      socket.end()
      cb()
    },
    destroy(err, cb) {
      socket.destroy()
      cb(err)
    },
  })
  const feed = (chunk: Buffer): void => {
    let out: Buffer
    try {
      out = repair.push(chunk)
    } catch (e) {
      d.destroy(e as Error)
      return
    }
    if (out.length && !d.push(out)) {
      paused = true
      socket.pause()
    }
  }
  socket.on('data', feed)
  socket.on('end', () => d.push(null))
  socket.on('error', (e) => d.destroy(e))
  socket.on('close', () => d.destroy())
  feed(already)
  // The front paused the socket to hand it over; a new 'data' listener does not undo that.
  socket.resume()
  return d
}

/**
 * Takes a fresh connection, classifies it (see the top of this file) and gives grpc-js either
 * the socket itself or a repairing stream over it.
 */
export function frontConnection(socket: Socket, inject: (connection: Duplex) => void): void {
  const reader = new FrameReader()
  const kept: Buffer[] = []
  let keptBytes = 0
  let ackDropped = false
  let verdict: 'native' | 'repair' | undefined
  const block: Buffer[] = []
  let done = false

  const handOver = (): void => {
    done = true
    socket.removeListener('data', onData)
    socket.removeListener('error', onError)
    socket.pause()
    const bytes = Buffer.concat([...kept, reader.rest()])
    if (verdict === 'repair') return void inject(repairingStream(socket, bytes, !ackDropped))
    if (bytes.length) socket.unshift(bytes)
    inject(socket)
  }
  const onError = (): void => {
    socket.destroy()
  }
  const onData = (chunk: Buffer): void => {
    reader.push(chunk)
    for (let f = reader.next(); f && !done; f = reader.next()) {
      if (f.type === T.SETTINGS && f.flags & F.ACK && !ackDropped) {
        ackDropped = true // the answer to our EMPTY_SETTINGS, not to nghttp2's
      } else {
        kept.push(f.raw)
        keptBytes += f.raw.length
      }
      if (verdict !== undefined || f.type === -1) continue
      if (f.type === T.HEADERS || f.type === T.CONTINUATION) {
        block.push(f.type === T.HEADERS ? headersFragmentOrEmpty(f) : f.payload)
        if (f.flags & F.END_HEADERS) verdict = classify(Buffer.concat(block))
      } else if (f.type !== T.SETTINGS && f.type !== T.WINDOW_UPDATE && f.type !== T.PRIORITY) {
        verdict = 'native' // a PING or anything else nghttp2 must answer before a request
      }
    }
    if (done) return
    // Not HTTP/2, or not a client this is for: nghttp2 answers it as it always did.
    if (reader.badPreface || keptBytes > SNIFF_LIMIT) verdict = 'native'
    // The plain socket must wait for the ACK (nghttp2 would count it as its own); a repaired
    // connection need not, its stream drops the ACK whenever it comes.
    if (verdict === 'repair' || (verdict && (ackDropped || reader.badPreface || keptBytes > SNIFF_LIMIT))) handOver()
  }
  socket.on('data', onData)
  socket.on('error', onError)
  socket.write(EMPTY_SETTINGS)
}

function headersFragmentOrEmpty(f: Frame): Buffer {
  try {
    return headersFragment(f).fragment
  } catch {
    return Buffer.alloc(0)
  }
}

function classify(block: Buffer): 'native' | 'repair' {
  try {
    return repairHeaderBlock(block, new TableMirror()) === block ? 'native' : 'repair'
  } catch {
    return 'native' // malformed: nghttp2 answers it with the right error
  }
}
