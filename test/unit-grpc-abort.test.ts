// common/grpc.ts implement(): a handler learns, through its AbortSignal, that the caller stopped
// waiting. Real grpc-js server and client over a unix socket; the handler waits on its signal.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { csiPackage, implement } from '../common/grpc.js'
import type { TT } from './helpers/csi.js'

interface Seen { reason?: unknown; got: boolean }

async function rig(t: TT) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscsi-abort-'))
  const sock = `unix://${dir}/s.sock`
  const csi = csiPackage()
  const seen: Seen = { got: false }
  let entered!: () => void
  const inHandler = new Promise<void>((r) => { entered = r })
  const server = new grpc.Server()
  server.addService(csi.Identity.service, implement('Identity', csi.Identity.service, {
    // Resolves only when aborted, so a test that sees an answer proves the signal fired.
    Probe: (_req: unknown, signal?: AbortSignal) => new Promise((resolve) => {
      seen.got = signal !== undefined
      entered()
      signal?.addEventListener('abort', () => { seen.reason = signal.reason; resolve({}) }, { once: true })
    }),
    GetPluginInfo: async (_req: unknown, signal?: AbortSignal) => ({ name: signal?.aborted ? 'aborted' : 'live', vendor_version: '1' }),
  }, { log: pino({ level: 'silent' }) }))
  await new Promise<void>((res, rej) => server.bindAsync(sock, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())))
  const client = new csi.Identity(sock, grpc.credentials.createInsecure()) as any
  t.teardown(() => { client.close(); server.forceShutdown(); fs.rmSync(dir, { recursive: true, force: true }) })
  return { client, seen, inHandler }
}

t.test('a passed deadline aborts the handler\'s signal with a TimeoutError', async (t) => {
  const { client, seen, inHandler } = await rig(t)
  const answer = new Promise<grpc.ServiceError | null>((resolve) =>
    client.Probe({}, { deadline: Date.now() + 300 }, (e: grpc.ServiceError | null) => resolve(e)))
  await inHandler
  t.equal((await answer)?.code, grpc.status.DEADLINE_EXCEEDED, 'the client sees DEADLINE_EXCEEDED')
  // The abort may land a moment after the client's own timer.
  for (let i = 0; i < 100 && seen.reason === undefined; i++) await new Promise((r) => setTimeout(r, 20))
  t.ok(seen.got, 'the handler was given a signal')
  t.equal((seen.reason as Error | undefined)?.name, 'TimeoutError', 'the reason names the deadline')
})

t.test('a cancelled call aborts the handler\'s signal with an AbortError', async (t) => {
  const { client, seen, inHandler } = await rig(t)
  const call = client.Probe({}, { deadline: Date.now() + 60_000 }, () => undefined)
  await inHandler
  call.cancel()
  for (let i = 0; i < 100 && seen.reason === undefined; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal((seen.reason as Error | undefined)?.name, 'AbortError', 'the reason names the cancellation')
})

t.test('a call that finishes in time is never aborted', async (t) => {
  const { client } = await rig(t)
  const res = await new Promise<any>((resolve, reject) =>
    client.GetPluginInfo({}, { deadline: Date.now() + 10_000 }, (e: unknown, r: unknown) => (e ? reject(e) : resolve(r))))
  t.equal(res.name, 'live')
})
