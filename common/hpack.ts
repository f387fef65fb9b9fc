// Just enough HPACK (RFC 7541) to repair one request header on the way in: it walks a header
// block, keeps a mirror of the decoder's dynamic table (names and sizes, which is all that
// indexing needs), and rewrites an :authority value that nghttp2 refuses into one of the same
// length. The same length matters: the entry's size in the table is name + value + 32 octets, so
// the client's encoder and nghttp2's decoder keep agreeing on every later index and eviction,
// and a later request that refers to the entry by index gets the repaired value without any
// rewrite. See h2front.ts for why tscsi repairs requests at all.

// RFC 7541 Appendix A: the static table's names (index 1..61); values are not needed here.
const STATIC_NAMES = (
  ':authority :method :method :path :path :scheme :scheme :status :status :status :status :status ' +
  ':status :status accept-charset accept-encoding accept-language accept-ranges accept ' +
  'access-control-allow-origin age allow authorization cache-control content-disposition ' +
  'content-encoding content-language content-length content-location content-range content-type ' +
  'cookie date etag expect expires from host if-match if-modified-since if-none-match if-range ' +
  'if-unmodified-since last-modified link location max-forwards proxy-authenticate ' +
  'proxy-authorization range referer refresh retry-after server set-cookie ' +
  'strict-transport-security transfer-encoding user-agent vary via www-authenticate'
).split(' ')

// RFC 7541 Appendix B: the code length of each symbol 0..255, then EOS. The code is canonical
// (codes of one length are consecutive, in symbol order), so the lengths define it.
const HUFFMAN_LENGTHS = '13 23 28 28 28 28 28 28 28 24 30 28 28 30 28 28 28 28 28 28 28 28 30 28 28 28 28 28 28 28 28 28 6 10 10 12 13 6 8 11 10 10 8 11 8 6 6 6 5 5 5 6 6 6 6 6 6 6 7 8 15 6 12 10 13 6 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 7 8 7 8 13 19 13 14 6 15 5 6 5 6 5 6 6 6 5 7 7 6 6 6 5 6 7 6 5 5 6 7 7 7 7 7 15 11 14 13 28 20 22 20 20 22 22 22 23 22 23 23 23 23 23 24 23 24 24 22 23 24 23 23 23 23 21 22 23 22 23 23 24 22 21 20 22 22 23 23 21 23 22 22 24 21 22 23 23 21 21 22 21 23 22 23 23 20 22 22 22 23 22 22 23 26 26 20 19 22 23 22 25 26 26 26 27 27 26 24 25 19 21 26 27 27 26 27 24 21 21 26 26 28 27 27 27 20 24 20 21 22 21 21 23 22 22 25 25 24 24 26 23 26 27 26 26 27 27 27 27 27 28 27 27 27 27 27 26 30'.split(' ').map(Number)

const HUFFMAN = (() => {
  const byCode = new Map<number, number>() // code * 32 + length -> symbol
  const order = HUFFMAN_LENGTHS.map((len, sym) => ({ len, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym)
  let code = 0
  let len = order[0]!.len
  for (const e of order) {
    code <<= e.len - len
    len = e.len
    byCode.set(code * 32 + len, e.sym)
    code++
  }
  return byCode
})()

export class HpackError extends Error {
  override name = 'HpackError'
}

export function huffmanDecode(b: Buffer): Buffer {
  const out: number[] = []
  let code = 0
  let len = 0
  for (const byte of b) {
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1)
      len++
      const sym = HUFFMAN.get(code * 32 + len)
      if (sym === 256) throw new HpackError('EOS in a Huffman string')
      if (sym !== undefined) {
        out.push(sym)
        code = 0
        len = 0
      } else if (len > 30) throw new HpackError('invalid Huffman code')
    }
  }
  // What is left must be padding: fewer than 8 bits, all ones (a prefix of EOS).
  if (len > 7 || code !== 2 ** len - 1) throw new HpackError('invalid Huffman padding')
  return Buffer.from(out)
}

// The characters nghttp2 accepts in :authority (its VALID_AUTHORITY_CHARS, measured against
// Node 20 by test/h2-authority.test.ts): RFC 3986's unreserved, sub-delims, ':', '@', '[', ']'
// and '%'. Everything else, '/' first of all, makes it reset the stream with PROTOCOL_ERROR.
const AUTHORITY_OK = /^[A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]*$/

export function acceptableAuthority(value: Buffer): boolean {
  return AUTHORITY_OK.test(value.toString('latin1'))
}

