// The built-in kubelet registration, seen from kubelet's side: a client on the registration
// socket, as kubelet's plugin watcher would be.
import t from 'tap'
import path from 'node:path'
import { mkdirSync, existsSync } from 'node:fs'
import * as grpc from '@grpc/grpc-js'
import { registrationService } from '../common/grpc.js'
import { start, testRig } from './helpers/driver.js'

if (process.getuid?.() !== 0) {
  t.skip('starts the node plugin, which needs root', () => {})
} else {
  t.test('GetInfo on the registration socket names the driver, its CSI endpoint and versions', async (t) => {
    const rig = testRig(t)
    const regDir = path.join('/tmp', `tscsi-reg-${process.pid}`)
    mkdirSync(regDir, { recursive: true })
    t.teardown(() => import('node:fs').then((fs) => fs.rmSync(regDir, { recursive: true, force: true })))
    const node = await start('node', rig.dir, ['--registration-dir', regDir, '--kubelet-registration-path', '/var/lib/kubelet/plugins/local.tscsi.dev/csi.sock'])
    rig.procs.push(node)
    const socket = path.join(regDir, 'local.tscsi.dev-reg.sock')
    t.ok(existsSync(socket), 'the registration socket is in the registry folder, not dot-prefixed')
    const Reg = registrationService()
    const c = new Reg(`unix://${socket}`, grpc.credentials.createInsecure()) as unknown as Record<string, Function> & grpc.Client
    t.teardown(() => c.close())
    const call = (m: string, req: object) => new Promise<any>((res, rej) => c[m]!.call(c, req, (e: Error | null, r: unknown) => (e ? rej(e) : res(r))))
    const info = await call('GetInfo', {})
    t.equal(info.type, 'CSIPlugin')
    t.equal(info.name, 'local.tscsi.dev')
    t.equal(info.endpoint, '/var/lib/kubelet/plugins/local.tscsi.dev/csi.sock')
    t.same(info.supported_versions, ['1.0.0'])
    t.same(await call('NotifyRegistrationStatus', { plugin_registered: true }), {})
    node.child.kill('SIGTERM')
    t.equal(await node.exited, 0)
    t.notOk(existsSync(socket), 'the registration socket is removed on shutdown (kubelet then deregisters)')
  })
}
