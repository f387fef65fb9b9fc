// A raw HTTP/2 client for the tests of common/h2front.ts: it sends hand-made frames, so a test
// controls every byte of a header block (which no gRPC library lets it do), and collects the
// frames the server sends back. No timers: waitFor() settles on a frame or on the connection's end.
import net from 'node:net'
import { FrameReader, frame, type Frame } from '../../common/h2front.js'

export { frame }

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
export const TYPE = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, GOAWAY: 7, CONTINUATION: 9 }

/** HPACK literal strings, never Huffman: a field with its name given as text. */
export function literal(name: string, value: string | Buffer, indexing = false): Buffer {
  const str = (s: string | Buffer): Buffer => {
    const b = Buffer.isBuffer(s) ? s : Buffer.from(s, 'latin1')
    if (b.length > 126) throw new Error('long strings are not needed here')
    return Buffer.concat([Buffer.from([b.length]), b])
  }
  return Buffer.concat([Buffer.from([indexing ? 0x40 : 0x00]), str(name), str(value)])
}

/** A gRPC request's header block around an :authority representation made by the caller. */
export function grpcRequest(authority: Buffer, path = '/csi.v1.Identity/GetPluginInfo'): Buffer {
  return Buffer.concat([
    literal(':method', 'POST'), literal(':scheme', 'http'), literal(':path', path), authority,
    literal('content-type', 'application/grpc'), literal('te', 'trailers'),
  ])
}

/** An empty protobuf message as a gRPC message: no compression, length 0. */
export const EMPTY_MESSAGE = Buffer.alloc(5)

export class RawConn {
  readonly frames: Frame[] = []
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void }[] = []
  private ended = false

  constructor(private socket: net.Socket) {
    const reader = new FrameReader()
    reader.push(PREFACE) // the server sends no preface of this kind; let the reader skip it
    socket.on('data', (b: Buffer) => {
      reader.push(b)
      for (let f = reader.next(); f; f = reader.next()) {
        if (f.type === -1) continue
        // Every SETTINGS frame is acknowledged, as the protocol asks of a client.
        if (f.type === TYPE.SETTINGS && !(f.flags & 1)) this.send(frame(TYPE.SETTINGS, 1, 0, Buffer.alloc(0)))
        this.frames.push(f)
        this.waiters = this.waiters.filter((w) => (w.pred(f) ? (w.resolve(f), false) : true))
      }
    })
    socket.on('close', () => {
      this.ended = true
      for (const w of this.waiters) w.reject(new Error('the server closed the connection'))
      this.waiters = []
    })
    socket.on('error', () => {})
  }

  send(...bufs: Buffer[]): void {
    this.socket.write(Buffer.concat(bufs))
  }

  /** The first frame, already received or still to come, that matches. */
  waitFor(pred: (f: Frame) => boolean): Promise<Frame> {
    const seen = this.frames.find(pred)
    if (seen) return Promise.resolve(seen)
    if (this.ended) return Promise.reject(new Error('the server closed the connection'))
    return new Promise((resolve, reject) => this.waiters.push({ pred, resolve, reject }))
  }

  /** What the server did with a stream: answered it (HEADERS) or reset it (RST_STREAM + code). */
  async outcome(stream: number): Promise<string> {
    const f = await this.waitFor((f) => f.stream === stream && (f.type === TYPE.HEADERS || f.type === TYPE.RST_STREAM))
    return f.type === TYPE.HEADERS ? 'answered' : `RST_STREAM ${f.payload.readUInt32BE(0)}`
  }

  close(): void {
    this.socket.destroy()
  }
}

/** Connects and sends the client preface and an empty SETTINGS frame, as every client does. */
export function connect(to: { port: number } | { path: string }, preface = true): Promise<RawConn> {
  return new Promise((resolve, reject) => {
    const s = net.connect(to as net.NetConnectOpts, () => {
      s.off('error', reject)
      const c = new RawConn(s)
      if (preface) c.send(PREFACE, frame(TYPE.SETTINGS, 0, 0, Buffer.alloc(0)))
      resolve(c)
    })
    s.once('error', reject)
  })
}
