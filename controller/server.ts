// Builds the controller's gRPC server from injected parts; main.ts only parses flags and listens.
import type * as grpc from '@grpc/grpc-js'
import { csiPackage, implement, newServer, type CallObserver } from '../common/grpc.js'
import { identityHandlers } from '../common/identity.js'
import type { ControllerDeps } from './deps.js'
import { expandHandlers } from './expand.js'
import { groupHandlers } from './groups.js'
import { reusingEntryBytes } from './list-encoding.js'
import { modifyHandlers } from './modify.js'
import { snapshotHandlers } from './snapshots.js'
import { publishHandlers } from './publish.js'
import { volumeHandlers } from './volumes.js'
import type { _csi_v1_ControllerServiceCapability_RPC_Type__Output as ControllerRpc } from '../proto/gen/csi/v1/ControllerServiceCapability.js'

export interface ControllerOptions {
  driverName: string
  observe?: CallObserver
}

export function controllerCapabilities(enableAttach: boolean): ControllerRpc[] {
  const caps: ControllerRpc[] = ['CREATE_DELETE_VOLUME', 'LIST_VOLUMES', 'GET_CAPACITY', 'GET_VOLUME', 'VOLUME_CONDITION', 'SINGLE_NODE_MULTI_WRITER', 'EXPAND_VOLUME', 'MODIFY_VOLUME',
    // GetSnapshot is served, but its capability (alpha in CSI 1.12) is not advertised:
    // csi-sanity v5.4.0 rejects capabilities it does not know.
    'CREATE_DELETE_SNAPSHOT', 'LIST_SNAPSHOTS', 'CLONE_VOLUME']
  // Published node ids are only meaningful when publications are recorded.
  if (enableAttach) caps.push('PUBLISH_UNPUBLISH_VOLUME', 'LIST_VOLUMES_PUBLISHED_NODES', 'PUBLISH_READONLY')
  return caps
}

export function buildController(d: ControllerDeps, opts: ControllerOptions): grpc.Server {
  const csi = csiPackage()
  const server = newServer()
  const boundary = { log: d.log, ...(opts.observe && { observe: opts.observe }) }
  server.addService(
    csi.Identity.service,
    implement('Identity', csi.Identity.service, identityHandlers({
      driverName: opts.driverName,
      controllerService: true,
      ready: () => d.store.healthy(),
    }), boundary),
  )
  const caps = controllerCapabilities(d.enableAttach)
  // A copy of the definition (csiPackage() is shared with clients in this process), whose
  // ListVolumes answers reuse unchanged entries' bytes (list-encoding.ts).
  const list = csi.Controller.service.ListVolumes
  const controller = { ...csi.Controller.service, ListVolumes: { ...list, responseSerialize: reusingEntryBytes(list.responseSerialize) } }
  server.addService(
    controller,
    implement('Controller', controller, {
      ...volumeHandlers(d),
      ...expandHandlers(d),
      ...modifyHandlers(d),
      ...snapshotHandlers(d),
      ...(d.enableAttach ? publishHandlers(d) : {}),
      ControllerGetCapabilities: async () => ({ capabilities: caps.map((type) => ({ rpc: { type } })) }),
    }, boundary),
  )
  server.addService(csi.GroupController.service, implement('GroupController', csi.GroupController.service, groupHandlers(d), boundary))
  return server
}
