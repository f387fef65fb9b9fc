// Project quotas for dir volumes, against this machine's real kernel. Where the kernel cannot
// enforce them (no QFMT_V2 / XFS quota, as in this sandbox), `quota: required` must be refused
// with a message naming what is missing and `quota: auto` must work and say it is unenforced.
import t from 'tap'
import { readdirSync } from 'node:fs'
import path from 'node:path'
import { projectQuotaSupport } from '../native/index.js'
import { nativeQuota, mountOf } from '../node/quota.js'
import { Layout } from '../node/layout.js'
import { silentLogger } from '../common/log.js'
import { readMountInfo } from '../native/index.js'
import { volumeIdFor } from '../common/ids.js'
import { client, mountCap, start, testRig } from './helpers/driver.js'

if (process.getuid?.() !== 0) {
  t.skip('starts the node plugin, which needs root', () => {})
} else {
  t.test('quota: required is refused naming the missing support; quota: auto works and says it is unenforced', async (t) => {
    const rig = testRig(t)
    const dir = rig.dir
    const ctl = await start('controller', dir)
    const node = await start('node', dir)
    rig.procs.push(ctl, node)
    const c = client('Controller', ctl.socket)
    t.teardown(() => c.close())
    const layout = new Layout(path.join(dir, 'data'))
    const support = nativeQuota(layout, silentLogger()).support('default')
    const fs = mountOf(readMountInfo(), layout.realRootOf('default'))!
    t.comment(`data root on ${fs.fsType} ${fs.source}: ${support.reason}`)
    t.equal(support.supported, projectQuotaSupport(fs.mountPoint, fs.source).supported, 'the node decides as the native detector does')
    if (support.supported) {
      const { volume } = await c.CreateVolume({ name: 'q-req', volume_capabilities: [mountCap()], parameters: { quota: 'required' } })
      t.equal(volume.volume_context['tscsi.dev/quota'], 'enforced')
      return
    }
    await t.rejects(c.CreateVolume({ name: 'q-req', volume_capabilities: [mountCap()], parameters: { quota: 'required' } }, 20_000),
      { code: 9, details: new RegExp(`quota: required.*${fs.fsType}`) }, 'quota: required fails, naming the filesystem and the reason')
    const err = await c.CreateVolume({ name: 'q-req', volume_capabilities: [mountCap()], parameters: { quota: 'required' } }, 20_000).catch((e) => e)
    t.match(err.details, /QFMT_V2|quota|prjquota|project/i, `the message names the missing support: ${err.details}`)
    await c.DeleteVolume({ volume_id: volumeIdFor('q-req') }) // the refused volume's record goes too

    const auto = await c.CreateVolume({ name: 'q-auto', volume_capabilities: [mountCap()], parameters: { quota: 'auto' } })
    t.match(auto.volume.volume_context['tscsi.dev/quota'], /^unenforced: /, `quota: auto succeeds and says so: ${auto.volume.volume_context['tscsi.dev/quota']}`)
    const off = await c.CreateVolume({ name: 'q-off', volume_capabilities: [mountCap()], parameters: { quota: 'off' } })
    t.equal(off.volume.volume_context['tscsi.dev/quota'], undefined, 'quota: off says nothing')
    await t.rejects(c.CreateVolume({ name: 'q-img', volume_capabilities: [mountCap()], parameters: { kind: 'image', quota: 'required' } }), { code: 3, details: /parameters\[quota\]/ })
    for (const v of [auto, off]) await c.DeleteVolume({ volume_id: v.volume.volume_id })
    t.same(readdirSync(path.join(dir, 'data/volumes')), [])
  })
}
