// csi-sanity (scripts/sanity.sh, the host's own runner) in the guest: dir volumes with
// `quota: required`, which the host's kernel refuses, and the ext4-image expansion spec the host
// skips without CAP_SYS_RESOURCE. scripts/vm/guest.sh puts /tmp, where sanity.sh keeps its data
// root, on the xfs scratch disk mounted prjquota. A focus keeps the run to the specs these
// volumes change (each spec costs seconds under TCG); the host runs all 92 for every mode.
import t from 'tap'
import { kernelRelease, sanityPasses } from '../helpers/vm-rig.js'

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
      sanityPasses(t, args)
    })
  }
})
