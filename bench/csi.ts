// Promise-based CSI clients for the benchmark, one gRPC channel per service and socket (as a CO
// keeps one connection per driver socket). Loads proto/csi.proto itself with the loader options
// the driver uses, so the harness depends on nothing of the driver but its wire protocol.
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import path from 'node:path'
import { ROOT } from './paths.js'

type Service = 'Identity' | 'Controller' | 'Node'
type Ctors = Record<Service, grpc.ServiceClientConstructor>

let ctors: Ctors | undefined
function services(): Ctors {
  if (!ctors) {
    const def = protoLoader.loadSync(path.join(ROOT, 'proto/csi.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true })
    ctors = (grpc.loadPackageDefinition(def) as unknown as { csi: { v1: Ctors } }).csi.v1
  }
  return ctors
}

// Responses are loosely typed on purpose: the harness reads a handful of fields.
export type Reply = any
export type Call = (req: Record<string, unknown>, deadlineMs?: number) => Promise<Reply>
export type Client = Record<string, Call> & { close(): void }

/** `socket` is a unix socket path. Large ListVolumes answers are allowed (no 4 MiB cap). */
export function csiClient(service: Service, socket: string): Client {
  const Ctor = services()[service]
  const c = new Ctor(`unix://${socket}`, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': -1,
  }) as unknown as grpc.Client & Record<string, (...a: unknown[]) => void>
  const out: Record<string, Call> = {}
  for (const name of Object.keys(Ctor.service)) {
    out[name] = (req, deadlineMs = 60_000) =>
      new Promise((resolve, reject) => {
        c[name]!.call(c, req, { deadline: Date.now() + deadlineMs }, (err: grpc.ServiceError | null, res: unknown) => (err ? reject(err) : resolve(res)))
      })
  }
  return Object.assign(out, { close: () => c.close() }) as Client
}

/** Waits until Identity.Probe on socket answers ready (or throws after timeoutMs). */
export async function waitReady(socket: string, timeoutMs: number, alive: () => boolean): Promise<void> {
  const id = csiClient('Identity', socket)
  const until = Date.now() + timeoutMs
  try {
    for (;;) {
      try {
        const res = await id.Probe!({}, 1000)
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
}
