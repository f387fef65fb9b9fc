// Public surface of the native layer. Everything that talks to libc goes
// through here; koffi itself stays private to native/libc.ts and is loaded on
// the first call that needs it, so importing this module is cheap and safe on
// hosts where the addon cannot load (only the pure helpers work there).

export { ErrnoError, errnoMessage, errnoName, errnoNumber, fromNodeError, isErrno } from './errno.js'
export { MNT, MS, mount, mountAsync, umount2, umount2Async } from './mount.js'
export { MOUNT_ATTR, mountSetattr, moveMount, openTree } from './mount-api.js'
export type { MountAttr } from './mount-api.js'
export { ST, fstatx, statvfs, statx } from './stat.js'
export type { StatVfs, Statx, StatxOptions } from './stat.js'
export { close, fdPath, openDir, openPath, settleRenames, withPath } from './fd.js'
export type { OpenPathOptions } from './fd.js'
export { parseMountInfo, readMountInfo } from './mountinfo.js'
export type { MountInfo } from './mountinfo.js'
export {
  LO_FLAGS,
  blockDeviceName,
  blockDeviceSize,
  listLoopDevices,
  loopAttach,
  loopAttachAsync,
  loopBackingFile,
  loopBackingId,
  loopDetach,
  loopDetachAsync,
  loopSetCapacity,
  loopStatus,
  parseBackingFile,
} from './loop.js'
export type { FileId, LoopAttachAsyncOptions, LoopAttachOptions, LoopAttachment, LoopDetachOptions, LoopDetachResult, LoopDevice, LoopStatus } from './loop.js'
export {
  MAX_PROJECT_ID,
  PRJQUOTA,
  bytesToQuotaBlocks,
  getProjectId,
  getProjectQuota,
  projectQuotaSupport,
  qcmd,
  quotaBlocksToBytes,
  setProjectId,
  setProjectQuota,
} from './quota.js'
export type { ProjectLimits, ProjectQuota, QuotaSupport } from './quota.js'
export { freeze, freezeAsync, isReflinkUnsupported, reflinkFile, reflinkRange, reflinkRangeAsync, thaw, withFrozen, withFrozenAsync } from './fsioc.js'
export {
  copyXattrs,
  encodeTimespecs,
  getXattr,
  isNoXattr,
  isXattrUnsupported,
  listXattrs,
  mknod,
  removeXattr,
  setTimesNs,
  setXattr,
} from './xattr.js'
export type { RawPath } from './xattr.js'
export { allocate, seekData, seekHole } from './seek.js'
