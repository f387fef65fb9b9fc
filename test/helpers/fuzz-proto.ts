// protobufjs view of proto/csi.proto for the malformed-input fuzzer: every service's methods with
// their request types, a schema-driven random message generator, and byte-level mutators.
import path from 'node:path'
import { createRequire } from 'node:module'
import protobuf from 'protobufjs'
import { ROOT } from './driver.js'

export interface Method {
  service: string
  name: string
  /** `/csi.v1.Service/Method` */
  path: string
  type: protobuf.Type
  streaming: boolean
}

export function loadCsi(): { root: protobuf.Root; methods: Method[] } {
  const require = createRequire(import.meta.url)
  const pbDir = path.dirname(require.resolve('protobufjs/package.json'))
  const root = new protobuf.Root()
  root.resolvePath = (origin, target) =>
    target.startsWith('google/protobuf/') ? path.join(pbDir, target) : path.resolve(path.dirname(origin), target)
  root.loadSync(path.join(ROOT, 'proto/csi.proto'), { keepCase: true })
  root.resolveAll()
  const methods: Method[] = []
  for (const service of ['Identity', 'Controller', 'Node', 'GroupController', 'SnapshotMetadata']) {
    const svc = root.lookupService(`csi.v1.${service}`)
    for (const m of Object.values(svc.methods)) {
      methods.push({
        service, name: m.name, path: `/csi.v1.${service}/${m.name}`,
        type: root.lookupType(`csi.v1.${m.requestType}`), streaming: Boolean(m.requestStream || m.responseStream),
      })
    }
  }
  return { root, methods }
}

export interface Rng {
  next(): number
  int(n: number): number
  pick<T>(a: readonly T[]): T
  chance(p: number): boolean
}

export function randomBytes(r: Rng, n: number): Buffer {
  const b = Buffer.allocUnsafe(n)
  for (let i = 0; i < n; i++) b[i] = r.int(256)
  return b
}

/** Value pools by field name; the test fills them with real ids and sandbox paths. */
export interface Pools {
  ids: string[]
  names: string[]
  paths: string[]
  nodeIds: string[]
  tokens: string[]
  strings: string[]
  mapKeys: string[]
  mapValues: string[]
}

const INT64S = ['0', '1', '-1', '1048576', '1073741824', '9223372036854775807', '-9223372036854775808', '18446744073709551615', '4096', '123456789012']
const INT32S = [0, 1, -1, 2, 100, 2147483647, -2147483648, 65536]

/**
 * A random, type-correct message for `type`: strings from the pools by field name, maps and
 * repeated fields with a few entries, enums valid or any number, oneofs with one member set.
 */
export function randomMessage(r: Rng, type: protobuf.Type, pools: Pools, depth = 0): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const oneofMembers = new Set<string>()
  for (const o of type.oneofsArray) {
    const chosen = r.pick(o.fieldsArray)
    for (const f of o.fieldsArray) oneofMembers.add(f.name)
    if (r.chance(0.85)) out[chosen.name] = randomValue(r, chosen, pools, depth)
  }
  for (const f of type.fieldsArray) {
    if (oneofMembers.has(f.name)) continue
    if (r.chance(0.15)) continue // leave unset
    if (f.map) {
      const n = r.chance(0.8) ? r.int(4) : r.int(40)
      const m: Record<string, unknown> = {}
      for (let i = 0; i < n; i++) m[r.pick(pools.mapKeys)] = r.pick(pools.mapValues)
      out[f.name] = m
    } else if (f.repeated) {
      const n = r.chance(0.85) ? r.int(4) : r.int(30)
      out[f.name] = Array.from({ length: n }, () => randomValue(r, f, pools, depth))
    } else {
      out[f.name] = randomValue(r, f, pools, depth)
    }
  }
  return out
}

