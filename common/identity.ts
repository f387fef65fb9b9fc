// The Identity service, served by both processes. The only difference between them is which
// plugin capabilities they advertise and what "ready" means, so both are injected.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import { FlagError } from './flags.js'
import type { Implemented } from './protocol.js'
import type { PluginCapability } from '../proto/gen/csi/v1/PluginCapability.js'

export interface IdentityOptions {
  driverName: string
  /** Advertise CONTROLLER_SERVICE (csi-sanity's node suite looks for it on the node socket). */
  controllerService: boolean
  /** Whether the process can serve requests right now; Probe reports it. */
  ready: () => Promise<boolean>
}

// GetPluginInfo's name rule from the spec: at most 63 characters, a domain-like name.
const DRIVER_NAME = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/

export function checkDriverName(name: string): string {
  if (!DRIVER_NAME.test(name)) {
    throw new FlagError(`--drivername ${JSON.stringify(name)}: must be at most 63 characters of a-z, 0-9, '.', '-' and start and end with a letter or digit`)
  }
  return name
}

let version: string | undefined
export function driverVersion(): string {
  if (version === undefined) {
    let dir = path.dirname(fileURLToPath(import.meta.url))
    version = '0.0.0'
    for (let i = 0; i < 4; i++) {
      try {
        version = (JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version: string }).version
        break
      } catch {
        dir = path.dirname(dir)
      }
    }
  }
  return version
}

export function identityHandlers(opts: IdentityOptions): Implemented<'Identity', 'GetPluginInfo' | 'GetPluginCapabilities' | 'Probe'> {
  // Expansion is online: images grow while mounted (NodeExpandVolume runs resize2fs/xfs_growfs).
  const capabilities: PluginCapability[] = [{ service: { type: 'VOLUME_ACCESSIBILITY_CONSTRAINTS' } }, { volume_expansion: { type: 'ONLINE' } }]
  // The group controller is served beside the controller, so both are advertised together (the
  // node's Identity too: csi-sanity decides from the node socket what to test).
  if (opts.controllerService) capabilities.unshift({ service: { type: 'CONTROLLER_SERVICE' } }, { service: { type: 'GROUP_CONTROLLER_SERVICE' } })
  return {
    GetPluginInfo: async () => ({ name: opts.driverName, vendor_version: driverVersion(), manifest: {} }),
    GetPluginCapabilities: async () => ({ capabilities }),
    Probe: async () => ({ ready: { value: await opts.ready() } }),
  }
}
