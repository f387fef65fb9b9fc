// The gRPC boundary: loads the CSI protocol once, turns async handlers into grpc-js methods,
// logs one line per call and maps every failure to a CsiError exactly here.
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { existsSync, lstatSync, unlinkSync } from 'node:fs'
import net from 'node:net'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { FlagError } from './flags.js'
import { CsiError, Code, codeName, toCsiError } from './errors.js'
import { redact, type Logger } from './log.js'
import { frontConnection } from './h2front.js'
import type { Definitions, Handlers, ServiceName } from './protocol.js'

// proto/ sits at the package root; this file runs from common/ (tests) or dist/common/ (build).
function protoPath(file = 'csi.proto'): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 4; i++) {
    const candidate = path.join(dir, 'proto', file)
    if (existsSync(candidate)) return candidate
    dir = path.dirname(dir)
  }
  throw new Error(`proto/${file} not found above ` + fileURLToPath(import.meta.url))
}

// The options the field uses for CSI: field names as in the spec, 64-bit integers as strings,
// enums by name, defaults filled in, and a discriminator for each oneof.
export const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true }

/** A client constructor whose service definition carries the generated method types. */
export type ServiceConstructor<S extends ServiceName> = grpc.ServiceClientConstructor & { service: Definitions[S] }

export interface CsiPackage {
  Identity: ServiceConstructor<'Identity'>
  Controller: ServiceConstructor<'Controller'>
  Node: ServiceConstructor<'Node'>
  GroupController: ServiceConstructor<'GroupController'>
}

/** Marks a request whose bytes did not decode; implement() answers it INVALID_ARGUMENT. */
const UNDECODABLE = Symbol('undecodable request')

/**
 * grpc-js answers a request that does not decode with INTERNAL before any handler runs. The CSI
 * spec wants malformed input to be INVALID_ARGUMENT, so the server side's decoder hands a marker
 * to the boundary instead of throwing. Clients (serialize / deserialize responses) are untouched.
 */
function tolerateUndecodable(service: grpc.ServiceDefinition): void {
  for (const m of Object.values(service) as { requestDeserialize: (b: Buffer) => unknown }[]) {
    const decode = m.requestDeserialize
    m.requestDeserialize = (b: Buffer) => {
      try {
        return decode(b)
      } catch (e) {
        return { [UNDECODABLE]: (e as Error).message }
      }
    }
  }
}

let cached: CsiPackage | undefined
export function csiPackage(): CsiPackage {
  if (!cached) {
    const def = protoLoader.loadSync(protoPath(), LOADER_OPTIONS)
    const root = grpc.loadPackageDefinition(def) as unknown as { csi: { v1: CsiPackage } }
    cached = root.csi.v1
    for (const s of [cached.Identity, cached.Controller, cached.Node, cached.GroupController]) tolerateUndecodable(s.service)
  }
  return cached
}

let registration: ServiceConstructor<'Registration'> | undefined
/** kubelet's plugin-registration service (proto/pluginregistration.proto). */
export function registrationService(): ServiceConstructor<'Registration'> {
  if (!registration) {
    const def = protoLoader.loadSync(protoPath('pluginregistration.proto'), LOADER_OPTIONS)
    registration = (grpc.loadPackageDefinition(def) as unknown as { pluginregistration: { Registration: ServiceConstructor<'Registration'> } }).pluginregistration.Registration
  }
  return registration
}

/**
 * A handler seen from outside its service: what the boundary calls with whatever decoded, and
 * what tests use to call one by name. Handlers are written against protocol.ts's typed
 * Handlers<S>; every one of them is also a Handler. `signal`: see protocol.ts HandlerOf.
 */
export type Handler = (request: any, signal?: AbortSignal) => Promise<unknown>
export type ServiceHandlers = Record<string, Handler>

/** Called once per RPC after it finishes; the metrics issue hangs its counters here. */
export type CallObserver = (service: string, method: string, code: string, seconds: number) => void

export interface BoundaryOptions {
  log: Logger
  observe?: CallObserver
}

function subjectOf(req: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const k of ['volume_id', 'name', 'snapshot_id', 'source_volume_id', 'node_id', 'target_path', 'group_snapshot_id']) {
    if (typeof req[k] === 'string' && req[k] !== '') out[k] = req[k]
  }
  return out
}

