// A full ListVolumes of 10,000 volumes spent ~150 ms of the controller's time in protobufjs
// (fromObject + encode of every entry, every call; BENCHMARKS.md, issue 17), though between two
// listings almost no entry changes. So the controller keeps its entry objects as long as their
// volume is unchanged (volumes.ts), and the answer's encoder keeps each entry's bytes as long as
// the entry object lives.
//
// Why concatenating is the same answer: protobuf's encoding of a message is the concatenation of
// its fields, and a repeated field may come as any number of pieces, appended in order. The
// encoding of `{entries: [e]}` is exactly entry e as field 1 (next_token is not set in it, so it
// is not written), so encoding `{entries: [e1, e2, ...]}` and cutting it at field boundaries gives
// each entry's piece; the answer is those pieces in order, then `{entries: [], next_token}`. The
// result is the very bytes the whole-message encoder produces (test/unit-list-encoding.test.ts).

import type { ListVolumesResponse } from '../proto/gen/csi/v1/ListVolumesResponse.js'

/**
 * Wraps a response serializer so each entry object is encoded once: objects seen before reuse
 * their bytes. Entry objects must not be mutated after they are first answered.
 */
export function reusingEntryBytes(serialize: (res: ListVolumesResponse) => Buffer): (res: ListVolumesResponse) => Buffer {
  const bytes = new WeakMap<object, Buffer>()
  return (res) => {
    const entries = res.entries ?? []
    // The entries not seen before are encoded in one call (one call per entry costs several
    // times more, in protobufjs's per-call set-up), then cut apart at their field boundaries.
    const fresh = entries.filter((e) => !bytes.has(e))
    if (fresh.length > 0) {
      const pieces = fieldPieces(serialize({ entries: fresh }))
      if (pieces.length !== fresh.length) throw new Error(`ListVolumes encoding: ${fresh.length} entries gave ${pieces.length} fields`)
      fresh.forEach((e, i) => bytes.set(e, pieces[i]!))
    }
    return Buffer.concat([...entries.map((e) => bytes.get(e)!), serialize({ ...res, entries: [] })])
  }
}

/** Splits an encoding made only of length-delimited fields into one slice per field (tag and length included). */
export function fieldPieces(buf: Buffer): Buffer[] {
  const out: Buffer[] = []
  let at = 0
  while (at < buf.length) {
    const start = at
    if ((buf[at++]! & 7) !== 2) throw new Error('ListVolumes encoding: a field that is not length-delimited')
    let len = 0
    for (let shift = 0; ; shift += 7) {
      const b = buf[at++]!
      len += (b & 0x7f) * 2 ** shift
      if (b < 0x80) break
    }
    at += len
    out.push(buf.subarray(start, at))
  }
  return out
}
