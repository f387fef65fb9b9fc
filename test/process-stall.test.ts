// A slow kernel call on one volume must not stall the node plugin: while a NodeStageVolume's
// mount(2) waits in the kernel, Probe and a NodePublishVolume of another volume answer. The
// slowness is made, not hoped for: the image sits on a filesystem the test freezes, so ext4's
// mount waits on its first superblock write until the test thaws it. Only the order of events
// is asserted (both answers arrive while the stage is still out), never a time. Root only.
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { spawnSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import path from 'node:path'
import { freeze, listLoopDevices, loopAttachAsync, mountAsync, statx, thaw } from '../native/index.js'
import { client, mountCap, start, testRig } from './helpers/driver.js'

const hasTool = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
const volumeId = (): string => `v-${randomBytes(16).toString('hex')}`
const sh = (cmd: string, ...args: string[]): number | null => spawnSync(cmd, args, { stdio: 'ignore' }).status

if (process.getuid?.() !== 0) {
  t.skip('needs root (loop devices, mounts, FIFREEZE)', () => {})
} else if (!hasTool('mkfs.ext4') || !hasTool('mkfs.xfs')) {
  t.fail('mkfs.ext4 and mkfs.xfs are installed by the set-up step; one is missing')
} else {
  t.setTimeout(180_000)
  t.test('Probe and another volume\'s NodePublishVolume answer while a mount waits in the kernel', async (t) => {
    // Registered before the rig's teardown so it runs first: unmounting a frozen filesystem
    // would leave its superblock frozen and its loop device held for good.
    let frozenAt: string | undefined
    const thawOnce = (): void => {
      if (frozenAt) thaw(frozenAt)
      frozenAt = undefined
    }
    t.teardown(thawOnce)
    process.once('exit', thawOnce)
    const rig = testRig(t)
    const dir = rig.dir
    // The pool's images folder is a small xfs of its own: freezing it holds exactly the images.
    const images = path.join(dir, 'data', 'images')
    mkdirSync(images, { recursive: true })
    const outer = path.join(dir, 'images.xfs')
    t.equal(sh('truncate', '-s', '320M', outer), 0)
    t.equal(sh('mkfs.xfs', '-q', outer), 0, 'mkfs.xfs for the images folder')
    await loopAttachAsync(outer, { autoclear: true, whileOpen: (a) => mountAsync(a.device, images, 'xfs', 0, null) })
    // Volumes are found on disk by id: the node needs neither controller nor store to stage them.
    const slow = volumeId()
    const img = path.join(images, `${slow}.img`)
    t.equal(sh('truncate', '-s', '64M', img), 0)
    t.equal(sh('mkfs.ext4', '-q', '-F', img), 0, 'mkfs.ext4 of the slow volume\'s image')
    const other = volumeId()
    mkdirSync(path.join(dir, 'data', 'volumes', other), { recursive: true })

    const node = await start('node', dir)
    rig.procs.push(node)
    const n = client('Node', node.socket)
    const id = client('Identity', node.socket)
    t.teardown(() => { n.close(); id.close() })
    const base = (v: string, kind: string) => ({ volume_id: v, volume_capability: mountCap(), volume_context: { 'tscsi.dev/kind': kind } })
    const otherStaging = path.join(dir, 'other-staging')
    mkdirSync(otherStaging)
    await n.NodeStageVolume({ ...base(other, 'dir'), staging_target_path: otherStaging })

    const slowStaging = path.join(dir, 'slow-staging')
    mkdirSync(slowStaging)
    freeze(images)
    frozenAt = images
    // A safety net, not an assertion: a plugin that stalls would leave this test waiting on the
    // thaw it never gets to, and a frozen filesystem must not outlive a failed run.
    setTimeout(thawOnce, 60_000).unref()
    const events: string[] = []
    const staging = n.NodeStageVolume({ ...base(slow, 'image'), staging_target_path: slowStaging }, 120_000)
      .then(() => events.push('stage answered'), (e: unknown) => events.push(`stage failed: ${String(e)}`))
    // The loop device appears once LOOP_CONFIGURE is through: from then on the stage is in
    // mount(2), held by the freeze. (A stage that failed before that ends the wait too.)
    while (!listLoopDevices().some((l) => l.backingFile === img) && events.length === 0) await new Promise((r) => setTimeout(r, 10))
    t.same(events, [], 'the stage is in the kernel, not answered')

    const probe = await id.Probe({}).finally(() => events.push('probe answered'))
    t.equal(probe.ready?.value, true, 'Probe says ready')
    const target = path.join(dir, 'pod', 'vol')
    mkdirSync(path.dirname(target))
    await n.NodePublishVolume({ ...base(other, 'dir'), staging_target_path: otherStaging, target_path: target }).finally(() => events.push('publish answered'))
    t.ok(statx(target).isMountRoot, 'the other volume is published')
    t.same(events, ['probe answered', 'publish answered'], 'Probe and the other publish answered while the mount was still held')

    thawOnce()
    await staging
    t.same(events, ['probe answered', 'publish answered', 'stage answered'], 'the held stage answers once the thaw lets its mount finish')
    t.ok(statx(slowStaging).isMountRoot, 'and its filesystem is mounted at the staging path')

    await n.NodeUnpublishVolume({ volume_id: other, target_path: target })
    await n.NodeUnstageVolume({ volume_id: other, staging_target_path: otherStaging })
    await n.NodeUnstageVolume({ volume_id: slow, staging_target_path: slowStaging })
    t.notOk(statx(slowStaging).isMountRoot, 'unstaged (the last unmount ran on a worker thread)')
    t.same(listLoopDevices().filter((l) => l.backingFile === img), [], 'and its loop device went with it')
  })
}