/**
 * Builds a grpc-js implementation of one service. Methods the driver does not implement answer
 * UNIMPLEMENTED (callers must not retry). A handler's thrown value, whatever it is, leaves as a
 * CsiError with a numeric code.
 */
export function implement<S extends ServiceName>(
  serviceName: S,
  service: Definitions[S],
  handlers: Handlers<S>,
  opts: BoundaryOptions,
): grpc.UntypedServiceImplementation {
  const impl: grpc.UntypedServiceImplementation = {}
  // The types end here: what reaches a handler is whatever decoded, and an UNDECODABLE marker
  // never reaches one.
  const byName = handlers as ServiceHandlers
  // Service definition keys are the proto's method names (CreateVolume); those are what logs
  // and metrics labels carry and what handlers are keyed by.
  for (const method of Object.keys(service)) {
    const handler = byName[method]
    impl[method] = (call: grpc.ServerUnaryCall<any, any>, callback: grpc.sendUnaryData<any>) => {
      const started = process.hrtime.bigint()
      const req = (call.request ?? {}) as Record<string | symbol, unknown>
      const stop = stopSignal(call)
      const undecodable = req[UNDECODABLE]
      const run = undecodable !== undefined
        ? Promise.reject(new CsiError(Code.INVALID_ARGUMENT, `the request is not a valid ${method} message: ${String(undecodable)}`))
        : handler
        ? Promise.resolve().then(() => handler(req, stop.signal))
        : Promise.reject(new CsiError(Code.UNIMPLEMENTED, `${serviceName}.${method} is not implemented by this driver`))
      run.finally(stop.dispose).then(
        (res) => {
          finish(Code.OK)
          // The redacted copies cost real time on big answers (ListVolumes): only when logged.
          if (opts.log.isLevelEnabled('debug')) opts.log.debug({ request: redact(req), response: redact(res) }, 'rpc detail')
          callback(null, res)
        },
        (e: unknown) => {
          const err = toCsiError(e)
          finish(err.code, err.message)
          if (err.code === Code.INTERNAL || err.code === Code.UNKNOWN) opts.log.error({ err: e }, 'internal error')
          callback(err)
        },
      )
      function finish(code: number, message?: string): void {
        const seconds = Number(process.hrtime.bigint() - started) / 1e9
        const fields = { rpc: `${serviceName}.${method}`, ...subjectOf(req), code: codeName(code), ms: +(seconds * 1000).toFixed(3) }
        if (code === Code.OK) opts.log.info(fields, 'rpc')
        else opts.log.warn({ ...fields, error: message }, 'rpc')
        opts.observe?.(serviceName, method, codeName(code), seconds)
      }
    }
  }
  return impl
}

/**
 * An AbortSignal for one call: aborted with a TimeoutError when its deadline passes, or with
 * an AbortError when the client cancels (grpc-js emits 'cancelled' for both; the timer names
 * the deadline case even if it fires a moment after the event).
 */
const DEADLINE_SLACK_MS = 250

function stopSignal(call: grpc.ServerUnaryCall<any, any>): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController()
  const deadline = call.getDeadline()
  const at = deadline instanceof Date ? deadline.getTime() : Number(deadline)
  let timer: NodeJS.Timeout | undefined
  const timeout = (): void => ac.abort(new DOMException("the caller's deadline passed", 'TimeoutError'))
  if (Number.isFinite(at)) {
    const left = at - Date.now()
    if (left <= 0) timeout()
    // setTimeout caps at about 24.8 days; a longer deadline never fires, as it should not.
    else if (left < 2 ** 31) timer = setTimeout(timeout, left).unref()
  }
  const onCancel = (): void => {
    if (ac.signal.aborted) return
    // A client whose deadline passes resets the stream itself, and that can arrive a moment
    // before this server's copy of the deadline (computed from the grpc-timeout header on
    // arrival, so skewed by the header's rounding and by event-loop delays): a cancel that
    // close to the deadline is the deadline.
    if (Number.isFinite(at) && Date.now() >= at - DEADLINE_SLACK_MS) timeout()
    else ac.abort(new DOMException('the caller cancelled the call', 'AbortError'))
  }
  call.on('cancelled', onCancel)
  return {
    signal: ac.signal,
    dispose: () => {
      if (timer) clearTimeout(timer)
      call.removeListener('cancelled', onCancel)
    },
  }
}

