// Hostile cases for the Node service: stage, unstage, publish, unpublish and stats, each with the
// codes the CSI spec and DESIGN.md ask for and, where a case could reach outside the roots, a check.
import type { Case, HostileEnv } from './env.js'
import { OK, INVALID, NOT_FOUND, EXISTS, PRECONDITION, UNIMPLEMENTED, idValues, stringValues } from './env.js'
import { existsSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { mountPoints } from '../canary.js'
import { outcome } from '../rpc-outcome.js'

export async function nodeCases(e: HostileEnv, add: (c: Case) => void): Promise<void> {
  const { dir, data, state, kub, canary, tmpfs, longDir, longStaging, node, n, A, B, stagingA, pubA, cap, stageReq, publishReq, unstage, unpublish, stillThere, tmpfsMounted, symlinkKept, malformedPaths, rootPaths, statePaths, escapeTargets, escapeStaging, escapeCodes, nameTooLong, pathTooLong, unpublishKeep, ctxValues, flagValues } = e
  // ---- Node.NodeStageVolume
  for (const x of idValues()) {
    add({ label: `NodeStageVolume volume_id: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_id: x.v })), expect: [x.code], field: 'volume_id' })
  }
  add({ label: 'NodeStageVolume volume_id: volume B (real, other volume) at a fresh path', call: () => n.NodeStageVolume(stageReq({ volume_id: B.volume_id, volume_context: B.volume_context })), expect: [OK],
    undo: async () => { const o = await outcome(n.NodeUnstageVolume({ volume_id: B.volume_id, staging_target_path: path.join(kub, 'staging/fresh') })); if (o.code) throw new Error(o.message) } })
  for (const p of malformedPaths) {
    add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: [INVALID], field: 'staging_target_path' })
  }
  for (const p of rootPaths) {
    add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: p.codes ?? [INVALID], field: 'staging_target_path' })
  }
  for (const p of statePaths) {
    add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: p.stage, field: 'staging_target_path', undo: unstage(p.v) })
  }
  for (const p of escapeStaging) {
    add({ label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: escapeCodes(p.v), undo: unstage(p.v) })
  }
  const stagePathCases: { label: string; v: string; expect: number[]; field?: string; undo?: boolean; check?: () => string[] }[] = [
    { label: 'symlink -> canary/stage', v: path.join(kub, 'stg-link'), expect: [PRECONDITION] },
    { label: 'symlink -> the staged path of A', v: path.join(kub, 'lnk-staging'), expect: [PRECONDITION] },
    { label: 'dangling symlink', v: path.join(kub, 'pods/lnk-dangling'), expect: [PRECONDITION] },
    { label: 'under a dangling symlinked parent', v: path.join(kub, 'lnk-dangling-parent/x'), expect: [PRECONDITION] },
    { label: 'a regular file', v: path.join(kub, 'staging/file'), expect: [PRECONDITION], check: stillThere(path.join(kub, 'staging/file'), 'a regular file\n') },
    { label: 'under a regular file', v: path.join(kub, 'staging/file/x'), expect: [PRECONDITION] },
    { label: 'does not exist', v: path.join(kub, 'staging/missing'), expect: [PRECONDITION] },
    { label: 'parent does not exist', v: path.join(kub, 'nope/x'), expect: [PRECONDITION] },
    { label: '256-byte component', v: path.join(kub, 'staging', 's'.repeat(256)), expect: [INVALID, PRECONDITION], field: 'staging_target_path' },
    { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, PRECONDITION], field: 'staging_target_path' },
    { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [EXISTS, PRECONDITION], check: tmpfsMounted },
    { label: 'a directory on another filesystem (tmpfs)', v: path.join(tmpfs, 'stage'), expect: [OK], undo: true },
    { label: 'a 300-byte path', v: longStaging, expect: [OK], undo: true },
    { label: 'look-alike name (U+2113, U+2215), existing', v: path.join(kub, 'staging/ℓook∕alike'), expect: [OK], undo: true },
    { label: 'look-alike dots (U+2024), missing', v: path.join(kub, 'staging/\u2024\u2024'), expect: [PRECONDITION] },
    { label: 'inside the staged volume A (through its staging mount)', v: path.join(stagingA, 'sub'), expect: [INVALID, PRECONDITION], undo: true },
    { label: 'the staged path of A again (idempotent)', v: stagingA, expect: [OK] },
  ]
  for (const p of stagePathCases) {
    const c0: Case = { label: `NodeStageVolume staging_target_path: ${p.label}`, call: () => n.NodeStageVolume(stageReq({ staging_target_path: p.v })), expect: p.expect }
    if (p.field) c0.field = p.field
    if (p.undo) c0.undo = unstage(p.v)
    if (p.check) c0.check = p.check
    add(c0)
  }
  for (const x of ctxValues) {
    add({ label: `NodeStageVolume volume_context: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_context: { ...A.volume_context, ...x.v } })), expect: x.expect, field: 'volume_context', undo: unstage(path.join(kub, 'staging/fresh')) })
  }
  for (const x of flagValues) {
    add({ label: `NodeStageVolume mount_flags: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_capability: { ...cap, mount: { fs_type: '', mount_flags: x.v, volume_mount_group: '' } } })), expect: x.expect, field: 'mount_flags', undo: unstage(path.join(kub, 'staging/fresh')) })
  }
  for (const x of stringValues().filter((s) => s.bad)) {
    add({ label: `NodeStageVolume fs_type: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_capability: { ...cap, mount: { fs_type: x.v, mount_flags: [], volume_mount_group: '' } } })), expect: [INVALID], field: 'fs_type' })
    add({ label: `NodeStageVolume volume_mount_group: ${x.label}`, call: () => n.NodeStageVolume(stageReq({ volume_capability: { ...cap, mount: { fs_type: '', mount_flags: [], volume_mount_group: x.v } } })), expect: [INVALID], field: 'volume_mount_group' })
  }

  // ---- Node.NodeUnstageVolume
  for (const x of idValues()) {
    // A well-formed id that is not ours names nothing staged: NOT_FOUND, or OK as a no-op.
    add({ label: `NodeUnstageVolume volume_id: ${x.label}`, call: () => n.NodeUnstageVolume({ volume_id: x.v, staging_target_path: path.join(kub, 'staging/fresh') }), expect: x.code === NOT_FOUND ? [NOT_FOUND, OK] : [x.code], field: 'volume_id' })
  }
  add({ label: 'NodeUnstageVolume volume_id: volume B at the staged path of A', call: () => n.NodeUnstageVolume({ volume_id: B.volume_id, staging_target_path: stagingA }), expect: [PRECONDITION],
    check: () => (mountPoints().includes(stagingA) ? [] : ['the staging mount of A was taken down by an unstage of B']) })
  add({ label: 'NodeUnstageVolume volume_id: unknown own-shape id at the staged path of A', call: () => n.NodeUnstageVolume({ volume_id: `v-${'0'.repeat(32)}`, staging_target_path: stagingA }), expect: [PRECONDITION, NOT_FOUND],
    check: () => (mountPoints().includes(stagingA) ? [] : ['the staging mount of A was taken down']) })
  for (const p of malformedPaths) {
    add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: [INVALID], field: 'staging_target_path' })
  }
  for (const p of rootPaths) {
    add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: p.codes ?? [INVALID], field: 'staging_target_path' })
  }
  for (const p of statePaths) {
    add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: [INVALID, OK], field: 'staging_target_path' })
  }
  for (const p of escapeStaging) {
    // Nothing is staged there: a no-op OK is fine as long as nothing is touched.
    add({ label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: [OK, PRECONDITION, INVALID] })
  }
  const unstagePathCases: { label: string; v: string; expect: number[]; check?: () => string[] }[] = [
    { label: 'symlink -> canary/stage', v: path.join(kub, 'stg-link'), expect: [PRECONDITION, OK], check: symlinkKept(path.join(kub, 'stg-link')) },
    { label: 'symlink -> the staged path of A', v: path.join(kub, 'lnk-staging'), expect: [PRECONDITION, OK], check: () => (mountPoints().includes(stagingA) ? [] : ['unstage through a symlink took down the real staging mount']) },
    { label: 'a regular file', v: path.join(kub, 'staging/file'), expect: [PRECONDITION, OK], check: stillThere(path.join(kub, 'staging/file'), 'a regular file\n') },
    { label: 'does not exist', v: path.join(kub, 'staging/missing'), expect: [OK] },
    { label: 'parent does not exist', v: path.join(kub, 'nope/x'), expect: [OK] },
    { label: 'under a regular file', v: path.join(kub, 'staging/file/x'), expect: [OK, PRECONDITION] },
    { label: '256-byte component', v: path.join(kub, 'staging', 's'.repeat(256)), expect: [INVALID, OK] },
    { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, OK] },
    { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [PRECONDITION], check: tmpfsMounted },
    { label: 'a pod target of a foreign filesystem', v: path.join(tmpfs, 'pods'), expect: [OK, PRECONDITION], check: () => (existsSync(path.join(tmpfs, 'pods')) ? [] : ['the CO\'s directory was removed']) },
  ]
  for (const p of unstagePathCases) {
    const c0: Case = { label: `NodeUnstageVolume staging_target_path: ${p.label}`, call: () => n.NodeUnstageVolume({ volume_id: A.volume_id, staging_target_path: p.v }), expect: p.expect, field: 'staging_target_path' }
    if (p.check) c0.check = p.check
    add(c0)
  }

  add({
    label: "NodeUnstageVolume staging_target_path: a dir volume whose data holds a file named 'device'",
    call: async () => {
      const st = path.join(kub, 'staging/fresh')
      await n.NodeStageVolume(stageReq({ volume_id: B.volume_id, volume_context: B.volume_context, staging_target_path: st }))
      writeFileSync(path.join(data, 'volumes', B.volume_id, 'device'), 'user data named device\n')
      return n.NodeUnstageVolume({ volume_id: B.volume_id, staging_target_path: st })
    },
    expect: [OK],
    check: stillThere(path.join(data, 'volumes', B.volume_id, 'device'), 'user data named device\n'),
  })

  // ---- Node.NodePublishVolume
  for (const x of idValues()) {
    add({ label: `NodePublishVolume volume_id: ${x.label}`, call: () => n.NodePublishVolume(publishReq({ volume_id: x.v })), expect: [x.code], field: 'volume_id' })
  }
  add({ label: 'NodePublishVolume volume_id: volume B (not staged) with the staging path of A', call: () => n.NodePublishVolume(publishReq({ volume_id: B.volume_id, volume_context: B.volume_context })), expect: [PRECONDITION] })
  for (const p of malformedPaths) {
    add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: [INVALID], field: 'target_path' })
    if (p.v !== '') add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v })), expect: [INVALID], field: 'staging_target_path' })
  }
  add({ label: 'NodePublishVolume staging_target_path: empty', call: () => n.NodePublishVolume(publishReq({ staging_target_path: '' })), expect: [PRECONDITION] })
  for (const p of rootPaths) {
    add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: p.codes ?? [INVALID], field: 'target_path' })
    add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v })), expect: p.codes ?? [INVALID], field: 'staging_target_path' })
  }
  for (const p of statePaths) {
    add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: p.publish, field: 'target_path', undo: unpublishKeep(p.v) })
  }
  for (const p of escapeTargets) {
    add({ label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: escapeCodes(p.v), undo: unpublishKeep(p.v) })
  }
  for (const p of escapeStaging) {
    add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v })), expect: escapeCodes(p.v) })
  }
  const targetCases: { label: string; v: string; expect: number[]; field?: string; undo?: boolean; check?: () => string[] }[] = [
    { label: 'symlink -> canary/empty', v: path.join(kub, 'pods/lnk-target'), expect: [PRECONDITION], check: symlinkKept(path.join(kub, 'pods/lnk-target')) },
    { label: 'dangling symlink -> canary/missing', v: path.join(kub, 'pods/lnk-dangling'), expect: [PRECONDITION] },
    { label: 'under a dangling symlinked parent', v: path.join(kub, 'lnk-dangling-parent/mount'), expect: [PRECONDITION] },
    { label: 'a regular file', v: path.join(kub, 'pods/file-target'), expect: [PRECONDITION], check: stillThere(path.join(kub, 'pods/file-target'), 'a regular file\n') },
    { label: 'under a regular file', v: path.join(kub, 'pods/file-target/mount'), expect: [PRECONDITION] },
    { label: 'parent does not exist', v: path.join(kub, 'pods/nope/mount'), expect: [PRECONDITION] },
    { label: 'a non-empty directory the CO made', v: path.join(kub, 'pods/nonempty'), expect: [OK, PRECONDITION], undo: false, check: stillThere(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n') },
    { label: '256-byte component', v: nameTooLong, expect: [INVALID, PRECONDITION], field: 'target_path' },
    { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, PRECONDITION], field: 'target_path' },
    { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [EXISTS, PRECONDITION], check: tmpfsMounted },
    { label: 'a new dir on another filesystem (tmpfs)', v: path.join(tmpfs, 'pods/mount'), expect: [OK], undo: true },
    { label: 'a 300-byte path', v: path.join(longDir, 'mount'), expect: [OK], undo: true },
    { label: 'look-alike name (U+2215 slashes with ..)', v: path.join(kub, 'pods/p1/a\u2215..\u2215..\u2215canary'), expect: [OK], undo: true },
    { label: 'look-alike fullwidth dots', v: path.join(kub, 'pods/p1/\uff0e\uff0e'), expect: [OK], undo: true },
    { label: 'look-alike one-dot leaders', v: path.join(kub, 'pods/p1/\u2024\u2024'), expect: [OK], undo: true },
    { label: 'same as the staging path', v: stagingA, expect: [INVALID, PRECONDITION], field: 'target_path', check: () => (mountPoints().includes(stagingA) ? [] : ['the staging mount was lost']) },
    { label: 'inside the staged volume A (through its staging mount)', v: path.join(stagingA, 'pod-mount'), expect: [INVALID, PRECONDITION], field: 'target_path', undo: true },
  ]
  for (const p of targetCases) {
    const c0: Case = { label: `NodePublishVolume target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ target_path: p.v })), expect: p.expect }
    if (p.field) c0.field = p.field
    if (p.undo) c0.undo = unpublish(p.v)
    else if (p.expect.includes(OK)) c0.undo = unpublishKeep(p.v)
    if (p.check) c0.check = p.check
    add(c0)
  }
  const stagingCases: { label: string; v: string; expect: number[] }[] = [
    { label: 'symlink -> canary/stage', v: path.join(kub, 'stg-link'), expect: [PRECONDITION] },
    { label: 'symlink -> the staged path of A', v: path.join(kub, 'lnk-staging'), expect: [PRECONDITION] },
    { label: 'not staged (an empty dir)', v: path.join(kub, 'staging/fresh'), expect: [PRECONDITION] },
    { label: 'a regular file', v: path.join(kub, 'staging/file'), expect: [PRECONDITION] },
    { label: 'does not exist', v: path.join(kub, 'staging/missing'), expect: [PRECONDITION] },
    { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [PRECONDITION] },
    { label: '256-byte component', v: path.join(kub, 'staging', 's'.repeat(256)), expect: [INVALID, PRECONDITION] },
  ]
  for (const p of stagingCases) {
    add({ label: `NodePublishVolume staging_target_path: ${p.label}`, call: () => n.NodePublishVolume(publishReq({ staging_target_path: p.v, target_path: path.join(kub, 'pods/p2/mount') })), expect: p.expect, field: 'staging_target_path', undo: unpublish(path.join(kub, 'pods/p2/mount')) })
  }
  for (const x of ctxValues) {
    add({ label: `NodePublishVolume volume_context: ${x.label}`, call: () => n.NodePublishVolume(publishReq({ volume_context: { ...A.volume_context, ...x.v } })), expect: x.expect, field: 'volume_context', undo: unpublish(path.join(kub, 'pods/p1/mount')) })
  }
  for (const x of flagValues) {
    add({ label: `NodePublishVolume mount_flags: ${x.label}`, call: () => n.NodePublishVolume(publishReq({ volume_capability: { ...cap, mount: { fs_type: '', mount_flags: x.v, volume_mount_group: '' } } })), expect: x.expect, field: 'mount_flags', undo: unpublish(path.join(kub, 'pods/p1/mount')) })
  }

  // ---- Node.NodeUnpublishVolume
  for (const x of idValues()) {
    add({ label: `NodeUnpublishVolume volume_id: ${x.label}`, call: () => n.NodeUnpublishVolume({ volume_id: x.v, target_path: path.join(kub, 'pods/p1/mount') }), expect: x.code === NOT_FOUND ? [NOT_FOUND, OK] : [x.code], field: 'volume_id' })
  }
  add({ label: 'NodeUnpublishVolume volume_id: not ours (the ephemeral path) at a non-empty directory the CO made', call: () => n.NodeUnpublishVolume({ volume_id: 'csi-0123456789abcdef', target_path: path.join(kub, 'pods/nonempty') }), expect: [PRECONDITION, OK],
    check: stillThere(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n') })
  add({ label: "NodeUnpublishVolume volume_id: volume B at A's publication", call: () => n.NodeUnpublishVolume({ volume_id: B.volume_id, target_path: pubA }), expect: [PRECONDITION],
    check: () => (mountPoints().includes(pubA) ? [] : ["A's publication was taken down by an unpublish of B"]) })
  add({ label: "NodeUnpublishVolume volume_id: unknown own-shape id at A's publication", call: () => n.NodeUnpublishVolume({ volume_id: `v-${'0'.repeat(32)}`, target_path: pubA }), expect: [PRECONDITION, NOT_FOUND],
    check: () => (mountPoints().includes(pubA) ? [] : ["A's publication was taken down"]) })
  add({ label: "NodePublishVolume volume_id: volume B onto A's publication", call: () => n.NodePublishVolume(publishReq({ volume_id: B.volume_id, volume_context: B.volume_context, target_path: pubA })), expect: [PRECONDITION, EXISTS] })
  for (const p of malformedPaths) {
    add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: [INVALID], field: 'target_path' })
  }
  for (const p of rootPaths) {
    add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: p.codes ?? [INVALID], field: 'target_path' })
  }
  for (const p of statePaths) {
    add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: [INVALID, PRECONDITION, OK], field: 'target_path',
      check: () => (existsSync(state) && existsSync(path.join(state, 'store/volumes')) ? [] : ['the state dir was removed']) })
  }
  for (const p of [...escapeTargets, ...escapeStaging]) {
    // Nothing is published there; whatever the answer, the canary must stay as it is.
    add({ label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: [OK, PRECONDITION, INVALID] })
  }
  const unpublishCases: { label: string; v: string; expect: number[]; check?: () => string[] }[] = [
    { label: 'symlink -> canary/empty', v: path.join(kub, 'pods/lnk-target'), expect: [PRECONDITION, OK], check: symlinkKept(path.join(kub, 'pods/lnk-target')) },
    { label: 'a regular file', v: path.join(kub, 'pods/file-target'), expect: [PRECONDITION, OK], check: stillThere(path.join(kub, 'pods/file-target'), 'a regular file\n') },
    { label: 'a non-empty directory the CO made', v: path.join(kub, 'pods/nonempty'), expect: [PRECONDITION, OK], check: stillThere(path.join(kub, 'pods/nonempty/keep.txt'), 'pod data the driver did not create\n') },
    { label: 'a character device node (not mounted)', v: path.join(kub, 'pods/devnode'), expect: [PRECONDITION, OK], check: () => (existsSync(path.join(kub, 'pods/devnode')) ? [] : ['the device node was removed']) },
    { label: 'symlinked parent -> canary/file.txt (regular file, not mounted)', v: path.join(kub, 'pods/lnk-parent/file.txt'), expect: [PRECONDITION, OK] },
    { label: '/proc/self/root + canary/secret (regular file, not mounted)', v: `/proc/self/root${canary}/secret`, expect: [INVALID, PRECONDITION, OK] },
    { label: 'the root of a foreign tmpfs mount', v: tmpfs, expect: [PRECONDITION], check: tmpfsMounted },
    { label: 'the staged path of A (a mount of this volume that is not a publication)', v: stagingA, expect: [INVALID, PRECONDITION], check: () => (mountPoints().includes(stagingA) && existsSync(stagingA) ? [] : ['NodeUnpublishVolume took down the staging mount / removed the staging dir']) },
    { label: 'does not exist', v: path.join(kub, 'pods/p1/missing'), expect: [OK] },
    { label: 'parent does not exist', v: path.join(kub, 'pods/nope/mount'), expect: [OK] },
    { label: '256-byte component', v: nameTooLong, expect: [INVALID, OK] },
    { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, OK] },
  ]
  for (const p of unpublishCases) {
    const c0: Case = { label: `NodeUnpublishVolume target_path: ${p.label}`, call: () => n.NodeUnpublishVolume({ volume_id: A.volume_id, target_path: p.v }), expect: p.expect, field: 'target_path' }
    if (p.check) c0.check = p.check
    add(c0)
  }

  // ---- Node.NodeGetVolumeStats
  for (const x of idValues()) {
    add({ label: `NodeGetVolumeStats volume_id: ${x.label}`, call: () => n.NodeGetVolumeStats({ volume_id: x.v, volume_path: stagingA }), expect: [x.code], field: 'volume_id' })
  }
  for (const p of malformedPaths) {
    // csi-sanity asks for the stats of volume_path "some/path" and wants NOT_FOUND: a relative
    // path is somewhere the volume is not mounted. Every other malformed form is refused.
    const relative = p.v !== '' && !p.v.startsWith('/')
    add({ label: `NodeGetVolumeStats volume_path: ${p.label}`, call: () => n.NodeGetVolumeStats({ volume_id: A.volume_id, volume_path: p.v }), expect: relative ? [INVALID, NOT_FOUND] : [INVALID], field: 'volume_path' })
  }
  const statsCases: { label: string; v: string; expect: number[] }[] = [
    { label: 'symlink -> the staged path', v: path.join(kub, 'lnk-staging'), expect: [NOT_FOUND, OK] },
    { label: 'symlinked parent -> canary', v: path.join(kub, 'pods/lnk-parent/empty'), expect: [NOT_FOUND, OK] },
    { label: 'does not exist', v: path.join(kub, 'pods/p1/missing'), expect: [NOT_FOUND] },
    { label: '256-byte component', v: nameTooLong, expect: [INVALID, NOT_FOUND] },
    { label: '4096 bytes (PATH_MAX with its NUL)', v: pathTooLong, expect: [INVALID, NOT_FOUND] },
    { label: 'the data root', v: data, expect: [INVALID, NOT_FOUND, OK] },
  ]
  for (const p of statsCases) {
    add({ label: `NodeGetVolumeStats volume_path: ${p.label}`, call: () => n.NodeGetVolumeStats({ volume_id: A.volume_id, volume_path: p.v }), expect: p.expect, field: 'volume_path' })
  }
  for (const p of [...malformedPaths.filter((m) => /NUL|newline|4097/.test(m.label))]) {
    add({ label: `NodeGetVolumeStats staging_target_path: ${p.label}`, call: () => n.NodeGetVolumeStats({ volume_id: A.volume_id, volume_path: stagingA, staging_target_path: p.v }), expect: [INVALID], field: 'staging_target_path' })
  }
  for (const x of idValues().slice(0, 6)) {
    add({ label: `NodeExpandVolume volume_id: ${x.label}`, call: () => n.NodeExpandVolume({ volume_id: x.v, volume_path: stagingA }), expect: [x.code, UNIMPLEMENTED], field: 'volume_id' })
  }

}
