// Byte sizes as bigint: capacities travel as int64 strings and are compared and summed exactly.

export const KiB = 1024n
export const MiB = 1024n ** 2n
export const GiB = 1024n ** 3n
export const TiB = 1024n ** 4n

/** bytes rounded up to whole MiB, the unit images are made and grown in. */
export function wholeMiB(bytes: bigint): bigint {
  return ((bytes + MiB - 1n) / MiB) * MiB
}
