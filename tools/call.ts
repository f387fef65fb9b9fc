#!/usr/bin/env node
// tscsi-call: one CSI request by hand, in the spirit of the csc walk-through in the seeds.
//   tscsi-call ENDPOINT Service.Method ['JSON request']
// e.g. tscsi-call unix:///run/tscsi/node.sock Node.NodeGetInfo
// The request uses the CSI field names (snake_case); the response is printed as JSON.
import * as grpc from '@grpc/grpc-js'
import { csiPackage, parseEndpoint } from '../common/grpc.js'

function fail(msg: string): never {
  process.stderr.write(msg + '\n')
  process.exit(2)
}

const [endpointArg, target, body] = process.argv.slice(2)
if (!endpointArg || !target) fail('usage: tscsi-call ENDPOINT Service.Method [JSON]\n  Service is Identity, Controller, Node or GroupController')
const [service, method] = target.split('.')
const pkg = csiPackage() as unknown as Record<string, grpc.ServiceClientConstructor>
const Ctor = service ? pkg[service] : undefined
if (!Ctor || !method || !(method in Ctor.service)) {
  fail(`unknown method ${target}; ${service && Ctor ? `${service} has ${Object.keys(Ctor.service).join(', ')}` : 'services: Identity, Controller, Node, GroupController'}`)
}
let request: unknown = {}
try {
  request = body ? JSON.parse(body) : {}
} catch (e) {
  fail(`the request is not valid JSON: ${(e as Error).message}`)
}
const c = new Ctor(parseEndpoint(endpointArg).address, grpc.credentials.createInsecure()) as unknown as Record<string, Function>
c[method]!.call(c, request, { deadline: Date.now() + 120_000 }, (err: grpc.ServiceError | null, res: unknown) => {
  if (err) {
    process.stderr.write(`${grpc.status[err.code]}: ${err.details}\n`)
    process.exit(1)
  }
  process.stdout.write(JSON.stringify(res, null, 2) + '\n')
  process.exit(0)
})
