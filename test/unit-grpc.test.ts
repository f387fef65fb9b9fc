// common/grpc.ts: endpoint parsing, and the wire contract: every enum string the driver sends
// must be a value of proto/csi.proto (we once shipped 'STAGE_UNSTAGE' for 'STAGE_UNSTAGE_VOLUME';
// protobufjs silently encodes an unknown name as 0, UNKNOWN).
import t from 'tap'
import protobuf from 'protobufjs'
import { fileURLToPath } from 'node:url'
import { SUPPORTED_MODES } from '../common/capability.js'
import { csiPackage, parseEndpoint } from '../common/grpc.js'
import { identityHandlers } from '../common/identity.js'
import { controllerCapabilities } from '../controller/server.js'
import { GiB } from '../common/sizes.js'
import { csiVolume } from '../controller/request.js'
import { NODE_CAPABILITIES } from '../node/info.js'
import { handler } from './helpers/csi.js'

const root = protobuf.loadSync(fileURLToPath(new URL('../proto/csi.proto', import.meta.url)))
const enumNames = (name: string): string[] => Object.keys(root.lookupEnum(name).values)

t.test('parseEndpoint: unix sockets and tcp', async (t) => {
  t.same(parseEndpoint('unix:///run/tscsi/c.sock'), { address: 'unix:///run/tscsi/c.sock', socketPath: '/run/tscsi/c.sock' })
  t.same(parseEndpoint('unix:/run/c.sock'), { address: 'unix:///run/c.sock', socketPath: '/run/c.sock' })
  t.same(parseEndpoint('/csi/csi.sock'), { address: 'unix:///csi/csi.sock', socketPath: '/csi/csi.sock' })
  t.same(parseEndpoint('tcp://127.0.0.1:10000'), { address: '127.0.0.1:10000' })
  t.same(parseEndpoint('tcp://[::1]:10000'), { address: '[::1]:10000' })
  t.same(parseEndpoint('tcp://localhost:0'), { address: 'localhost:0' })
  t.equal(parseEndpoint('unix:///a').socketPath, '/a')
  t.equal(parseEndpoint('unix:///' + 'a'.repeat(106)).socketPath?.length, 107, 'a 107-byte socket path fits sun_path')
  t.throws(() => parseEndpoint('unix:///' + 'a'.repeat(107)), { message: /107/ }, 'a 108-byte socket path does not')
  for (const bad of ['', 'csi.sock', 'unix://relative.sock', 'unix:', 'unix://', 'tcp://', 'tcp://host', 'tcp://host:', 'tcp://:1', 'tcp://h:abc', 'tcp://h:1/x', 'http://h:1']) {
    t.throws(() => parseEndpoint(bad), { message: /--endpoint/ }, JSON.stringify(bad))
  }
})

t.test('parseEndpoint refuses impossible ports and the root directory as a socket', async (t) => {
  t.throws(() => parseEndpoint('tcp://127.0.0.1:99999'), { message: /--endpoint/ }, 'port 99999')
  t.throws(() => parseEndpoint('unix:///'), { message: /--endpoint/ }, 'socket path /')
})

t.test('every controller capability is a ControllerServiceCapability.RPC.Type value', async (t) => {
  const names = enumNames('csi.v1.ControllerServiceCapability.RPC.Type')
  const caps = controllerCapabilities(true)
  t.ok(caps.length >= controllerCapabilities(false).length + 1, 'attach adds capabilities')
  for (const c of caps) t.ok(names.includes(c) && c !== 'UNKNOWN', c)
  for (const c of controllerCapabilities(false)) t.ok(names.includes(c), `${c} (without attach)`)
})

t.test('every node capability is a NodeServiceCapability.RPC.Type value', async (t) => {
  const names = enumNames('csi.v1.NodeServiceCapability.RPC.Type')
  t.ok(NODE_CAPABILITIES.length > 0)
  for (const c of NODE_CAPABILITIES) t.ok(names.includes(c) && c !== 'UNKNOWN', c)
})

t.test('every plugin capability is a PluginCapability.Service.Type value', async (t) => {
  const names = enumNames('csi.v1.PluginCapability.Service.Type')
  for (const controllerService of [true, false]) {
    const h = identityHandlers({ driverName: 'local.tscsi.dev', controllerService, ready: async () => true })
    const res = (await handler(h, 'GetPluginCapabilities')({})) as { capabilities: { service?: { type: string }; volume_expansion?: { type: string } }[] }
    t.equal(res.capabilities.some((c) => c.service?.type === 'CONTROLLER_SERVICE'), controllerService)
    for (const c of res.capabilities) {
      if (c.service) t.ok(names.includes(c.service.type) && c.service.type !== 'UNKNOWN', c.service.type)
      else t.ok(enumNames('csi.v1.PluginCapability.VolumeExpansion.Type').includes(c.volume_expansion!.type), `volume_expansion ${c.volume_expansion!.type}`)
    }
  }
})

t.test('every supported access mode is a VolumeCapability.AccessMode.Mode value', async (t) => {
  const names = enumNames('csi.v1.VolumeCapability.AccessMode.Mode')
  for (const m of SUPPORTED_MODES) t.ok(names.includes(m), m)
  for (const u of ['BYTES', 'INODES']) t.ok(enumNames('csi.v1.VolumeUsage.Unit').includes(u), u)
})

t.test('capability responses survive the driver\'s own serializers unchanged', async (t) => {
  const csi = csiPackage()
  const roundTrip = (def: { responseSerialize: (v: unknown) => Buffer; responseDeserialize: (b: Buffer) => unknown }, v: unknown): any =>
    def.responseDeserialize(def.responseSerialize(v))
  const ctrl = { capabilities: controllerCapabilities(true).map((type) => ({ rpc: { type } })) }
  const got = roundTrip(csi.Controller.service.ControllerGetCapabilities as never, ctrl)
  t.same(got.capabilities.map((c: any) => c.rpc.type), controllerCapabilities(true))
  const node = { capabilities: NODE_CAPABILITIES.map((type) => ({ rpc: { type } })) }
  const gotNode = roundTrip(csi.Node.service.NodeGetCapabilities as never, node)
  t.same(gotNode.capabilities.map((c: any) => c.rpc.type), NODE_CAPABILITIES)
})

t.test('csiVolume encodes as a CreateVolumeResponse without losing fields', async (t) => {
  const csi = csiPackage()
  const def = csi.Controller.service.CreateVolume as unknown as { responseSerialize: (v: unknown) => Buffer; responseDeserialize: (b: Buffer) => any }
  const obj = {
    id: 'v-0123456789abcdef0123456789abcdef',
    spec: {
      name: 'pvc-1', node: 'node-a', kind: 'dir' as const, pool: 'default', capacityBytes: String(5n * GiB), accessType: 'mount' as const,
      parameters: {}, createdAt: '2024-01-01T00:00:00Z', generation: 1,
    },
  }
  const v = csiVolume(obj)
  const back = def.responseDeserialize(def.responseSerialize({ volume: v })).volume
  t.equal(back.volume_id, obj.id)
  t.equal(back.capacity_bytes, String(5n * GiB), 'int64 as a decimal string')
  t.same(back.volume_context, v.volume_context)
  t.same(back.accessible_topology, v.accessible_topology)
})
