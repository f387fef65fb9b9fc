// kind: nfs on this project's host kernel, as root with the real processes: the kernel has no
// NFS client here (mount(2) of nfs4 is ENODEV), which is exactly what a node without one meets
// in a cluster. The node plugin's start-up probe finds that, so it does not offer nfs: CreateVolume
// and GetCapacity answer FAILED_PRECONDITION saying why, nothing is recorded, and a stage (a
// kubelet that insists) fails clearly and leaves nothing behind. The NFS paths themselves run in the VM guest
// (test/vm/nfs-volumes.vm.ts), against a real nfsd.
import t from 'tap'
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { CONTEXT } from '../common/keys.js'
import { volumeIdFor } from '../common/ids.js'
import { mountCap, mountsUnder, startDriver } from './helpers/driver.js'
import { codeName, outcome } from './helpers/rpc-outcome.js'

const nfs = { kind: 'nfs', server: '127.0.0.1', share: '/export' }
// nfs4 is listed once its module is loaded; a kernel that has it as a module loads it on the
// first mount, so the module tree counts too.
const hasNfsClient = readFileSync('/proc/filesystems', 'utf8').includes('\tnfs4\n') ||
  existsSync(`/lib/modules/${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}/kernel/fs/nfs/nfsv4.ko`)

if (process.getuid?.() !== 0) {
  t.skip('the node plugin mounts, as root', () => {})
} else if (hasNfsClient) {
  // Nothing here would fail as this file expects; the VM suites cover a kernel with a client.
  t.skip('this kernel has an NFS client; test/vm/nfs-volumes.vm.ts covers it', () => {})
} else {
  t.test('a node without an NFS client: clear errors, nothing left behind', async (t) => {
    const { dir, c, n } = await startDriver(t)
    const nodes = path.join(dir, 'state/store/nodes')
    const spec = JSON.parse(readFileSync(path.join(nodes, readdirSync(nodes).find((f) => f.endsWith('.spec.json'))!), 'utf8'))
    t.same(spec.kinds, ['dir', 'image'], 'the node offers dir and image volumes, not nfs: its probe mount(2) of nfs4 was ENODEV')
    const created = await outcome(c.CreateVolume({ name: 'pvc-shared', volume_capabilities: [mountCap('MULTI_NODE_MULTI_WRITER')], parameters: nfs }, 60_000))
    t.equal(codeName(created.code), 'FAILED_PRECONDITION', created.message)
    t.match(created.message, /no registered node serves nfs volumes.*NFS client/)
    t.same((await c.ListVolumes({})).entries, [], 'nothing is recorded: the CO retries, and finds a node once one can')
    const capacity = await outcome(c.GetCapacity({ parameters: nfs }))
    t.equal(codeName(capacity.code), 'FAILED_PRECONDITION', `GetCapacity of an nfs class: ${capacity.message}`)
    t.match(capacity.message, /no registered node serves nfs volumes/)

    const staging = path.join(dir, 'kubelet/staging')
    mkdirSync(staging, { recursive: true })
    const id = volumeIdFor('pvc-shared')
    const ctx = { [CONTEXT.kind]: 'nfs', [CONTEXT.server]: '127.0.0.1', [CONTEXT.share]: '/export', [CONTEXT.subDir]: 'pvc-shared' }
    const staged = await outcome(n.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap('MULTI_NODE_MULTI_WRITER'), volume_context: ctx }))
    t.equal(codeName(staged.code), 'FAILED_PRECONDITION', staged.message)
    t.match(staged.message, /no NFS client/)
    t.same(mountsUnder(dir), [], 'nothing mounted')
    t.notOk(existsSync(path.join(dir, 'data/nfs', id)), 'no note of a mount that never was')
    t.same(readdirSync(path.join(dir, 'data')).filter((f) => f === 'nfs-work').flatMap(() => readdirSync(path.join(dir, 'data/nfs-work'))), [], 'no work folder left')

    // A context written by hand: refused by name before anything is mounted.
    const hostile: [Record<string, string>, RegExp][] = [
      [{ [CONTEXT.subDir]: '../../etc' }, /volume_context\[tscsi\.dev\/subDir\]/],
      [{ [CONTEXT.server]: 'x,vers=2' }, /volume_context\[tscsi\.dev\/server\]/],
      [{ [CONTEXT.share]: '/export\n/etc' }, /volume_context\[tscsi\.dev\/share\]/],
      [{ [CONTEXT.share]: '' }, /volume_context\[tscsi\.dev\/share\]/],
    ]
    for (const [bad, re] of hostile) {
      const out = await outcome(n.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: mountCap('MULTI_NODE_MULTI_WRITER'), volume_context: { ...ctx, ...bad } }))
      t.equal(codeName(out.code), 'INVALID_ARGUMENT', `${JSON.stringify(bad)}: ${out.message}`)
      t.match(out.message, re)
    }
    const opt = await outcome(n.NodeStageVolume({ volume_id: id, staging_target_path: staging, volume_capability: { ...mountCap('MULTI_NODE_MULTI_WRITER'), mount: { fs_type: '', mount_flags: ['addr=10.0.0.1'], volume_mount_group: '' } }, volume_context: ctx }))
    t.equal(codeName(opt.code), 'INVALID_ARGUMENT', `a mount option that would move the mount to another server: ${opt.message}`)
    t.same(mountsUnder(dir), [], 'still nothing mounted')
  })
}
