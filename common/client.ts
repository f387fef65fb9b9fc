// The one CSI client: a promise per RPC, typed from the generated definitions (protocol.ts), so
// a misspelt method or request field fails to compile and a response's fields have their real
// types. tscsi-call, the benchmark harness and the tests all build theirs here; each only
// chooses its address, default deadline and channel options.
import * as grpc from '@grpc/grpc-js'
import { csiPackage } from './grpc.js'
import type { ClientRequestOf, ClientResponseOf, MethodName, ServiceName } from './protocol.js'

/** The services of the CSI spec (kubelet's Registration is served by the node, never called by us). */
export type CsiService = Exclude<ServiceName, 'Registration'>

/**
 * Every RPC of each CSI service, in the proto's order. `satisfies` makes a name that is missing
 * from, or unknown to, the generated types a compile error; csiClient() compares the list with
 * the loaded proto, so the types describe the methods a client really has.
 */
const METHODS = {
  Identity: { GetPluginInfo: 1, GetPluginCapabilities: 1, Probe: 1 },
  Controller: {
    CreateVolume: 1, DeleteVolume: 1, ControllerPublishVolume: 1, ControllerUnpublishVolume: 1, ValidateVolumeCapabilities: 1,
    ListVolumes: 1, GetCapacity: 1, ControllerGetCapabilities: 1, CreateSnapshot: 1, DeleteSnapshot: 1, ListSnapshots: 1,
    GetSnapshot: 1, ControllerExpandVolume: 1, ControllerGetVolume: 1, ControllerModifyVolume: 1,
  },
  Node: {
    NodeStageVolume: 1, NodeUnstageVolume: 1, NodePublishVolume: 1, NodeUnpublishVolume: 1, NodeGetVolumeStats: 1,
    NodeExpandVolume: 1, NodeGetCapabilities: 1, NodeGetInfo: 1,
  },
  GroupController: { GroupControllerGetCapabilities: 1, CreateVolumeGroupSnapshot: 1, DeleteVolumeGroupSnapshot: 1, GetVolumeGroupSnapshot: 1 },
} satisfies { [S in CsiService]: Record<MethodName<S>, 1> }

export function isCsiService(name: string): name is CsiService {
  return Object.hasOwn(METHODS, name)
}

/** A service's RPC names, in the proto's order. */
export function methodNames<S extends CsiService>(service: S): MethodName<S>[] {
  return Object.keys(METHODS[service]) as MethodName<S>[]
}

/** One RPC. `deadlineMs` overrides the client's default for this call only. */
export type Call<S extends CsiService, M extends MethodName<S>> =
  (request: ClientRequestOf<S, M>, deadlineMs?: number) => Promise<ClientResponseOf<S, M>>

/**
 * A promise-based client of one service: client.CreateVolume({...}). A failed call rejects with
 * grpc-js's ServiceError as it is (code, details, metadata), so callers assert on its code.
 */
export type CsiClient<S extends CsiService> = { [M in MethodName<S>]: Call<S, M> } & {
  /** Closes the channel; calls in flight fail with CANCELLED or UNAVAILABLE. */
  close(): void
}

export interface ClientOptions {
  /** Each call's deadline unless the call names its own. Default 30 s. */
  deadlineMs?: number
  /** grpc-js channel options (e.g. 'grpc.max_receive_message_length'). */
  channelOptions?: grpc.ChannelOptions
}

const DEFAULT_DEADLINE_MS = 30_000

/**
 * A client of `service` at `address`, what grpc-js dials: `unix:///abs/path` or `host:port`
 * (parseEndpoint(...).address gives it from a flag). No connection is made until the first call.
 */
export function csiClient<S extends CsiService>(service: S, address: string, opts: ClientOptions = {}): CsiClient<S> {
  const Ctor = csiPackage()[service]
  const names: string[] = methodNames(service)
  const loaded = Object.keys(Ctor.service)
  if (loaded.length !== names.length || loaded.some((n) => !names.includes(n))) {
    throw new Error(`common/client.ts lists ${service} as ${names.join(', ')}; the proto has ${loaded.join(', ')}`)
  }
  // The generated client interfaces declare every method with four overloads; one untyped call
  // shape is all this needs, and the types are enforced on the returned object instead.
  const channel = new Ctor(address, grpc.credentials.createInsecure(), opts.channelOptions) as grpc.Client & Record<string, RawUnary>
  const defaultDeadline = opts.deadlineMs ?? DEFAULT_DEADLINE_MS
  const out: Record<string, (request: unknown, deadlineMs?: number) => Promise<unknown>> = {}
  for (const name of names) {
    const raw = channel[name]!
    out[name] = (request, deadlineMs = defaultDeadline) =>
      new Promise((resolve, reject) => {
        raw.call(channel, request, { deadline: Date.now() + deadlineMs }, (err, res) => (err ? reject(err) : resolve(res)))
      })
  }
  return Object.assign(out, { close: () => channel.close() }) as unknown as CsiClient<S>
}

type RawUnary = (request: unknown, options: grpc.CallOptions, callback: (err: grpc.ServiceError | null, res?: unknown) => void) => grpc.ClientUnaryCall
