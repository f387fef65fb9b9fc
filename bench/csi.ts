// CSI clients for the benchmark: common/client.ts's, one gRPC channel per service and socket (as
// a CO keeps one connection per driver socket). They speak only the wire protocol, so the same
// clients drive tscsi and hostpathplugin.
import * as grpc from '@grpc/grpc-js'
import { csiClient, type CsiClient, type CsiService } from '../common/client.js'
import { csiPackage } from '../common/grpc.js'
import type { ListVolumesRequest } from '../proto/gen/csi/v1/ListVolumesRequest.js'
import type { VolumeCapability } from '../proto/gen/csi/v1/VolumeCapability.js'
import type { Volume__Output } from '../proto/gen/csi/v1/Volume.js'

/**
 * `socket` is a unix socket path. Large ListVolumes answers are allowed (no 4 MiB cap); a call
 * waits up to 60 s unless it says otherwise.
 */
export function benchClient<S extends CsiService>(service: S, socket: string): CsiClient<S> {
  return csiClient(service, `unix://${socket}`, { deadlineMs: 60_000, channelOptions: { 'grpc.max_receive_message_length': -1 } })
}

/** Waits until Identity.Probe on socket answers ready (or throws after timeoutMs). */
export async function waitReady(socket: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const id = benchClient('Identity', socket)
  const until = Date.now() + timeoutMs
  try {
    for (;;) {
      try {
        const res = await id.Probe({}, 1000)
        // A missing `ready` means ready (CSI spec); grpc-js with defaults gives null for it.
        if (res?.ready == null || res.ready.value === true) return
      } catch {
        /* not listening yet */
      }
      if (!alive()) throw new Error(`the process serving ${socket} exited`)
      if (Date.now() > until) throw new Error(`${socket} did not become ready within ${timeoutMs} ms`)
      await new Promise((r) => setTimeout(r, 50))
    }
  } finally {
    id.close()
  }
}

export const MOUNT_CAP = {
  mount: { fs_type: '', mount_flags: [], volume_mount_group: '' },
  access_mode: { mode: 'SINGLE_NODE_WRITER' },
} satisfies VolumeCapability

/** The volume a CreateVolume answer carries; an answer without one is a driver bug that ends the run. */
export function volumeOf(created: { volume: Volume__Output | null }): Volume__Output {
  if (!created.volume) throw new Error('CreateVolume answered without a volume')
  return created.volume
}

/**
 * ListVolumes whose answer arrives as bytes, not decoded: what the driver and the transport take
 * for a listing, without this client's protobuf decoding (which, for 10,000 entries, costs more
 * than the driver does).
 */
export function rawListVolumes(socket: string): { call(req: ListVolumesRequest): Promise<Buffer>; close(): void } {
  const def = csiPackage().Controller.service.ListVolumes
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 })
  const call = (req: ListVolumesRequest): Promise<Buffer> => new Promise((resolve, reject) => {
    client.makeUnaryRequest(def.path, def.requestSerialize, (b: Buffer) => b, req, { deadline: Date.now() + 60_000 }, (e, b) => (e || !b ? reject(e ?? new Error('no answer')) : resolve(b)))
  })
  return { call, close: () => client.close() }
}
