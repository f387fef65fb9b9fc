// Ids are names on disk and in the store: an upgrade that changed how one is minted would orphan
// every volume, snapshot and ephemeral volume made before it. Each minting function is pinned to
// a value computed once, by hand, when it was written; these values must never change.
import t from 'tap'
import { volumeIdFor } from '../controller/request.js'
import { snapshotIdFor } from '../controller/snapshots.js'
import { groupIdFor, memberIdFor } from '../controller/groups.js'
import { ephemeralIdFor } from '../node/ephemeral.js'

t.test('every id function is pinned', async (t) => {
  t.equal(volumeIdFor('pvc-1'), 'v-a6e1b97f35f15e735b4e2ed14ffcd254', 'volume')
  t.equal(snapshotIdFor('snap-1'), 's-dc83c263c6510ff8479b759dada3c358', 'snapshot')
  t.equal(groupIdFor('group-1'), 'g-97b7d4b8bef0ad1576f4bb2519874a0f', 'group snapshot')
  t.equal(ephemeralIdFor('csi-abc123'), 'e-ee7c495023739fc07dafa32ddd552e1a', 'ephemeral volume')
  t.equal(memberIdFor(groupIdFor('group-1'), volumeIdFor('pvc-1')), 's-6a40e3549b7f140baee6bda88965fba5', 'group snapshot member')
})

t.test('ids differ by name and by kind', async (t) => {
  t.not(snapshotIdFor('a'), snapshotIdFor('b'))
  // The same name gives different ids in different kinds: each hash is salted with its kind.
  t.not(snapshotIdFor('x').slice(2), groupIdFor('x').slice(2))
  t.not(volumeIdFor('x').slice(2), ephemeralIdFor('x').slice(2))
})
