// The typed protocol (common/protocol.ts over proto/gen): the committed types are what the
// generator makes of the .proto files today; the method names they declare are the ones the
// loaded protocol has; implement() serves every method; and, checked by tsc rather than by tap,
// a misspelt method, a wrong request field or a wrong response type does not compile.
import t from 'tap'
import pino from 'pino'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import path from 'node:path'
import { csiPackage, implement, registrationService } from '../common/grpc.js'
import { TryLocks } from '../common/lock.js'
import type { Handlers, MethodName, RequestOf, ResponseOf, ServiceName } from '../common/protocol.js'
import { ROOT } from './helpers/driver.js'

const GEN = path.join(ROOT, 'proto/gen')

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => statSync(path.join(dir, f)).isDirectory() ? filesUnder(path.join(dir, f)).map((g) => `${f}/${g}`) : [f]).sort()
}

t.test('proto/gen is what scripts/gen-proto-types.sh makes of proto/ now', async (t) => {
  const dir = t.testdir()
  const r = spawnSync('bash', [path.join(ROOT, 'scripts/gen-proto-types.sh'), dir], { encoding: 'utf8' })
  t.equal(r.status, 0, `the generator runs: ${r.stderr}`)
  const fix = 'edit proto/*.proto, then run `npm run gen:proto`'
  const want = filesUnder(dir)
  t.same(filesUnder(GEN), want, `the same files (${fix})`)
  for (const f of want) {
    if (readFileSync(path.join(GEN, f), 'utf8') !== readFileSync(path.join(dir, f), 'utf8')) t.fail(`proto/gen/${f} differs from a fresh generation (${fix})`)
  }
})

// Every method of every served service, as the generated types declare them: `satisfies`
// fails to compile when one is missing or unknown, and the test below compares the list with
// what the loader reads from the .proto at run time.
const DECLARED = {
  Identity: { GetPluginInfo: 1, GetPluginCapabilities: 1, Probe: 1 },
  Controller: {
    CreateVolume: 1, DeleteVolume: 1, ControllerPublishVolume: 1, ControllerUnpublishVolume: 1, ValidateVolumeCapabilities: 1, ListVolumes: 1,
    GetCapacity: 1, ControllerGetCapabilities: 1, CreateSnapshot: 1, DeleteSnapshot: 1, ListSnapshots: 1, GetSnapshot: 1, ControllerExpandVolume: 1,
    ControllerGetVolume: 1, ControllerModifyVolume: 1,
  },
  Node: {
    NodeStageVolume: 1, NodeUnstageVolume: 1, NodePublishVolume: 1, NodeUnpublishVolume: 1, NodeGetVolumeStats: 1, NodeExpandVolume: 1,
    NodeGetCapabilities: 1, NodeGetInfo: 1,
  },
  GroupController: { GroupControllerGetCapabilities: 1, CreateVolumeGroupSnapshot: 1, DeleteVolumeGroupSnapshot: 1, GetVolumeGroupSnapshot: 1 },
  Registration: { GetInfo: 1, NotifyRegistrationStatus: 1 },
} satisfies { [S in ServiceName]: Record<MethodName<S>, 1> }

function definitions() {
  const csi = csiPackage()
  return {
    Identity: csi.Identity.service, Controller: csi.Controller.service, Node: csi.Node.service,
    GroupController: csi.GroupController.service, Registration: registrationService().service,
  }
}

t.test('the generated method names are the loaded protocol\'s', async (t) => {
  const defs = definitions()
  for (const s of Object.keys(DECLARED) as ServiceName[]) {
    t.same(Object.keys(defs[s]).sort(), Object.keys(DECLARED[s]).sort(), s)
  }
})

t.test('implement() serves every method of each service, implemented or not', async (t) => {
  const defs = definitions()
  const log = pino({ level: 'silent' })
  for (const s of Object.keys(DECLARED) as ServiceName[]) {
    // No handlers at all: every method still exists and answers UNIMPLEMENTED.
    const impl = implement(s, defs[s] as never, {}, { log })
    t.same(Object.keys(impl).sort(), Object.keys(DECLARED[s]).sort(), s)
    for (const m of Object.keys(impl)) t.type(impl[m], 'function', `${s}.${m}`)
  }
})

// What tsc must refuse. tap runs this file without type-checking it; tsconfig.test.json checks
// it, and an @ts-expect-error that no longer meets an error is itself an error, so typing that
// regresses fails the build. Never called: only its types matter.
export function mistakesThatDoNotCompile(): void {
  const csi = csiPackage()
  const log = pino({ level: 'silent' })
  implement('Controller', csi.Controller.service, {
    // @ts-expect-error a misspelt method name is not a method of Controller
    CreatVolume: async () => ({}),
  }, { log })
  implement('Node', csi.Node.service, {
    // @ts-expect-error a request has no field the proto does not declare
    NodeStageVolume: async (req) => ({ staged: req.staging_path }),
  }, { log })
  const wrongResponse: Handlers<'Controller'> = {
    // @ts-expect-error capacity_bytes is an int64 (a string, number or Long), not a boolean
    ControllerExpandVolume: async () => ({ capacity_bytes: true }),
  }
  // As the handlers are written (a declared return type): a field the response does not have.
  // (An arrow's inferred return type escapes this excess-property check; a response with no
  // declared field at all still fails as a weak type.)
  async function NodeGetInfo(): Promise<ResponseOf<'Node', 'NodeGetInfo'>> {
    // @ts-expect-error a response field the proto does not declare
    return { node_id: 'n', max_volumes: '1' }
  }
  const wrongField: Handlers<'Node'> = {
    // @ts-expect-error a response with none of the declared fields
    NodeGetInfo: async () => ({ nodeId: 'n' }),
  }
  const wrongRequest: Handlers<'Controller'> = {
    // @ts-expect-error a handler for one method cannot take another's request
    DeleteVolume: async (_req: RequestOf<'Controller', 'CreateVolume'>) => ({}),
  }
  // @ts-expect-error the service definition must be the named service's
  implement('Node', csi.Controller.service, {}, { log })
  // As the lock callbacks are written: the callback declares the response it builds.
  const locks = new TryLocks()
  async function NodeExpandVolume(): Promise<ResponseOf<'Node', 'NodeExpandVolume'>> {
    return locks.run('v', 'volume v', async (): Promise<ResponseOf<'Node', 'NodeExpandVolume'>> => {
      // @ts-expect-error a misspelt response field inside a lock callback
      return { capacity_byte: '1' }
    })
  }
  void [wrongResponse, NodeGetInfo, wrongField, wrongRequest, NodeExpandVolume]
}

// An async callback's object literal is checked against the response type only when the callback
// declares it: inferred, or even with run<T> given, the literal's extra or misspelt fields compile
// (TypeScript widens the callback's return before comparing). So every inline callback a handler
// hands to a lock declares its return type; this finds one that does not.
t.test('every inline lock callback in a handler declares the response it returns', async (t) => {
  const bare: string[] = []
  for (const dir of ['controller', 'node']) {
    for (const f of readdirSync(path.join(ROOT, dir)).filter((n) => n.endsWith('.ts'))) {
      readFileSync(path.join(ROOT, dir, f), 'utf8').split('\n').forEach((line, i) => {
        if (/\blocks\.run\(.*(async )?\(\) => \{\s*$/.test(line)) bare.push(`${dir}/${f}:${i + 1}`)
      })
    }
  }
  t.same(bare, [], 'no locks.run(..., () => { ... }) without a return type')
})
