// What the reboot suite's two halves (test/vm/reboot-*.vm.ts, one per boot of the guest) share:
// where the volumes live and the record the first half leaves for the second.
import { closeSync, openSync, readSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { MiB, type RequestBase } from './vm-rig.js'

/** On the plain ext4 scratch disk, which survives the guest's reset. */
export const REBOOT_DIR = '/scratch/plain/reboot'
export const REBOOT_PLAN = `${REBOOT_DIR}/volumes.json`

export interface RebootVolume {
  name: string
  block: boolean
  staging: string
  target: string
  /** The request fields NodeStage/NodePublish repeat: volume_id, capability, context. */
  base: RequestBase
  /** sha256 of the file `data` in the volume, or of a block volume's first 4 MiB. */
  digest: string
}

/** sha256 of the first 4 MiB of a block device. */
export function blockDigest(device: string): string {
  const buf = Buffer.alloc(4 * MiB)
  const fd = openSync(device, 'r')
  try {
    let got = 0
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, got)
      if (n === 0) break
      got += n
    }
  } finally {
    closeSync(fd)
  }
  return createHash('sha256').update(buf).digest('hex')
}
