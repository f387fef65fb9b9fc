// Builds the node plugin's gRPC server from injected parts; main.ts only parses flags and listens.
import type * as grpc from '@grpc/grpc-js'
import { csiPackage, implement, newServer, type CallObserver } from '../common/grpc.js'
import { identityHandlers } from '../common/identity.js'
import type { NodeDeps } from './deps.js'
import { expandHandlers } from './expand.js'
import { infoHandlers } from './info.js'
import { publishHandlers } from './publish.js'
import { stageHandlers } from './stage.js'

export interface NodeOptions {
  driverName: string
  /** Whether the deployment runs a controller; the node's Identity advertises it. */
  controllerService: boolean
  observe?: CallObserver
}

export function buildNode(d: NodeDeps, opts: NodeOptions): grpc.Server {
  const csi = csiPackage()
  const server = newServer()
  const boundary = { log: d.log, ...(opts.observe && { observe: opts.observe }) }
  const ready = async (): Promise<boolean> => d.mounter.inspect(d.layout.volumesDir)?.type === 'dir'
  server.addService(
    csi.Identity.service,
    implement('Identity', csi.Identity.service, identityHandlers({ driverName: opts.driverName, controllerService: opts.controllerService, ready }), boundary),
  )
  server.addService(
    csi.Node.service,
    implement('Node', csi.Node.service, { ...stageHandlers(d), ...publishHandlers(d), ...infoHandlers(d), ...expandHandlers(d) }, boundary),
  )
  return server
}
