// csi-sanity (scripts/sanity.sh, the host's own runner) in the guest: dir volumes with
// `quota: required`, which the host's kernel refuses, and the ext4-image expansion spec the host
// skips without CAP_SYS_RESOURCE. scripts/vm/guest.sh puts /tmp, where sanity.sh keeps its data
// root, on the xfs scratch disk mounted prjquota. A focus keeps the run to the specs these
// volumes change (each spec costs seconds under TCG); the host runs all 92 for every mode.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { PROJECT, kernelRelease } from '../helpers/vm-rig.js'

const runs = [
  {
    what: 'dir volumes with quota: required (node, expansion and modify specs)',
    args: ['--csi.testvolumeparameters', 'test/vm/sanity-quota.yaml', '--csi.testvolumemutableparameters', 'test/vm/sanity-quota-mutable.yaml',
      '--ginkgo.focus', 'Node Service|ExpandVolume|ModifyVolume|CreateVolume'],
  },
  {
    what: 'ext4 images: node-expand after node-publish (online growth)',
    args: ['--csi.testvolumeparameters', 'test/sanity/image-ext4.yaml', '--ginkgo.focus', 'should work if node-expand is called after node-publish'],
  },
]

t.test(`csi-sanity on ${kernelRelease()}`, async (t) => {
  for (const { what, args } of runs) {
    await t.test(what, async (t) => {
      const r = spawnSync('bash', ['scripts/sanity.sh', '--', ...args], { cwd: PROJECT, encoding: 'utf8', maxBuffer: 64 << 20 })
      const out = `${r.stdout}${r.stderr}`
      const m = /^SANITY passed=(\d+) failed=(\d+) skipped=(\d+)/m.exec(out)
      if (!m || m[2] !== '0') t.comment(out.split('\n').slice(-150).join('\n'))
      t.ok(m, 'sanity.sh reported a summary')
      t.ok(Number(m?.[1]) > 0, `${m?.[1]} specs passed`)
      t.equal(Number(m?.[2]), 0, 'no spec failed')
      t.comment(`passed=${m?.[1]} failed=${m?.[2]} skipped=${m?.[3]}`)
    })
  }
})
