// common/client.ts, the one CSI client: it has exactly the proto's methods, answers with the
// decoded response, rejects with grpc-js's ServiceError, and honours the default and per-call
// deadlines. Real grpc-js server in this process on a unix socket; no driver process.
import t from 'tap'
import * as grpc from '@grpc/grpc-js'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pino from 'pino'
import { csiClient, isCsiService, methodNames, type CsiService } from '../common/client.js'
import { CsiError, Code } from '../common/errors.js'
import { csiPackage, implement } from '../common/grpc.js'
import type { TT } from './helpers/csi.js'

const SERVICES: CsiService[] = ['Identity', 'Controller', 'Node', 'GroupController']

async function server(t: TT): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tscsi-client-'))
  const address = `unix://${dir}/s.sock`
  const csi = csiPackage()
  const s = new grpc.Server()
  s.addService(csi.Identity.service, implement('Identity', csi.Identity.service, {
    GetPluginInfo: async () => ({ name: 'local.tscsi.dev', vendor_version: '1' }),
    // Answers after 400 ms, or never (the signal stops it) once the caller's deadline passed.
    Probe: (_req, signal) => new Promise((resolve) => {
      const timer = setTimeout(() => resolve({ ready: { value: true } }), 400)
      signal?.addEventListener('abort', () => clearTimeout(timer), { once: true })
    }),
    GetPluginCapabilities: async () => { throw new CsiError(Code.FAILED_PRECONDITION, 'not today') },
  }, { log: pino({ level: 'silent' }) }))
  await new Promise<void>((res, rej) => s.bindAsync(address, grpc.ServerCredentials.createInsecure(), (e) => (e ? rej(e) : res())))
  t.teardown(() => { s.forceShutdown(); fs.rmSync(dir, { recursive: true, force: true }) })
  return address
}

t.test('each client has exactly the loaded proto\'s methods, and close()', async (t) => {
  for (const s of SERVICES) {
    const c = csiClient(s, 'unix:///nonexistent/s.sock')
    t.same(Object.keys(c).filter((k) => k !== 'close').sort(), Object.keys(csiPackage()[s].service).sort(), s)
    t.same(methodNames(s), Object.keys(csiPackage()[s].service), `${s}: methodNames() in the proto's order`)
    c.close()
  }
  t.ok(isCsiService('Node'))
  t.notOk(isCsiService('Registration'), 'kubelet\'s service is not one a CSI client calls')
  t.notOk(isCsiService('toString'))
})

t.test('a call answers the decoded response; a failure rejects with the ServiceError', async (t) => {
  const c = csiClient('Identity', await server(t))
  t.teardown(() => c.close())
  t.same(await c.GetPluginInfo({}), { name: 'local.tscsi.dev', vendor_version: '1', manifest: {} })
  const err = await c.GetPluginCapabilities({}).then(() => undefined, (e: grpc.ServiceError) => e)
  t.equal(err?.code, grpc.status.FAILED_PRECONDITION)
  t.equal(err?.details, 'not today')
})

t.test('the client\'s default deadline, and a call\'s own', async (t) => {
  const address = await server(t)
  const short = csiClient('Identity', address, { deadlineMs: 100 })
  const long = csiClient('Identity', address)
  t.teardown(() => { short.close(); long.close() })
  const code = (p: Promise<unknown>): Promise<number> => p.then(() => grpc.status.OK, (e: grpc.ServiceError) => e.code)
  t.equal(await code(short.Probe({})), grpc.status.DEADLINE_EXCEEDED, 'the default deadline of 100 ms')
  t.equal(await code(short.Probe({}, 5_000)), grpc.status.OK, 'a call that names 5 s waits the 400 ms')
  t.equal(await code(long.Probe({}, 100)), grpc.status.DEADLINE_EXCEEDED, 'a call that names 100 ms on a 30 s client')
  t.same(await long.Probe({}), { ready: { value: true } })
})

// What tsc must refuse (tsconfig.test.json checks this file; tap does not). Never called.
export async function mistakesThatDoNotCompile(): Promise<void> {
  const c = csiClient('Controller', 'unix:///x')
  // @ts-expect-error a Node method on a Controller client
  await c.NodeGetInfo({})
  // @ts-expect-error a misspelt request field
  await c.CreateVolume({ nmae: 'x' })
  // @ts-expect-error an enum value the proto does not have
  await c.CreateVolume({ name: 'x', volume_capabilities: [{ access_mode: { mode: 'SINGLE_NODE_WRITTER' } }] })
  const res = await c.CreateVolume({ name: 'x' })
  // @ts-expect-error an unset message is null in what a client receives
  void res.volume.volume_id
  // @ts-expect-error a misspelt response field
  void res.volume?.volume_idd
}
