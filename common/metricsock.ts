// Where a driver process serves its Prometheus metrics: a unix socket beside its CSI socket, so
// the privileged node plugin opens no TCP port and the metrics sidecar (which shares the socket
// folder, as the livenessprobe sidecar does) can relay them.
import path from 'node:path'

/** `/csi/csi.sock` → `/csi/csi-metrics.sock`; `/run/csi/socket` → `/run/csi/socket-metrics.sock`. */
export function metricsSocketFor(csiSocketPath: string): string {
  const dir = path.dirname(csiSocketPath)
  const base = path.basename(csiSocketPath).replace(/\.sock$/, '')
  return path.join(dir, `${base}-metrics.sock`)
}