/** The same number of octets, each one nghttp2 refuses replaced by '_': tcp://h:1 -> tcp:__h:1. */
export function repairAuthority(value: Buffer): Buffer {
  return Buffer.from(value.toString('latin1').replace(/[^A-Za-z0-9\-._~!$&'()*+,;=:@[\]%]/g, '_'), 'latin1')
}

/** The decoder's dynamic table as far as indexing needs it. Newest entry first. */
export class TableMirror {
  private entries: { name: string; size: number }[] = []
  private size = 0
  // nghttp2's SETTINGS_HEADER_TABLE_SIZE under Node's http2 defaults; a client may only lower it.
  constructor(private max = 4096) {}

  name(index: number): string {
    if (index >= 1 && index <= STATIC_NAMES.length) return STATIC_NAMES[index - 1]!
    const e = this.entries[index - STATIC_NAMES.length - 1]
    if (!e) throw new HpackError(`header index ${index} is not in the table`)
    return e.name
  }

  insert(name: string, valueLength: number): void {
    const size = Buffer.byteLength(name, 'latin1') + valueLength + 32
    this.entries.unshift({ name, size })
    this.size += size
    this.evict()
  }

  resize(max: number): void {
    this.max = max
    this.evict()
  }

  private evict(): void {
    while (this.size > this.max) this.size -= this.entries.pop()!.size
  }
}

// An integer with an N-bit prefix (RFC 7541 5.1), starting at b[at].
function readInt(b: Buffer, at: number, bits: number): { value: number; next: number } {
  const mask = (1 << bits) - 1
  let value = b[at]! & mask
  let i = at + 1
  if (value < mask) return { value, next: i }
  for (let shift = 0; ; shift += 7) {
    if (i >= b.length || shift > 28) throw new HpackError('truncated or oversized integer')
    const byte = b[i++]!
    value += (byte & 0x7f) * 2 ** shift
    if ((byte & 0x80) === 0) return { value, next: i }
  }
}

function readString(b: Buffer, at: number): { value: Buffer; next: number } {
  if (at >= b.length) throw new HpackError('truncated header block')
  const huffman = (b[at]! & 0x80) !== 0
  const { value: len, next } = readInt(b, at, 7)
  if (next + len > b.length) throw new HpackError('truncated string')
  const raw = b.subarray(next, next + len)
  return { value: huffman ? huffmanDecode(raw) : raw, next: next + len }
}

function writeInt(first: number, bits: number, value: number): Buffer {
  const mask = (1 << bits) - 1
  if (value < mask) return Buffer.from([first | value])
  const out = [first | mask]
  value -= mask
  while (value >= 0x80) {
    out.push((value % 0x80) | 0x80)
    value = Math.floor(value / 0x80)
  }
  out.push(value)
  return Buffer.from(out)
}

/**
 * Walks one complete header block, updating the mirror as the decoder will, and returns it with
 * every literal :authority value nghttp2 would refuse replaced (as a plain, non-Huffman string of
 * the same length), or the very same buffer when nothing needed repair.
 */
export function repairHeaderBlock(block: Buffer, table: TableMirror): Buffer {
  const parts: Buffer[] = []
  let copiedTo = 0
  let i = 0
  while (i < block.length) {
    const first = block[i]!
    if (first & 0x80) {
      i = readInt(block, i, 7).next // indexed field: no table change
      continue
    }
    if ((first & 0xe0) === 0x20) {
      const r = readInt(block, i, 5) // dynamic table size update
      table.resize(r.value)
      i = r.next
      continue
    }
    const indexing = (first & 0xc0) === 0x40
    const bits = indexing ? 6 : 4
    const idx = readInt(block, i, bits)
    let name: string
    i = idx.next
    if (idx.value === 0) {
      const n = readString(block, i)
      name = n.value.toString('latin1')
      i = n.next
    } else name = table.name(idx.value)
    const valueAt = i
    const v = readString(block, i)
    i = v.next
    if (indexing) table.insert(name, v.value.length)
    if (name === ':authority' && !acceptableAuthority(v.value)) {
      // Keep the representation and its name as sent; only the value string is re-encoded.
      parts.push(block.subarray(copiedTo, valueAt), writeInt(0, 7, v.value.length), repairAuthority(v.value))
      copiedTo = i
    }
  }
  if (copiedTo === 0) return block
  parts.push(block.subarray(copiedTo))
  return Buffer.concat(parts)
}
