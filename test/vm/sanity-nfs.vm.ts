// csi-sanity with nfs parameters (issue 16) in the guest, whose kernel has the NFS client and
// nfsd this machine's kernel lacks: scripts/sanity.sh's controller and node plugin, with every
// volume a directory on the guest's export. No focus: every spec csi-sanity runs for these
// parameters must pass, snapshots and expansion included.
import t from 'tap'
import { readdirSync } from 'node:fs'
import { BACKING, EXPORT, startNfsServer } from '../helpers/nfs-server.js'
import { kernelRelease, sanityPasses } from '../helpers/vm-rig.js'

const SHARE = `${EXPORT}/sanity` // as test/vm/sanity-nfs.yaml names it

t.test(`csi-sanity with nfs parameters on ${kernelRelease()}`, async (t) => {
  await t.test('the server', async (st) => { await startNfsServer(st, t, [`${BACKING}/sanity`]) })
  sanityPasses(t, ['--csi.testvolumeparameters', 'test/vm/sanity-nfs.yaml'])
  // Every volume and snapshot csi-sanity made was deleted again: nothing is left on the export
  // but the (empty) snapshots folder.
  const left = readdirSync(SHARE).filter((n) => n !== '.tscsi-snapshots')
  t.same(left, [], `the export holds no volume directory after the run (${left.join(', ') || 'none'})`)
  const snaps = readdirSync(SHARE).includes('.tscsi-snapshots') ? readdirSync(`${SHARE}/.tscsi-snapshots`) : []
  t.same(snaps, [], 'and no snapshot copy')
})
