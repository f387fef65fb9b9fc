// The reboot suite's first half: dir, image and block volumes staged, published and written on
// the plain ext4 scratch disk (/dev/vdc, which persists), then both driver processes killed as a
// power cut leaves them. scripts/vm/guest.sh then resets the guest (a real kernel restart, no
// unmount) and reboot-after.vm.ts checks what the node plugin makes of it.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { closeSync, fsyncSync, openSync, writeFileSync, writeSync } from 'node:fs'
import path from 'node:path'
import { MiB, VmDriver, blockCap, createAndPublish, kernelRelease, loopsUnder, mountCap, sha256 } from '../helpers/vm-rig.js'
import { REBOOT_DIR, REBOOT_PLAN, blockDigest, type RebootVolume } from '../helpers/vm-reboot.js'

t.test(`before a reboot of ${kernelRelease()}: dir, image and block volumes published with data`, async (t) => {
  const d = await new VmDriver(REBOOT_DIR).start()
  const out: RebootVolume[] = []
  for (const [name, capability, params, size] of [
    ['rb-dir', mountCap(), {}, 64 * MiB],
    ['rb-image', mountCap('ext4'), { kind: 'image', fsType: 'ext4' }, 64 * MiB],
    ['rb-block', blockCap, {}, 32 * MiB],
  ] as const) {
    const p = await createAndPublish(d, name, capability, params, size)
    const block = name === 'rb-block'
    let digest: string
    if (block) {
      const fd = openSync(p.target, 'r+')
      writeSync(fd, randomBytes(4 * MiB), 0, 4 * MiB, 0)
      fsyncSync(fd)
      closeSync(fd)
      digest = blockDigest(p.target)
    } else {
      const f = path.join(p.target, 'data')
      writeFileSync(f, randomBytes(4 * MiB))
      digest = sha256(f)
    }
    out.push({ name, block, staging: p.staging, target: p.target, base: p.base, digest })
  }
  t.equal(loopsUnder(REBOOT_DIR).length, 2, 'the image and the block volume each hold a loop device')
  writeFileSync(REBOOT_PLAN, JSON.stringify(out, null, 1))
  t.equal(spawnSync('sync').status, 0, 'synced to the scratch disk')
  await d.kill()
})
