#!/usr/bin/env node
// tscsi-call: one CSI request by hand, in the spirit of the csc walk-through in the seeds.
//   tscsi-call ENDPOINT Service.Method ['JSON request']
// e.g. tscsi-call unix:///run/tscsi/node.sock Node.NodeGetInfo
// The request uses the CSI field names (snake_case); the response is printed as JSON.
import * as grpc from '@grpc/grpc-js'
import { csiClient, isCsiService, methodNames } from '../common/client.js'
import { parseEndpoint } from '../common/grpc.js'

function fail(msg: string): never {
  process.stderr.write(msg + '\n')
  process.exit(2)
}

const [endpointArg, target, body] = process.argv.slice(2)
if (!endpointArg || !target) fail('usage: tscsi-call ENDPOINT Service.Method [JSON]\n  Service is Identity, Controller, Node or GroupController')
const [service, method] = target.split('.')
const known = service !== undefined && isCsiService(service) ? service : undefined
const methods: readonly string[] = known ? methodNames(known) : []
if (!known || !method || !methods.includes(method)) {
  fail(`unknown method ${target}; ${known ? `${known} has ${methods.join(', ')}` : 'services: Identity, Controller, Node, GroupController'}`)
}
let request: unknown = {}
try {
  request = body ? JSON.parse(body) : {}
} catch (e) {
  fail(`the request is not valid JSON: ${(e as Error).message}`)
}
// The method and the request are only known at run time: the typed client is called by name, and
// the JSON goes to the wire as it is (protobufjs refuses what does not fit the message).
const client = csiClient(known, parseEndpoint(endpointArg).address, { deadlineMs: 120_000 }) as unknown as
  Record<string, (request: unknown) => Promise<unknown>>
client[method]!(request).then(
  (res) => {
    process.stdout.write(JSON.stringify(res, null, 2) + '\n')
    process.exit(0)
  },
  (err: grpc.ServiceError) => {
    process.stderr.write(`${grpc.status[err.code]}: ${err.details}\n`)
    process.exit(1)
  },
)
