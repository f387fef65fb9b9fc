// Picks the store implementation from the entrypoints' --store flag.
import path from 'node:path'
import { FlagError } from '../flags.js'
import type { Logger } from '../log.js'
import { LocalStore } from './local.js'
import type { Store } from './types.js'

export const STORE_FLAGS = {
  store: { type: 'string', default: 'local', help: 'where volume state lives: local (a folder under --state-dir, one machine) or kubernetes (custom resources in the API server)' },
  kubeconfig: { type: 'string', default: '', help: 'kubeconfig for --store kubernetes (default: in-cluster config, then $KUBECONFIG, then ~/.kube/config)' },
} as const

export async function openStore(kind: string, o: { stateDir: string; kubeconfig: string; nodeId?: string }, log: Logger): Promise<Store> {
  switch (kind) {
    case 'local':
      return LocalStore.open(path.join(path.resolve(o.stateDir), 'store'), log)
    case 'kubernetes': {
      // Loaded only here: @kubernetes/client-node costs ~70 MB of RSS, which a node plugin on the
      // local store should not pay.
      const { KubeStore } = await import('./kube-store.js')
      return KubeStore.open({ ...(o.kubeconfig && { kubeconfig: o.kubeconfig }), ...(o.nodeId && { nodeId: o.nodeId }) }, log)
    }
    default:
      throw new FlagError(`--store ${JSON.stringify(kind)}: expected local or kubernetes`)
  }
}