export interface Endpoint {
  /** What grpc-js binds or dials. */
  address: string
  /** The socket file for unix endpoints. */
  socketPath?: string
}

/** Parses `unix:///abs/path`, `unix:/abs/path`, a bare absolute path, or `tcp://host:port`. */
export function parseEndpoint(value: string): Endpoint {
  if (value.startsWith('tcp://')) {
    const hostPort = value.slice('tcp://'.length)
    const port = Number(/:(\d{1,5})$/.exec(hostPort)?.[1] ?? NaN)
    if (!/^[A-Za-z0-9.\-[\]:]+:\d{1,5}$/.test(hostPort) || port > 65535) throw new FlagError(`--endpoint ${value}: expected tcp://HOST:PORT with a port up to 65535`)
    return { address: hostPort }
  }
  let p = value
  if (p.startsWith('unix://')) p = p.slice('unix://'.length)
  else if (p.startsWith('unix:')) p = p.slice('unix:'.length)
  if (!p.startsWith('/') || p === '/' || p.endsWith('/')) throw new FlagError(`--endpoint ${value}: expected unix:///ABSOLUTE/PATH or tcp://HOST:PORT`)
  // sockaddr_un.sun_path holds 108 bytes with the terminating NUL; a longer path fails in
  // bind() with a misleading EADDRINUSE from grpc-js.
  if (Buffer.byteLength(p) > 107) throw new FlagError(`--endpoint ${value}: the socket path is ${Buffer.byteLength(p)} bytes; unix sockets allow at most 107`)
  return { address: `unix://${p}`, socketPath: p }
}

export interface RunningServer {
  server: grpc.Server
  address: string
  /** Stops accepting calls, lets in-flight ones finish (up to graceMs), then closes. */
  close(graceMs?: number): Promise<void>
}

/**
 * Binds the server. A stale socket file left by a killed process is removed first.
 *
 * tscsi accepts the connections itself and injects them into grpc-js (instead of bindAsync) so
 * that h2front.ts can repair the requests of old grpc-go clients, which Node's HTTP/2 layer would
 * refuse; every other connection reaches grpc-js as the plain socket.
 */
export async function listen(server: grpc.Server, endpoint: Endpoint): Promise<RunningServer> {
  if (endpoint.socketPath) removeStaleSocket(endpoint.socketPath)
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure())
  const fresh = new Set<net.Socket>()
  const front = net.createServer({ noDelay: true }, (socket) => {
    // Until it is handed over, a connection is ours to close at shutdown.
    fresh.add(socket)
    socket.once('close', () => fresh.delete(socket))
    frontConnection(socket, (c) => {
      fresh.delete(socket)
      injector.injectConnection(c)
    })
  })
  await new Promise<void>((resolve, reject) => {
    front.once('error', reject)
    const done = (): void => {
      front.off('error', reject)
      resolve()
    }
    if (endpoint.socketPath) front.listen(endpoint.socketPath, done)
    else {
      const m = /^\[?(.*?)\]?:(\d+)$/.exec(endpoint.address)
      if (!m) throw new Error(`cannot listen on ${endpoint.address}`)
      front.listen(Number(m[2]), m[1], done)
    }
  })
  // After listening, an error here is a failed accept (EMFILE and the like): that one client
  // retries, and the server must keep serving the others rather than die of an unhandled event.
  front.on('error', () => {})
  const bound = front.address()
  const port = typeof bound === 'object' && bound ? bound.port : 0
  const address = endpoint.socketPath ? endpoint.address : endpoint.address.replace(/:\d+$/, `:${port}`)
  return {
    server,
    address,
    close: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        front.close()
        for (const s of fresh) s.destroy()
        const timer = setTimeout(() => server.forceShutdown(), graceMs)
        server.tryShutdown(() => {
          clearTimeout(timer)
          if (endpoint.socketPath) removeStaleSocket(endpoint.socketPath)
          resolve()
        })
      }),
  }
}

export function removeStaleSocket(socketPath: string): void {
  try {
    // Only ever remove a socket: a regular file or directory at that path is a configuration
    // mistake that must not cost anybody data.
    if (lstatSync(socketPath).isSocket()) unlinkSync(socketPath)
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e
  }
}

export function newServer(): grpc.Server {
  // Kubelet and the sidecars send small messages; the defaults are fine. Keepalive is left to
  // the client side, as the kubernetes-csi sidecars configure it.
  return new grpc.Server()
}
