// The filesystem tools the node may run as child processes (no syscall does their job): mkfs at
// creation, and the online grow tools at expansion. Never mount(8), umount(8) or losetup.
// Children are always waited for asynchronously (execFile, never a *Sync variant): a mkfs of a
// large image takes seconds, and the event loop must go on answering meanwhile. A `signal`
// kills the child (SIGTERM) and the call answers as abort.ts says.
import { execFile } from 'node:child_process'
import { statfsSync } from 'node:fs'
import { promisify } from 'node:util'
import { exhausted, internal } from '../common/errors.js'
import { stopped } from './abort.js'

const run = promisify(execFile)

async function tool(cmd: string, args: string[], signal?: AbortSignal, timeoutMs = 120_000): Promise<void> {
  try {
    await run(cmd, args, { timeout: timeoutMs, ...(signal && { signal }) })
  } catch (e) {
    if (signal?.aborted) throw stopped(signal, `${cmd} ${args.join(' ')}`)
    const err = e as { stderr?: string; message: string }
    const text = (err.stderr || err.message).trim()
    // ext4's online resize needs CAP_SYS_RESOURCE, which some sandboxes withhold even from root.
    const hint = /Permission denied to resize filesystem/.test(text) ? ' (online ext4 resize needs CAP_SYS_RESOURCE in the node plugin)' : ''
    const message = `${cmd} ${args.join(' ')} failed: ${text.split('\n').slice(-3).join(' | ')}${hint}`
    // A full disk is the caller's to fix (free space, another pool), not a driver fault: the
    // tools print strerror(ENOSPC/EDQUOT), which must come back as RESOURCE_EXHAUSTED.
    throw /No space left on device|Disk quota exceeded/.test(text) ? exhausted(message) : internal(message)
  }
}

/** Makes a filesystem in an image file (not attached to anything yet). */
// Without discard: on a regular file the tools "discard" by punching holes, which would hand back
// the blocks the image was given (see preallocate in datadir.ts).
export async function mkfs(image: string, fsType: string, signal?: AbortSignal): Promise<void> {
  switch (fsType) {
    case 'ext4':
      return tool('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', image], signal)
    case 'xfs':
      return tool('mkfs.xfs', ['-q', '-f', '-K', image], signal)
    case 'btrfs':
      return tool('mkfs.btrfs', ['-q', '-f', '-K', image], signal)
    default:
      throw internal(`no mkfs for filesystem ${JSON.stringify(fsType)}`)
  }
}

// statfs(2) f_type magic numbers (linux/magic.h).
const MAGIC: Record<number, string> = { 0xef53: 'ext4', 0x58465342: 'xfs', 0x9123683e: 'btrfs' }

/** The filesystem mounted at mountPoint, from statfs's magic number. */
export function mountedFsType(mountPoint: string): string | undefined {
  return MAGIC[Number(statfsSync(mountPoint).type)]
}

/** Grows a mounted filesystem to fill its (already grown) device, online. */
export async function growFs(fsType: string, device: string, mountPoint: string, signal?: AbortSignal): Promise<void> {
  switch (fsType) {
    case 'ext4':
      return tool('resize2fs', [device], signal)
    case 'ext4-offline':
      // An unmounted image file: resize2fs wants a fresh e2fsck first. Exit 1 means "errors
      // corrected", which a snapshot of a frozen filesystem should not have, but is fine.
      await run('e2fsck', ['-f', '-y', device], { timeout: 300_000, ...(signal && { signal }) }).catch((e: { code?: number }) => {
        if (signal?.aborted) throw stopped(signal, `e2fsck -f -y ${device}`)
        if (e.code !== 1) throw internal(`e2fsck -f -y ${device} failed with exit code ${e.code}`)
      })
      return tool('resize2fs', [device], signal)
    case 'xfs':
      return tool('xfs_growfs', [mountPoint], signal)
    case 'btrfs':
      return tool('btrfs', ['filesystem', 'resize', 'max', mountPoint], signal)
    default:
      throw internal(`cannot grow filesystem ${JSON.stringify(fsType)} at ${mountPoint}`)
  }
}
