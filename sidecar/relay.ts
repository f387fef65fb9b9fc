// Fetches the driver's Prometheus text from its metrics unix socket. The privileged node plugin
// opens no TCP port, so this sidecar is the only way Prometheus reaches its numbers.
import http from 'node:http'

// A driver's scrape is a few hundred KiB at most (per-volume series on a full node); anything
// far beyond that is a fault, and buffering it without bound would take the sidecar down with it.
const MAX_BYTES = 32 << 20

export class RelayError extends Error {}

/** GET /metrics on the unix socket; rejects on a refused connection, a non-200 answer or the timeout. */
export function fetchDriverMetrics(socketPath: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      {
        socketPath,
        path: '/metrics',
        // The classic text format: it is what the sidecar's own registry writes, and the two are
        // served as one body.
        headers: { accept: 'text/plain;version=0.0.4', host: 'localhost' },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume()
          reject(new RelayError(`driver metrics socket ${socketPath} answered HTTP ${res.statusCode}`))
          return
        }
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (b: Buffer) => {
          size += b.length
          if (size > MAX_BYTES) req.destroy(new RelayError(`driver metrics from ${socketPath} exceed ${MAX_BYTES} bytes`))
          else chunks.push(b)
        })
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
        res.on('error', reject)
      },
    )
    req.on('error', (e: NodeJS.ErrnoException) => {
      if (e.name === 'AbortError' || e.name === 'TimeoutError') reject(new RelayError(`driver metrics socket ${socketPath}: no answer within ${timeoutMs} ms`))
      else reject(e instanceof RelayError ? e : new RelayError(`driver metrics socket ${socketPath}: ${e.code ?? e.message}`))
    })
  })
}

const SAMPLE_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/
const SUFFIXES = /_(bucket|sum|count|total|created|info)$/

/**
 * The driver's exposition without any family the sidecar writes itself (a scrape with two
 * families of one name is rejected whole) and without an OpenMetrics `# EOF`, which may only end
 * a body. Always ends with a newline when not empty.
 */
export function withoutFamilies(text: string, own: ReadonlySet<string>): string {
  const collides = (name: string): boolean => own.has(name) || own.has(name.replace(SUFFIXES, ''))
  const out: string[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line === '# EOF') continue
    const meta = /^# (HELP|TYPE|UNIT) (\S+)/.exec(line)
    if (meta) {
      if (!collides(meta[2]!)) out.push(line)
      continue
    }
    if (line.startsWith('#')) {
      out.push(line)
      continue
    }
    const name = SAMPLE_NAME.exec(line)?.[0]
    if (name && !collides(name)) out.push(line)
  }
  return out.length ? out.join('\n') + '\n' : ''
}
