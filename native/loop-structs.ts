// The loop driver's structs (<linux/loop.h>): encoding struct loop_config for LOOP_CONFIGURE,
// decoding struct loop_info64 from LOOP_GET_STATUS64, and checking the hard-coded layouts
// against koffi once, at first native use.
import { checkLayout, koffi } from './ioctl.js'

/** LO_FLAGS_* from <linux/loop.h>. */
export const LO_FLAGS = Object.freeze({ READ_ONLY: 1, AUTOCLEAR: 4, PARTSCAN: 8, DIRECT_IO: 16 } as const)

const LO_NAME_SIZE = 64
// struct loop_info64 (232 bytes) and struct loop_config (304 bytes), offsets
// as printed by offsetof() against this kernel's <linux/loop.h>.
const INFO64 = { lo_device: 0, lo_inode: 8, lo_rdevice: 16, lo_offset: 24, lo_sizelimit: 32, lo_number: 40, lo_flags: 52, lo_file_name: 56 } as const
export const INFO64_SIZE = 232
const CONFIG = { fd: 0, block_size: 4, info: 8, __reserved: 240 } as const
const CONFIG_SIZE = 304

let layoutChecked = false
export function checkLayouts(): void {
  if (layoutChecked) return
  const k = koffi()
  const info = k.struct({
    lo_device: 'uint64_t', lo_inode: 'uint64_t', lo_rdevice: 'uint64_t', lo_offset: 'uint64_t',
    lo_sizelimit: 'uint64_t', lo_number: 'uint32_t', lo_encrypt_type: 'uint32_t',
    lo_encrypt_key_size: 'uint32_t', lo_flags: 'uint32_t', lo_file_name: k.array('uint8_t', LO_NAME_SIZE),
    lo_crypt_name: k.array('uint8_t', LO_NAME_SIZE), lo_encrypt_key: k.array('uint8_t', 32),
    lo_init: k.array('uint64_t', 2),
  })
  checkLayout('struct loop_info64', info, INFO64_SIZE, INFO64)
  const cfg = k.struct({ fd: 'uint32_t', block_size: 'uint32_t', info, __reserved: k.array('uint64_t', 8) })
  checkLayout('struct loop_config', cfg, CONFIG_SIZE, CONFIG)
  layoutChecked = true
}

export interface LoopConfig {
  backingFd: number
  /** 0: the kernel's default (512, or the backing file's direct-I/O alignment). */
  blockSize: number
  flags: number
  /** Stored as lo_file_name (truncated to 63 bytes); informational only. */
  fileName: string
}

/** Pure: struct loop_config for LOOP_CONFIGURE. */
export function encodeLoopConfig(c: LoopConfig): Buffer {
  const b = Buffer.alloc(CONFIG_SIZE)
  b.writeUInt32LE(c.backingFd, CONFIG.fd)
  b.writeUInt32LE(c.blockSize, CONFIG.block_size)
  b.writeUInt32LE(c.flags, CONFIG.info + INFO64.lo_flags)
  // NUL-terminated and cut on a byte boundary, like losetup does.
  const name = Buffer.from(c.fileName, 'utf8').subarray(0, LO_NAME_SIZE - 1)
  name.copy(b, CONFIG.info + INFO64.lo_file_name)
  return b
}

export interface LoopStatus {
  /** The backing file's st_dev as "major:minor" and its inode number. */
  backingDev: string
  backingIno: bigint
  offset: bigint
  sizeLimit: bigint
  number: number
  flags: number
}

/** Pure: struct loop_info64 from LOOP_GET_STATUS64. */
export function decodeLoopInfo64(b: Buffer): LoopStatus {
  // lo_device is huge_encode_dev(): minor's low 8 bits, major, minor's rest.
  const dev = b.readBigUInt64LE(INFO64.lo_device)
  const major = Number((dev >> 8n) & 0xfffn)
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & 0xfff00n))
  return {
    backingDev: `${major}:${minor}`,
    backingIno: b.readBigUInt64LE(INFO64.lo_inode),
    offset: b.readBigUInt64LE(INFO64.lo_offset),
    sizeLimit: b.readBigUInt64LE(INFO64.lo_sizelimit),
    number: b.readUInt32LE(INFO64.lo_number),
    flags: b.readUInt32LE(INFO64.lo_flags),
  }
}
