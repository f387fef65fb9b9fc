// Built-in kubelet plugin registration: the same service node-driver-registrar serves, on a
// socket in kubelet's plugins_registry folder. kubelet calls GetInfo, then NodeGetInfo on the
// CSI endpoint we name, writes the CSINode object, and reports back through
// NotifyRegistrationStatus. A refusal is logged and the socket is re-created after a backoff,
// which makes kubelet's plugin watcher try again.
import path from 'node:path'
import { implement, listen, newServer, parseEndpoint, registrationService, type RunningServer } from '../common/grpc.js'
import type { Logger } from '../common/log.js'

export interface RegistrationOptions {
  driverName: string
  /** The CSI socket path as kubelet (on the host) sees it. */
  kubeletEndpoint: string
  /** kubelet's registration folder, e.g. /var/lib/kubelet/plugins_registry. */
  registrationDir: string
  log: Logger
  retryMs?: number
}

export function registrationSocket(dir: string, driverName: string): string {
  // kubelet ignores files starting with '.'; driver names never do.
  return path.join(dir, `${driverName}-reg.sock`)
}

export async function serveRegistration(o: RegistrationOptions): Promise<{ close(): Promise<void> }> {
  const socket = registrationSocket(o.registrationDir, o.driverName)
  let running: RunningServer | undefined
  let closed = false
  let retry: NodeJS.Timeout | undefined
  const start = async (): Promise<void> => {
    const server = newServer()
    const service = registrationService().service
    server.addService(service, implement('Registration', service, {
      GetInfo: async () => ({ type: 'CSIPlugin', name: o.driverName, endpoint: o.kubeletEndpoint, supported_versions: ['1.0.0'] }),
      NotifyRegistrationStatus: async (req) => {
        if (req.plugin_registered) {
          o.log.info({ driver: o.driverName }, 'registered with kubelet')
        } else {
          o.log.error({ driver: o.driverName, error: req.error }, 'kubelet refused the registration; retrying')
          scheduleRestart()
        }
        return {}
      },
    }, { log: o.log }), )
    running = await listen(server, parseEndpoint(`unix://${socket}`))
  }
  const scheduleRestart = (): void => {
    if (closed || retry) return
    retry = setTimeout(() => {
      retry = undefined
      void (async () => {
        await running?.close(1000)
        if (!closed) await start()
      })().catch((e) => o.log.error({ err: e }, 'could not re-create the registration socket'))
    }, o.retryMs ?? 10_000)
    retry.unref()
  }
  await start()
  return {
    close: async () => {
      closed = true
      if (retry) clearTimeout(retry)
      await running?.close(1000)
    },
  }
}
