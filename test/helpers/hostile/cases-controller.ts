// Hostile cases for the Controller service: create, delete, publish, list, capacity, snapshots,
// and a workload-made hostile tree through snapshot, restore and clone.
import type { Case, HostileEnv } from './env.js'
import { OK, INVALID, NOT_FOUND, ABORTED, UNIMPLEMENTED, EXHAUSTED, OUT_OF_RANGE, idValues, stringValues } from './env.js'
import { existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import path from 'node:path'
import { type Snapshot } from '../canary.js'
import { codeName, outcome } from '../rpc-outcome.js'

export async function controllerCases(e: HostileEnv, add: (c: Case) => void): Promise<void> {
  const { data, canary, node, c, n, A, B, volDirA, cap, deleteCreated, filesUnder, volumesOutsideRoot, ctxValues, flagValues } = e
  // ---- Controller.CreateVolume
  let nameSeq = 0
  const createReq = (over: Record<string, unknown>) => ({ name: `hostile-create-${++nameSeq}`, volume_capabilities: [cap], capacity_range: { required_bytes: String(1 << 20) }, ...over })
  add({ label: 'CreateVolume name: empty', call: () => c.CreateVolume(createReq({ name: '' })), expect: [INVALID], field: 'name' })
  // (LF in a name is the spec's business: see specNames below.)
  for (const x of stringValues().filter((v) => v.label !== 'newline')) {
    add({ label: `CreateVolume name: ${x.label}`, call: () => c.CreateVolume(createReq({ name: x.v })), expect: [x.bad ? INVALID : OK], field: 'name', undo: deleteCreated,
      check: () => volumesOutsideRoot() })
  }
  add({ label: 'CreateVolume name: an own-shape volume id', call: () => c.CreateVolume(createReq({ name: A.volume_id })), expect: [OK], undo: deleteCreated })
  const paramCases: { label: string; v: Record<string, string>; expect: number[] }[] = [
    { label: 'unknown key ../../canary', v: { '../../canary': 'x' }, expect: [INVALID] },
    { label: 'kind ../../canary', v: { kind: '../../canary' }, expect: [INVALID] },
    { label: 'kind with NUL', v: { kind: 'dir\0' }, expect: [INVALID] },
    { label: 'kind fullwidth', v: { kind: 'ｄｉｒ' }, expect: [INVALID] },
    { label: 'kind with trailing space', v: { kind: 'dir ' }, expect: [INVALID] },
    { label: '129-byte key', v: { ['csi.storage.k8s.io/' + 'k'.repeat(110)]: 'v' }, expect: [INVALID] },
    { label: '129-byte value', v: { 'csi.storage.k8s.io/pvc/name': 'v'.repeat(129) }, expect: [INVALID] },
    { label: 'key with NUL', v: { 'csi.storage.k8s.io/pvc\0': 'v' }, expect: [INVALID] },
    { label: 'value with newline', v: { 'csi.storage.k8s.io/pvc/name': 'a\nb' }, expect: [INVALID] },
    { label: 'provisioner key with .. value', v: { 'csi.storage.k8s.io/pvc/name': '../../canary' }, expect: [OK] },
    { label: 'key __proto__', v: JSON.parse('{"__proto__":"x"}') as Record<string, string>, expect: [INVALID, OK] },
    { label: 'key constructor', v: { constructor: 'x' }, expect: [INVALID] },
  ]
  for (const x of paramCases) {
    add({ label: `CreateVolume parameters: ${x.label}`, call: () => c.CreateVolume(createReq({ parameters: x.v })), expect: x.expect, field: 'parameters', undo: deleteCreated })
  }
  const segCases: { label: string; v: Record<string, string>; expect: number[] }[] = [
    { label: 'node ../../canary', v: { 'topology.tscsi.dev/node': '../../canary' }, expect: [EXHAUSTED] },
    { label: '129-byte key', v: { ['t'.repeat(129)]: 'e2e-node' }, expect: [INVALID] },
    { label: '129-byte value', v: { 'topology.tscsi.dev/node': 'n'.repeat(129) }, expect: [INVALID] },
    { label: 'value with NUL', v: { 'topology.tscsi.dev/node': 'e2e-node\0' }, expect: [INVALID] },
  ]
  for (const x of segCases) {
    add({ label: `CreateVolume accessibility_requirements.requisite: ${x.label}`, call: () => c.CreateVolume(createReq({ accessibility_requirements: { requisite: [{ segments: x.v }], preferred: [] } })), expect: x.expect, field: 'accessibility_requirements', undo: deleteCreated })
    add({ label: `CreateVolume accessibility_requirements.preferred: ${x.label}`, call: () => c.CreateVolume(createReq({ accessibility_requirements: { requisite: [], preferred: [{ segments: x.v }] } })), expect: x.expect.includes(EXHAUSTED) ? [OK, EXHAUSTED] : x.expect, field: 'accessibility_requirements', undo: deleteCreated })
  }
  for (const x of flagValues) {
    add({ label: `CreateVolume mount_flags: ${x.label}`, call: () => c.CreateVolume(createReq({ volume_capabilities: [{ ...cap, mount: { fs_type: '', mount_flags: x.v, volume_mount_group: '' } }] })),
      expect: x.v.some((f) => /[\0\n]/.test(f) || Buffer.byteLength(f) > 128) ? [INVALID] : [OK, INVALID], field: 'mount_flags', undo: deleteCreated })
  }
  for (const x of [{ label: 'negative', v: '-1' }, { label: 'beyond int64', v: '9223372036854775808' }]) {
    add({ label: `CreateVolume capacity_range.required_bytes: ${x.label}`, call: () => c.CreateVolume(createReq({ capacity_range: { required_bytes: x.v } })), expect: [INVALID, OUT_OF_RANGE], field: 'required_bytes', undo: deleteCreated })
  }

  // ---- Controller.DeleteVolume / ControllerGetVolume / ValidateVolumeCapabilities
  for (const x of idValues()) {
    // DeleteVolume of a volume that does not exist is OK (spec).
    add({ label: `DeleteVolume volume_id: ${x.label}`, call: () => c.DeleteVolume({ volume_id: x.v }), expect: [x.code === NOT_FOUND ? OK : x.code], field: 'volume_id',
      check: () => (existsSync(volDirA) && existsSync(path.join(data, 'volumes', B.volume_id)) ? [] : ['a real volume directory vanished']) })
    add({ label: `ControllerGetVolume volume_id: ${x.label}`, call: () => c.ControllerGetVolume({ volume_id: x.v }), expect: [x.code], field: 'volume_id' })
    add({ label: `ValidateVolumeCapabilities volume_id: ${x.label}`, call: () => c.ValidateVolumeCapabilities({ volume_id: x.v, volume_capabilities: [cap] }), expect: [x.code], field: 'volume_id' })
  }
  for (const x of paramCases.filter((p) => p.expect.length === 1 && p.expect[0] === INVALID && /129|NUL|newline/.test(p.label))) {
    add({ label: `ValidateVolumeCapabilities parameters: ${x.label}`, call: () => c.ValidateVolumeCapabilities({ volume_id: A.volume_id, volume_capabilities: [cap], parameters: x.v }), expect: [INVALID], field: 'parameters' })
  }
  for (const x of ctxValues.filter((v) => /129|NUL|newline/.test(v.label))) {
    add({ label: `ValidateVolumeCapabilities volume_context: ${x.label}`, call: () => c.ValidateVolumeCapabilities({ volume_id: A.volume_id, volume_capabilities: [cap], volume_context: x.v }), expect: [INVALID], field: 'volume_context' })
  }

  // ---- Controller.ControllerPublishVolume / ControllerUnpublishVolume (--enable-attach)
  for (const x of idValues()) {
    add({ label: `ControllerPublishVolume volume_id: ${x.label}`, call: () => c.ControllerPublishVolume({ volume_id: x.v, node_id: 'e2e-node', volume_capability: cap, readonly: false }), expect: [x.code], field: 'volume_id' })
    add({ label: `ControllerUnpublishVolume volume_id: ${x.label}`, call: () => c.ControllerUnpublishVolume({ volume_id: x.v, node_id: 'e2e-node' }), expect: [x.code === NOT_FOUND ? OK : x.code], field: 'volume_id' })
  }
  const nodeIds: { label: string; v: string; code: number }[] = [
    ...idValues().map((x) => ({ label: x.label, v: x.v, code: x.code })),
    { label: 'upper case of the real node', v: 'E2E-NODE', code: NOT_FOUND },
    { label: 'real node + zero width space', v: 'e2e-node\u200b', code: NOT_FOUND },
    { label: 'real node + trailing slash', v: 'e2e-node/', code: NOT_FOUND },
    { label: 'real node', v: 'e2e-node', code: OK },
  ]
  const unpubA = async () => { const o = await outcome(c.ControllerUnpublishVolume({ volume_id: A.volume_id, node_id: 'e2e-node' })); if (o.code) throw new Error(o.message) }
  for (const x of nodeIds) {
    add({ label: `ControllerPublishVolume node_id: ${x.label}`, call: () => c.ControllerPublishVolume({ volume_id: A.volume_id, node_id: x.v, volume_capability: cap, readonly: false }), expect: [x.code], field: 'node_id', undo: unpubA })
    add({ label: `ControllerUnpublishVolume node_id: ${x.label}`, call: () => c.ControllerUnpublishVolume({ volume_id: A.volume_id, node_id: x.v }), expect: [x.code === NOT_FOUND || x.code === OK || x.label === 'empty' ? OK : x.code], field: 'node_id' })
  }

  // ---- Controller.ListVolumes / GetCapacity
  for (const x of [...idValues().filter((v) => v.v !== ''), { label: 'a real id with a NUL', v: `${A.volume_id}\0`, code: INVALID }]) {
    // A well-formed id is a position in the sorted list (the last id of a page, possibly deleted since).
    add({ label: `ListVolumes starting_token: ${x.label}`, call: () => c.ListVolumes({ starting_token: x.v, max_entries: 1 }), expect: /^v-[0-9a-f]{32}$/.test(x.v) ? [ABORTED, OK] : [ABORTED] })
  }
  add({ label: 'ListVolumes max_entries: -1', call: () => c.ListVolumes({ max_entries: -1 }), expect: [INVALID], field: 'max_entries' })
  add({ label: 'ListVolumes max_entries: -2147483648', call: () => c.ListVolumes({ max_entries: -2147483648 }), expect: [INVALID], field: 'max_entries' })
  add({ label: 'ListVolumes max_entries: 2147483647', call: () => c.ListVolumes({ max_entries: 2147483647 }), expect: [OK] })
  for (const x of paramCases.filter((p) => !p.expect.includes(OK))) {
    add({ label: `GetCapacity parameters: ${x.label}`, call: () => c.GetCapacity({ volume_capabilities: [cap], parameters: x.v }), expect: x.expect, field: 'parameters' })
  }
  for (const x of segCases) {
    add({ label: `GetCapacity accessible_topology: ${x.label}`, call: () => c.GetCapacity({ volume_capabilities: [cap], accessible_topology: { segments: x.v } }), expect: x.expect.includes(EXHAUSTED) ? [OK] : x.expect, field: 'accessible_topology' })
  }
  // ---- Snapshots, content sources, modify (UNIMPLEMENTED while a version does not serve them)
  const snapIds = idValues().map((x) => ({ ...x, v: x.v.startsWith('v-') ? 's-' + x.v.slice(2) : x.v }))
  const deleteSnap = async (res: any) => {
    const o = await outcome(c.DeleteSnapshot({ snapshot_id: res.snapshot.snapshot_id }))
    if (o.code !== OK) throw new Error(`undo: DeleteSnapshot: ${codeName(o.code)} ${o.message}`)
  }
  let snapSeq = 0
  for (const x of idValues()) {
    add({ label: `CreateSnapshot source_volume_id: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: x.v, name: `hostile-snap-${++snapSeq}` }), expect: [x.code, UNIMPLEMENTED], field: 'source_volume_id', undo: deleteSnap })
    add({ label: `ControllerExpandVolume volume_id: ${x.label}`, call: () => c.ControllerExpandVolume({ volume_id: x.v, capacity_range: { required_bytes: '1' } }), expect: [x.code, UNIMPLEMENTED], field: 'volume_id' })
    add({ label: `ControllerModifyVolume volume_id: ${x.label}`, call: () => c.ControllerModifyVolume({ volume_id: x.v, mutable_parameters: {} }), expect: [x.code, UNIMPLEMENTED], field: 'volume_id' })
    add({ label: `CreateVolume volume_content_source.volume: ${x.label}`, call: () => c.CreateVolume(createReq({ volume_content_source: { volume: { volume_id: x.v } } })), expect: [x.code, UNIMPLEMENTED], field: 'volume_content_source', undo: deleteCreated })
  }
  for (const x of snapIds) {
    add({ label: `DeleteSnapshot snapshot_id: ${x.label}`, call: () => c.DeleteSnapshot({ snapshot_id: x.v }), expect: [x.code === NOT_FOUND ? OK : x.code, UNIMPLEMENTED], field: 'snapshot_id' })
    add({ label: `GetSnapshot snapshot_id: ${x.label}`, call: () => c.GetSnapshot({ snapshot_id: x.v }), expect: [x.code, UNIMPLEMENTED], field: 'snapshot_id' })
    // A filter that names nothing lists nothing (spec); a malformed one may be refused.
    add({ label: `ListSnapshots snapshot_id: ${x.label}`, call: () => c.ListSnapshots({ snapshot_id: x.v }), expect: x.code === INVALID ? [INVALID, OK, UNIMPLEMENTED] : [OK, UNIMPLEMENTED],
      check: (o) => (o.code === OK && o.res.entries.length > 0 ? ['a filter naming no snapshot listed some'] : []) })
    add({ label: `ListSnapshots source_volume_id: ${x.label}`, call: () => c.ListSnapshots({ source_volume_id: x.v.replace(/^s-/, 'v-') }), expect: x.code === INVALID ? [INVALID, OK, UNIMPLEMENTED] : [OK, UNIMPLEMENTED],
      check: (o) => (o.code === OK && o.res.entries.length > 0 ? ['a filter naming no volume listed some'] : []) })
    if (x.v !== '') add({ label: `ListSnapshots starting_token: ${x.label}`, call: () => c.ListSnapshots({ starting_token: x.v, max_entries: 1 }), expect: /^s-[0-9a-f]{32}$/.test(x.v) ? [ABORTED, OK, UNIMPLEMENTED] : [ABORTED, UNIMPLEMENTED] })
    add({ label: `CreateVolume volume_content_source.snapshot: ${x.label}`, call: () => c.CreateVolume(createReq({ volume_content_source: { snapshot: { snapshot_id: x.v } } })), expect: [x.code, UNIMPLEMENTED], field: 'volume_content_source', undo: deleteCreated })
  }
  for (const x of stringValues().filter((v) => v.label !== 'newline')) {
    add({ label: `CreateSnapshot name: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: B.volume_id, name: x.v }), expect: [x.bad ? INVALID : OK, UNIMPLEMENTED], field: 'name', undo: deleteSnap })
  }
  for (const x of paramCases.filter((p) => /129|NUL|newline/.test(p.label))) {
    add({ label: `CreateSnapshot parameters: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: B.volume_id, name: `hostile-snap-${++snapSeq}`, parameters: x.v }), expect: [INVALID, UNIMPLEMENTED], field: 'parameters', undo: deleteSnap })
    add({ label: `ControllerModifyVolume mutable_parameters: ${x.label}`, call: () => c.ControllerModifyVolume({ volume_id: B.volume_id, mutable_parameters: x.v }), expect: [INVALID, UNIMPLEMENTED], field: 'mutable_parameters' })
  }
  add({ label: 'ControllerModifyVolume mutable_parameters: unknown key ../../canary', call: () => c.ControllerModifyVolume({ volume_id: B.volume_id, mutable_parameters: { '../../canary': 'x' } }), expect: [INVALID, UNIMPLEMENTED], field: 'mutable_parameters' })
  // The spec's rule for names (CreateVolume, CreateSnapshot): any Unicode string within the
  // length limit except U+0000-U+0008, U+000B, U+000C, U+000E-U+001F, U+007F-U+009F. So TAB,
  // LF and CR are allowed, and the C1 controls are not.
  const specNames: { label: string; v: string; ok: boolean }[] = [
    { label: 'TAB (allowed by the spec)', v: 'a\tb', ok: true },
    { label: 'LF (allowed by the spec)', v: 'a\nb', ok: true },
    { label: 'CR (allowed by the spec)', v: 'a\rb', ok: true },
    { label: 'U+0085 NEL (banned by the spec)', v: 'a\u0085b', ok: false },
    { label: 'U+009B CSI (banned by the spec)', v: '\u009b31mred', ok: false },
    { label: 'U+0080 (banned by the spec)', v: 'a\u0080', ok: false },
  ]
  for (const x of specNames) {
    add({ label: `CreateVolume name: ${x.label}`, call: () => c.CreateVolume(createReq({ name: x.v })), expect: [x.ok ? OK : INVALID], field: 'name', undo: deleteCreated })
    add({ label: `CreateSnapshot name: ${x.label}`, call: () => c.CreateSnapshot({ source_volume_id: B.volume_id, name: x.v }), expect: [x.ok ? OK : INVALID, UNIMPLEMENTED], field: 'name', undo: deleteSnap })
  }

  // ---- Snapshot, restore and clone of a volume whose data a workload made hostile
  add({
    label: 'CreateSnapshot + restore + clone of a volume whose data holds symlinks to the canary, a fifo and a device node',
    call: async () => {
      const src = path.join(data, 'volumes', B.volume_id)
      symlinkSync(canary, path.join(src, 'esc-abs'))
      symlinkSync('../../../canary', path.join(src, 'esc-rel'))
      symlinkSync(path.join(canary, 'secret'), path.join(src, 'esc-file'))
      symlinkSync('/proc/self/root' + canary, path.join(src, 'esc-proc'))
      mkdirSync(path.join(src, 'dir'))
      symlinkSync('../../../../canary/sub', path.join(src, 'dir/esc-up'))
      execFileSync('mkfifo', [path.join(src, 'fifo')])
      execFileSync('mknod', [path.join(src, 'null'), 'c', '1', '3'])
      writeFileSync(path.join(src, 'plain.txt'), 'plain\n')
      const snap = await outcome(c.CreateSnapshot({ source_volume_id: B.volume_id, name: 'hostile-data-snap' }))
      if (snap.code === UNIMPLEMENTED) return { skipped: true }
      if (snap.code !== OK) throw Object.assign(new Error(snap.message), { code: snap.code, details: snap.message })
      const sid = snap.res.snapshot.snapshot_id
      for (let i = 0; i < 100; i++) {
        const g = await outcome(c.ListSnapshots({ snapshot_id: sid }))
        if (g.code === OK && g.res.entries[0]?.snapshot?.ready_to_use) break
        await new Promise((res) => setTimeout(res, 100))
      }
      // ABORTED means a copy is still running; retry as a CO would.
      const retry = async (f: () => Promise<unknown>) => {
        let o = await outcome(f())
        for (let k = 0; k < 100 && o.code === ABORTED; k++) {
          await new Promise((res) => setTimeout(res, 100))
          o = await outcome(f())
        }
        return o
      }
      const restored = await retry(() => c.CreateVolume(createReq({ name: 'hostile-restore', volume_content_source: { snapshot: { snapshot_id: sid } } })))
      const cloned = await retry(() => c.CreateVolume(createReq({ name: 'hostile-clone', volume_content_source: { volume: { volume_id: B.volume_id } } })))
      const problems: string[] = []
      for (const [what, o] of [['restore', restored], ['clone', cloned]] as const) {
        if (o.code !== OK) {
          problems.push(`${what}: ${codeName(o.code)} ${o.message}`)
          continue
        }
        const dst = path.join(data, 'volumes', o.res.volume.volume_id)
        for (const [name, link] of [['esc-abs', canary], ['esc-rel', '../../../canary'], ['esc-file', path.join(canary, 'secret')], ['esc-proc', '/proc/self/root' + canary], ['dir/esc-up', '../../../../canary/sub']] as const) {
          try {
            const st = lstatSync(path.join(dst, name))
            if (!st.isSymbolicLink() || readlinkSync(path.join(dst, name)) !== link) problems.push(`${what}: ${name} is not the same symlink (a ${st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'other'})`)
          } catch {
            problems.push(`${what}: ${name} is missing`)
          }
        }
        // Nothing of the canary may have been read into the new volume (regular files only: a fifo would block).
        const leak = filesUnder(dst).filter((f) => /top secret|canary: nothing|deep canary/.test(readFileSync(f, 'utf8')))
        if (leak.length > 0) problems.push(`${what}: canary content was copied into the new volume: ${leak.join(', ')}`)
        await outcome(c.DeleteVolume({ volume_id: o.res.volume.volume_id }))
      }
      await outcome(c.DeleteSnapshot({ snapshot_id: sid }))
      return { problems }
    },
    expect: [OK],
    check: (o) => (o.res?.problems as string[] | undefined) ?? [],
  })
}
