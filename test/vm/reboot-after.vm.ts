// The reboot suite's second half, on the boot after reboot-before.vm.ts reset the guest: the loop
// devices and mounts are gone with the old kernel; the node plugin starts and finds nothing to
// adopt, and NodeStageVolume/NodePublishVolume, as kubelet repeats them, re-attach and re-mount
// each volume with its data, without leaking a loop device.
import t from 'tap'
import { readFileSync } from 'node:fs'
import path from 'node:path'
import { listLoopDevices } from '../../native/index.js'
import { mountsUnder } from '../helpers/driver.js'
import { VmDriver, kernelRelease, loopsUnder, sha256, stageAndPublish } from '../helpers/vm-rig.js'
import { REBOOT_DIR, REBOOT_PLAN, blockDigest, type RebootVolume } from '../helpers/vm-reboot.js'

t.test(`after a reboot of ${kernelRelease()}: volumes come back with their data`, async (t) => {
  const vols = JSON.parse(readFileSync(REBOOT_PLAN, 'utf8')) as RebootVolume[]
  t.equal(vols.length, 3, 'the first boot left three published volumes')
  t.equal(Number(readFileSync('/out/boots', 'utf8')), 2, 'this is the second boot of the same guest')
  t.same(listLoopDevices().map((l) => l.device), [], 'no loop device survived the reboot')
  t.same(mountsUnder(REBOOT_DIR), [], 'no volume mount survived the reboot')

  const d = await new VmDriver(REBOOT_DIR, ['--log-level', 'info']).start()
  t.teardown(() => d.kill())
  const logs = () => d.nodeLogs().split('\n').filter(Boolean).map((l) => { try { return JSON.parse(l) } catch { return { msg: l } } })
  const rebuilt = logs().find((l) => l.msg === 'mount index rebuilt')
  t.equal(rebuilt?.mountedVolumes, 0, 'start-up adopts no mount')
  t.same(logs().filter((l) => /loop device/.test(l.msg ?? '')).map((l) => l.msg), [], 'start-up detaches no loop device')

  for (const v of vols) {
    await stageAndPublish(d, v)
    const digest = v.block ? blockDigest(v.target) : sha256(path.join(v.target, 'data'))
    t.equal(digest, v.digest, `${v.name}: staged and published again, data intact`)
  }
  const loops = loopsUnder(REBOOT_DIR)
  t.equal(loops.length, 2, `one loop device each for the image and the block volume (${loops.map((l) => l.device).join(' ')})`)
  // kubelet repeats calls; a repeat must not attach again.
  for (const v of vols) await stageAndPublish(d, v)
  t.equal(loopsUnder(REBOOT_DIR).length, 2, 'repeating NodeStage/NodePublish attaches nothing more')

  for (const v of vols) {
    await d.n.NodeUnpublishVolume({ volume_id: v.base['volume_id'], target_path: v.target })
    await d.n.NodeUnstageVolume({ volume_id: v.base['volume_id'], staging_target_path: v.staging })
    await d.c.DeleteVolume({ volume_id: v.base['volume_id'] }, 300_000)
  }
  t.same(loopsUnder(REBOOT_DIR), [], 'after unpublish and unstage no loop device is left')
  t.same(mountsUnder(REBOOT_DIR), [], 'and no mount')
})
