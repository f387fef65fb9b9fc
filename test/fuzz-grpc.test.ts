// Malformed input against the REAL controller and node plugin (root): a seeded storm of random,
// truncated, bit-flipped, oversized and schema-random protobuf messages sent with grpc-js's
// generic client to every method of Identity, Controller and Node (and the services the driver
// does not serve) on both sockets.
//
//   FUZZ_SEED=<n>   replay a run (the seed is printed)
//   FUZZ_COUNT=<n>  messages to send (default 10,000)
//
// Asserts: the processes never exit; every call is answered before its deadline (a client-side
// DEADLINE_EXCEEDED counts as a hang); no answer is UNKNOWN; after the storm a normal lifecycle
// still works, every mount the storm made can be taken down through the driver's own RPCs, and no
// mount leaked outside the sandbox.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { buildCanary, detachUnder, diffSnapshots, isUnder, snapshotTree } from './helpers/canary.js'
import { client, mountCap, nodeSeen, testRig } from './helpers/driver.js'
import { encode, lenField, loadCsi, mutate, randomBytes, randomMessage, varint, type Method, type Pools } from './helpers/fuzz-proto.js'
import { codeName, isRoot, outcome, prng, startIn } from './helpers/rpc-outcome.js'
import { readMountInfo } from '../native/index.js'

const COUNT = Number(process.env.FUZZ_COUNT ?? 10_000)
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Date.now() ^ (process.pid << 16)) >>> 0
const DEADLINE_MS = 20_000
const IN_FLIGHT = 24
const MAX_RECEIVE = 4 * 1024 * 1024 // grpc-js's server default

interface Answer {
  code: number
  details: string
}

function unary(c: grpc.Client, method: string, payload: Buffer): Promise<Answer> {
  return new Promise((resolve) => {
    c.makeUnaryRequest<Buffer, Buffer>(
      method, (b) => b, (b) => b, payload, new grpc.Metadata(), { deadline: Date.now() + DEADLINE_MS },
      (err) => resolve(err ? { code: err.code, details: err.details } : { code: 0, details: '' }),
    )
  })
}