function randomValue(r: Rng, f: protobuf.Field, pools: Pools, depth: number): unknown {
  const rt = f.resolvedType
  if (rt instanceof protobuf.Enum) {
    const values = Object.values(rt.values)
    return r.chance(0.75) ? r.pick(values) : r.pick([-1, 8, 99, 2147483647, -2147483648, r.int(1 << 20)])
  }
  if (rt instanceof protobuf.Type) return depth > 5 ? {} : randomMessage(r, rt, pools, depth + 1)
  switch (f.type) {
    case 'string': return stringFor(r, f.name, pools)
    case 'bool': return r.chance(0.5)
    case 'int64': case 'uint64': case 'sint64': case 'fixed64': case 'sfixed64': return r.pick(INT64S)
    case 'int32': case 'uint32': case 'sint32': case 'fixed32': case 'sfixed32': return r.pick(INT32S)
    case 'bytes': return randomBytes(r, r.int(64))
    case 'double': case 'float': return r.pick([0, -1, 1.5, Number.MAX_VALUE, Number.NaN])
    default: return undefined
  }
}

function stringFor(r: Rng, name: string, pools: Pools): string {
  if (r.chance(0.1)) return r.pick(pools.strings)
  if (name.endsWith('_id') && name !== 'node_id') return r.pick(pools.ids)
  if (name === 'node_id') return r.pick(pools.nodeIds)
  if (name.includes('path')) return r.pick(pools.paths)
  if (name.includes('token')) return r.pick(pools.tokens)
  if (name === 'name') return r.pick(pools.names)
  return r.pick(pools.strings)
}

/** Encodes a message object; undefined when protobufjs refuses it (then the caller picks another). */
export function encode(type: protobuf.Type, obj: Record<string, unknown>): Buffer | undefined {
  try {
    return Buffer.from(type.encode(type.fromObject(obj)).finish())
  } catch {
    return undefined
  }
}

/** Byte-level mutations of an encoded message. */
export function mutate(r: Rng, buf: Buffer): { how: string; out: Buffer } {
  const b = Buffer.from(buf)
  switch (r.int(8)) {
    case 0: {
      const flips = 1 + r.int(8)
      for (let i = 0; i < flips && b.length > 0; i++) b[r.int(b.length)]! ^= 1 << r.int(8)
      return { how: `bitflip x${flips}`, out: b }
    }
    case 1:
      return { how: 'truncate', out: b.subarray(0, r.int(Math.max(1, b.length))) }
    case 2: {
      const at = r.int(b.length + 1)
      return { how: 'insert', out: Buffer.concat([b.subarray(0, at), randomBytes(r, 1 + r.int(32)), b.subarray(at)]) }
    }
    case 3: {
      const at = r.int(b.length + 1)
      return { how: 'delete', out: Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + r.int(16)))]) }
    }
    case 4: {
      // Set a random byte to a boundary value (0x00, 0x7f, 0x80, 0xff): lengths and varints break.
      if (b.length > 0) b[r.int(b.length)] = r.pick([0x00, 0x7f, 0x80, 0xff, 0x0b, 0x0c])
      return { how: 'boundary byte', out: b }
    }
    case 5: {
      // An unknown field with a random wire type (including the deprecated groups 3/4 and the invalid 6/7).
      const tag = ((1 + r.int(2000)) << 3) | r.int(8)
      return { how: 'unknown field', out: Buffer.concat([b, varint(tag), randomBytes(r, r.int(12))]) }
    }
    case 6: {
      // A known field number with the wrong wire type.
      const tag = ((1 + r.int(9)) << 3) | r.pick([0, 1, 2, 5])
      return { how: 'wrong wire type', out: Buffer.concat([varint(tag), randomBytes(r, 1 + r.int(10)), b]) }
    }
    default: {
      const at = r.int(b.length + 1)
      const len = r.int(Math.max(1, b.length - at))
      return { how: 'duplicate range', out: Buffer.concat([b.subarray(0, at + len), b.subarray(at, at + len), b.subarray(at + len)]) }
    }
  }
}

export function varint(n: number): Buffer {
  const out: number[] = []
  let v = n >>> 0
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80)
    v >>>= 7
  }
  out.push(v)
  return Buffer.from(out)
}

/** A length-delimited field: tag (field << 3 | 2), varint length, bytes. */
export function lenField(field: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((field << 3) | 2), varint(payload.length), payload])
}