if (!isRoot()) {
  t.test('gRPC malformed-input fuzzer', { skip: 'needs root: starts the real driver, which mounts' }, () => {})
} else {
  t.test('gRPC malformed-input fuzzer', async (t) => {
    const started = Date.now()
    t.comment(`FUZZ_SEED=${SEED} FUZZ_COUNT=${COUNT}`)
    const r = prng(SEED)
    const rig = testRig(t)
    const dir = realpathSync(rig.dir)
    // A short sandbox for every path the storm uses: a bit flip in "/tmp/tf-XXXXXX/k/p/t" names
    // nothing that exists outside it, and a truncated length prefix yields "/tmp" or the sandbox.
    const sandbox = mkdtempSync('/tmp/tf-')
    t.teardown(() => {
      detachUnder(sandbox)
      rmSync(sandbox, { recursive: true, force: true })
    })
    const k = path.join(sandbox, 'k')
    const canary = path.join(sandbox, 'c')
    buildCanary(canary)
    const canarySnap = snapshotTree(canary)
    for (const d of ['s1', 's2', 'p/a', 'p/b']) mkdirSync(path.join(k, d), { recursive: true })
    writeFileSync(path.join(k, 'file'), 'a file\n')
    symlinkSync(path.join(canary, 'empty'), path.join(k, 'l'))
    symlinkSync(canary, path.join(k, 'lp'))
    const baseOurs = new Set(ourMounts())
    // Safety net: whatever the storm made outside the sandbox (a mount of a volume, a directory at
    // the host's root) is taken down again when the test ends, and reported below.
    const rootBefore = new Set(readdirSync('/'))
    t.teardown(() => {
      for (const mp of ourMounts().filter((m) => !baseOurs.has(m) && !isUnder(m, sandbox) && !isUnder(m, dir))) {
        detachUnder(mp)
        try { rmdirSync(mp) } catch { /* not empty or not ours to remove */ }
      }
      for (const e of readdirSync('/').filter((x) => !rootBefore.has(x))) {
        try { if (readdirSync(`/${e}`).length === 0) rmdirSync(`/${e}`) } catch { /* not a directory */ }
      }
    })

    const ctl = await startIn(dir, 'controller', rig.dir, ['--enable-attach', '--realise-timeout', '5s'], t)
    rig.procs.push(ctl)
    const node = await startIn(dir, 'node', rig.dir, ['--co-path-prefix', sandbox], t)
    rig.procs.push(node)
    const c = client('Controller', ctl.socket)
    const n = client('Node', node.socket)
    t.teardown(() => { c.close(); n.close() })
    await nodeSeen(c)

    // Real volumes, so valid-looking messages reach the handlers' effects.
    const R1 = (await c.CreateVolume({ name: 'fuzz-real-1', volume_capabilities: [mountCap()] })).volume
    const R2 = (await c.CreateVolume({ name: 'fuzz-real-2', volume_capabilities: [mountCap()] })).volume
    const s1 = path.join(k, 's1')
    await n.NodeStageVolume({ volume_id: R1.volume_id, staging_target_path: s1, volume_capability: mountCap(), volume_context: R1.volume_context })
    await n.NodePublishVolume({ volume_id: R1.volume_id, staging_target_path: s1, target_path: path.join(k, 'p/a/t'), volume_capability: mountCap(), volume_context: R1.volume_context })

    const { methods } = loadCsi()
    const pools: Pools = {
      ids: [R1.volume_id, R1.volume_id, R2.volume_id, `v-${'0'.repeat(32)}`, `s-${'1'.repeat(32)}`, '', '..', '../../c', 'v-\0', 'x'.repeat(129), '\u2215', 'v-' + 'f'.repeat(31) + '\u0000'],
      names: ['fuzz-a', 'fuzz-b', 'fuzz-c', 'fuzz-d', '', '../x', 'n\0', 'é'.repeat(70), 'y'.repeat(128), '\u202e'],
      paths: [s1, s1, path.join(k, 's2'), path.join(k, 'p/a/t'), path.join(k, 'p/a/u'), path.join(k, 'p/b/t'), path.join(k, 'l'), path.join(k, 'lp/empty'), path.join(k, 'file'),
        path.join(k, 'missing/t'), '', 'rel/x', `${k}/../c`, `${k}//s1`, `${k}/s1/`, `${k}/\0`, '/', path.join(dir, 'data'), path.join(dir, 'data/volumes'), `/${'a/'.repeat(2100)}`],
      nodeIds: ['e2e-node', 'other', '', 'n\0', 'x'.repeat(200)],
      tokens: ['', R1.volume_id, 'garbage', '\0', 'v-' + '0'.repeat(32)],
      strings: ['', 'x', 'dir', 'ext4', 'ro', 'bind', 'nosuid,nodev', '\0', '\n', 'z'.repeat(129), '..', '\ufffd', '\u2215..\u2215'],
      mapKeys: ['kind', 'tscsi.dev/kind', 'tscsi.dev/node', 'csi.storage.k8s.io/pvc/name', 'topology.tscsi.dev/node', '', 'k\0', 'q'.repeat(129), '__proto__', 'constructor', 'x'],
      mapValues: ['dir', 'image', 'e2e-node', '', '..', 'v\0', 'w'.repeat(129), 'ok', 'ｄｉｒ'],
    }

    /** Hand-written valid requests, so mutations start from messages that reach deep code. */
    const cap = { mount: { fs_type: '', mount_flags: [], volume_mount_group: '' }, access_mode: { mode: 'SINGLE_NODE_WRITER' } }
    const valid: Record<string, () => Record<string, unknown>> = {
      CreateVolume: () => ({ name: r.pick(pools.names.slice(0, 4)), capacity_range: { required_bytes: String(1 << 20) }, volume_capabilities: [cap], parameters: { kind: 'dir' } }),
      DeleteVolume: () => ({ volume_id: r.pick([`v-${'0'.repeat(32)}`, R2.volume_id]) }),
      ControllerPublishVolume: () => ({ volume_id: R2.volume_id, node_id: 'e2e-node', volume_capability: cap, readonly: r.chance(0.5) }),
      ControllerUnpublishVolume: () => ({ volume_id: R2.volume_id, node_id: 'e2e-node' }),
      ValidateVolumeCapabilities: () => ({ volume_id: R1.volume_id, volume_capabilities: [cap], volume_context: R1.volume_context }),
      ListVolumes: () => ({ max_entries: r.int(5), starting_token: r.pick(['', R1.volume_id]) }),
      GetCapacity: () => ({ volume_capabilities: [cap], parameters: { kind: 'dir' }, accessible_topology: { segments: { 'topology.tscsi.dev/node': 'e2e-node' } } }),
      ControllerGetVolume: () => ({ volume_id: R1.volume_id }),
      ControllerExpandVolume: () => ({ volume_id: R2.volume_id, capacity_range: { required_bytes: String(2 << 20) }, volume_capability: cap }),
      NodeStageVolume: () => ({ volume_id: R1.volume_id, staging_target_path: r.pick([s1, path.join(k, 's2')]), volume_capability: cap, volume_context: R1.volume_context }),
      NodeUnstageVolume: () => ({ volume_id: R1.volume_id, staging_target_path: path.join(k, 's2') }),
      NodePublishVolume: () => ({ volume_id: R1.volume_id, staging_target_path: s1, target_path: r.pick([path.join(k, 'p/a/u'), path.join(k, 'p/b/t')]), volume_capability: cap, readonly: r.chance(0.3), volume_context: R1.volume_context }),
      NodeUnpublishVolume: () => ({ volume_id: R1.volume_id, target_path: r.pick([path.join(k, 'p/a/u'), path.join(k, 'p/b/t')]) }),
      NodeGetVolumeStats: () => ({ volume_id: R1.volume_id, volume_path: path.join(k, 'p/a/t') }),
      NodeExpandVolume: () => ({ volume_id: R1.volume_id, volume_path: path.join(k, 'p/a/t') }),
    }

    /** The big ones: ~1 MiB maps and repeated fields, a nesting bomb, and a few over the 4 MiB limit. */
    function huge(m: Method): { how: string; out: Buffer } {
      switch (r.int(6)) {
        case 0: {
          // A map field with thousands of entries (~1 MiB): find the first map field of the type.
          const f = m.type.fieldsArray.find((x) => x.map)
          const entries = 2000 + r.int(2500)
          const keyLen = r.pick([8, 128, 129, 200])
          const parts: Buffer[] = []
          for (let i = 0; i < entries; i++) {
            const key = Buffer.from(`${i}-`.padEnd(keyLen, 'k'))
            const val = Buffer.from(''.padEnd(r.pick([1, 128, 129]), 'v'))
            parts.push(lenField(f?.id ?? 2, Buffer.concat([lenField(1, key), lenField(2, val)])))
          }
          return { how: `map x${entries} (${keyLen}-byte keys)`, out: Buffer.concat(parts) }
        }
        case 1: {
          // A repeated message field (capabilities) with tens of thousands of entries.
          const f = m.type.fieldsArray.find((x) => x.repeated && !x.map && x.resolvedType instanceof Object)
          const one = lenField(f?.id ?? 3, Buffer.from([0x12, 0x00, 0x1a, 0x02, 0x08, 0x01]))
          const count = 20_000 + r.int(40_000)
          return { how: `repeated x${count}`, out: Buffer.concat(Array.from({ length: count }, () => one)) }
        }
        case 2: {
          // A ~1 MiB string in field 1 (an id or name almost everywhere).
          return { how: '1 MiB string', out: lenField(1, Buffer.alloc((1 << 20) - r.int(1000), 0x61)) }
        }
        case 3: {
          // Deeply nested unknown groups: a recursive decoder's stack.
          const depth = 50_000 + r.int(200_000)
          return { how: `group bomb x${depth}`, out: Buffer.concat([Buffer.alloc(depth, 0x0b), Buffer.alloc(depth, 0x0c)]) }
        }
        case 4: {
          // Deeply nested length-delimited messages in a known message field.
          let inner: Buffer = Buffer.alloc(0)
          for (let i = 0; i < 2000; i++) inner = lenField(1, inner)
          return { how: 'nested length-delimited x2000', out: inner }
        }
        default: {
          if (r.chance(0.4)) return { how: 'over 4 MiB', out: Buffer.alloc(MAX_RECEIVE + 1 + r.int(1 << 20), 0x0a) }
          return { how: '64 KiB random', out: randomBytes(r, 65_536) }
        }
      }
    }

    /** One message: which method, which socket, what bytes, and how they were made. */
    function next(): { m: Method; to: 'controller' | 'node'; how: string; payload: Buffer } {
      const m = r.pick(methods)
      let to: 'controller' | 'node' = m.service === 'Node' ? 'node' : m.service === 'Controller' ? 'controller' : r.chance(0.5) ? 'node' : 'controller'
      if (r.chance(0.03)) to = to === 'node' ? 'controller' : 'node'
      const dice = r.next()
      const base = (): Buffer => {
        const v = valid[m.name]
        const obj = v && r.chance(0.6) ? v() : randomMessage(r, m.type, pools)
        return encode(m.type, obj) ?? Buffer.alloc(0)
      }
      if (dice < 0.15) return { m, to, how: 'valid', payload: base() }
      if (dice < 0.35) return { m, to, how: 'schema-random', payload: encode(m.type, randomMessage(r, m.type, pools)) ?? Buffer.alloc(0) }
      if (dice < 0.7) {
        const { how, out } = mutate(r, base())
        return { m, to, how, payload: out }
      }
      if (dice < 0.8) return { m, to, how: 'random bytes', payload: randomBytes(r, r.pick([0, 1, 2, 3, 5, 8, 16, 64, 256, 1024, 4096])) }
      if (dice < 0.86) {
        // Another method's request: valid protobuf, wrong type.
        const other = r.pick(methods)
        return { m, to, how: `a ${other.name} request`, payload: encode(other.type, randomMessage(r, other.type, pools)) ?? Buffer.alloc(0) }
      }
      if (dice < 0.92) {
        // Two valid messages concatenated (protobuf merges them: oneofs switch, repeated grow).
        return { m, to, how: 'concatenated', payload: Buffer.concat([base(), base()]) }
      }
      if (dice < 0.97) {
        // A string field holding invalid or overlong UTF-8 ("/" as C0 AF, NUL as C0 80).
        // Never an absolute path outside the sandbox: NodePublishVolume creates its target in any
        // existing parent (that is the spec), so "/x" would be made at the host's root.
        const junk = r.pick([Buffer.from([0xc0, 0xaf, 0x2e, 0x2e]), Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from([0xc0, 0x80]), Buffer.from([0xed, 0xa0, 0x80]),
          Buffer.concat([Buffer.from(k + '/p/b/'), Buffer.from([0xc0, 0xaf, 0x2e, 0x2e])]), Buffer.concat([Buffer.from(k), Buffer.from([0xc0, 0xaf, 0x2e, 0x2e, 0xc0, 0xaf, 0x63])])])
        return { m, to, how: 'bad utf-8', payload: Buffer.concat([base(), lenField(1 + r.int(8), junk)]) }
      }
      if (dice < 0.985) return { m, to, how: 'varint overflow', payload: Buffer.concat([varint(1 << 3), Buffer.alloc(11, 0xff), Buffer.from([0x01])]) }
      const h = huge(m)
      return { m, to, how: h.how, payload: h.out }
    }

    const clients = {
      controller: new grpc.Client(`unix://${ctl.socket}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 }),
      node: new grpc.Client(`unix://${node.socket}`, grpc.credentials.createInsecure(), { 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 }),
    }
    t.teardown(() => { clients.controller.close(); clients.node.close() })

    const byMethod = new Map<string, Map<string, number>>()
    const unknown: string[] = []
    const hangs: string[] = []
    const handlerInternal: string[] = []
    const deserializeInternal = { count: 0 }
    const serverDeadline: string[] = []
    let sent = 0
    let answered = 0
    let bytes = 0
    const stormStart = Date.now()
    async function worker(): Promise<void> {
      while (sent < COUNT) {
        sent++
        const msg = next()
        bytes += msg.payload.length
        const a = await unary(clients[msg.to], msg.m.path, msg.payload)
        answered++
        const key = `${msg.to}:${msg.m.service}.${msg.m.name}`
        const codes = byMethod.get(key) ?? new Map<string, number>()
        codes.set(codeName(a.code), (codes.get(codeName(a.code)) ?? 0) + 1)
        byMethod.set(key, codes)
        const sample = `${key} [${msg.how}, ${msg.payload.length} B, ${msg.payload.subarray(0, 48).toString('hex')}]: ${a.details.slice(0, 160)}`
        if (a.code === grpc.status.UNKNOWN) unknown.push(sample)
        if (a.code === grpc.status.DEADLINE_EXCEEDED) (/^Deadline exceeded/i.test(a.details) ? hangs : serverDeadline).push(sample)
        if (a.code === grpc.status.INTERNAL) {
          if (/deserializ/i.test(a.details)) deserializeInternal.count++
          else handlerInternal.push(sample)
        }
      }
    }
    await Promise.all(Array.from({ length: IN_FLIGHT }, () => worker()))
    const stormMs = Date.now() - stormStart

    t.comment(`sent ${sent} messages (${(bytes / 1048576).toFixed(1)} MiB) in ${(stormMs / 1000).toFixed(1)} s`)
    for (const [key, codes] of [...byMethod].sort()) t.comment(`  ${key}: ${[...codes].map(([cn, x]) => `${cn} ${x}`).join(', ')}`)
    t.ok(sent >= COUNT, `at least ${COUNT} messages were sent (${sent})`)
    t.equal(answered, sent, 'every message was answered')
    t.equal(node.child.exitCode, null, 'the node plugin never exited')
    t.equal(ctl.child.exitCode, null, 'the controller never exited')
    t.same(hangs.slice(0, 10), [], `no call hung until its ${DEADLINE_MS} ms deadline (${hangs.length})`)
    t.same(unknown.slice(0, 10), [], `no answer was UNKNOWN (${unknown.length})`)
    t.same(serverDeadline.slice(0, 10), [], `no CreateVolume/DeleteVolume timed out waiting for the node (${serverDeadline.length})`)
    t.same(handlerInternal.slice(0, 10), [], `a message that decodes never gets INTERNAL from a handler (${handlerInternal.length})`)
    t.equal(deserializeInternal.count, 0, `an undecodable message is answered INVALID_ARGUMENT, not grpc-js's INTERNAL "Error deserializing request" (${deserializeInternal.count} of ${sent})`)
    for (const [name, s] of [['Identity on the node socket', node.socket], ['Identity on the controller socket', ctl.socket]] as const) {
      const id = client('Identity', s)
      const p = await outcome(id.Probe({}))
      id.close()
      t.ok(p.code === 0 && p.res?.ready?.value === true, `${name}: Probe still answers ready`)
    }

    // ---- after the storm: a normal lifecycle still works
    const life = await (async () => {
      const vol = (await c.CreateVolume({ name: 'after-the-storm', volume_capabilities: [mountCap()] })).volume
      const st = path.join(sandbox, 'after-s')
      const tg = path.join(sandbox, 'after-t')
      mkdirSync(st)
      await n.NodeStageVolume({ volume_id: vol.volume_id, staging_target_path: st, volume_capability: mountCap(), volume_context: vol.volume_context })
      await n.NodePublishVolume({ volume_id: vol.volume_id, staging_target_path: st, target_path: tg, volume_capability: mountCap(), volume_context: vol.volume_context })
      writeFileSync(path.join(tg, 'f'), 'after the storm\n')
      const ok = readFileSync(path.join(dir, 'data/volumes', vol.volume_id, 'f'), 'utf8') === 'after the storm\n'
      await n.NodeUnpublishVolume({ volume_id: vol.volume_id, target_path: tg })
      await n.NodeUnstageVolume({ volume_id: vol.volume_id, staging_target_path: st })
      await c.DeleteVolume({ volume_id: vol.volume_id })
      return ok
    })().catch((e: Error) => e)
    t.equal(life, true, `create, stage, publish, write, unpublish, unstage, delete still work${life instanceof Error ? `: ${life.message}` : ''}`)

    // ---- every mount the storm made can be taken down through the driver's RPCs
    const leftovers = readMountInfo().filter((m) => isUnder(m.mountPoint, sandbox))
    t.comment(`mounts the storm left in the sandbox (publications and stagings it asked for): ${leftovers.length}`)
    const notVolumes = leftovers.filter((m) => !/\/volumes\/v-[0-9a-f]{32}$/.test(m.root))
    t.same(notVolumes.map((m) => `${m.mountPoint} (root ${m.root})`), [], 'every mount in the sandbox is a mount of a volume')
    for (const m of [...leftovers].reverse()) {
      const id = path.basename(m.root)
      let o = await outcome(n.NodeUnpublishVolume({ volume_id: id, target_path: m.mountPoint }))
      if (readMountInfo().some((x) => x.mountPoint === m.mountPoint)) o = await outcome(n.NodeUnstageVolume({ volume_id: id, staging_target_path: m.mountPoint }))
      if (o.code !== 0 && o.code !== 9) t.fail(`taking down ${m.mountPoint}: ${codeName(o.code)} ${o.message}`)
    }
    t.same(readMountInfo().filter((m) => isUnder(m.mountPoint, sandbox)).map((m) => m.mountPoint), [], 'the driver took down every mount in the sandbox')
    t.same(ourMounts().filter((mp) => !baseOurs.has(mp) && !isUnder(mp, sandbox)), [], 'no mount of a volume leaked outside the sandbox')
    t.same(readdirSync('/').filter((x) => !rootBefore.has(x)), [], 'nothing new appeared at the host\'s root')
    const canaryDiff = diffSnapshots(canarySnap, snapshotTree(canary))
    t.same(canaryDiff, [], 'the canary in the sandbox is unchanged (the storm aims NodePublish/NodeUnpublish at it through the symlinked parent k/lp)')

    // ---- and every volume can be deleted
    const undeletable: string[] = []
    for (const e of (await c.ListVolumes({})).entries as { volume: { volume_id: string } }[]) {
      let o = await outcome(c.DeleteVolume({ volume_id: e.volume.volume_id }))
      for (let i = 0; i < 20 && o.code === 10; i++) {
        await new Promise((res) => setTimeout(res, 100))
        o = await outcome(c.DeleteVolume({ volume_id: e.volume.volume_id }))
      }
      if (o.code !== 0) undeletable.push(`${e.volume.volume_id}: ${codeName(o.code)} ${o.message}`)
    }
    t.same(undeletable, [], 'every volume the storm created could be deleted')
    t.same(readdirSync(path.join(dir, 'data/volumes')), [], 'no volume directory is left')
    t.comment(`fuzz-grpc total ${((Date.now() - started) / 1000).toFixed(1)} s; seed ${SEED}`)

    function ourMounts(): string[] {
      const tag = `/${path.basename(dir)}/`
      return readMountInfo().filter((m) => (m.root + '/').includes(tag)).map((m) => m.mountPoint)
    }
  })
}

