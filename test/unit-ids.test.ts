// Ids are names on disk and in the store: an upgrade that changed how one is minted would orphan
// every volume, snapshot and ephemeral volume made before it. Each minting function is pinned to
// a value computed once, by hand, when it was written; these values must never change.
import t from 'tap'
import { ephemeralIdFor, exportIdFor, groupIdFor, idInName, idKind, idShape, isId, memberIdFor, snapshotIdFor, VOLUME_KINDS, volumeIdFor } from '../common/ids.js'

t.test('every id function is pinned', async (t) => {
  t.equal(volumeIdFor('pvc-1'), 'v-a6e1b97f35f15e735b4e2ed14ffcd254', 'volume')
  t.equal(snapshotIdFor('snap-1'), 's-dc83c263c6510ff8479b759dada3c358', 'snapshot')
  t.equal(groupIdFor('group-1'), 'g-97b7d4b8bef0ad1576f4bb2519874a0f', 'group snapshot')
  t.equal(ephemeralIdFor('csi-abc123'), 'e-ee7c495023739fc07dafa32ddd552e1a', 'ephemeral volume')
  t.equal(memberIdFor(groupIdFor('group-1'), volumeIdFor('pvc-1')), 's-6a40e3549b7f140baee6bda88965fba5', 'group snapshot member')
  t.equal(exportIdFor('nfs.example.com', '/export', ['nfsvers=4.2']), 'n-b2adc32e9bff8957dd93fbd7a77645fe', 'nfs export')
  t.not(exportIdFor('a', '/x', ['b']), exportIdFor('a', '/x', []), 'the mount options are part of it')
  t.equal(idKind(exportIdFor('a', '/x', [])), 'n')
})

t.test('ids differ by name and by kind', async (t) => {
  t.not(snapshotIdFor('a'), snapshotIdFor('b'))
  // The same name gives different ids in different kinds: each hash is salted with its kind.
  t.not(snapshotIdFor('x').slice(2), groupIdFor('x').slice(2))
  t.not(volumeIdFor('x').slice(2), ephemeralIdFor('x').slice(2))
})

t.test('idKind: the kind of every id we mint, and nothing for anything else', async (t) => {
  t.equal(idKind(volumeIdFor('a')), 'v')
  t.equal(idKind(snapshotIdFor('a')), 's')
  t.equal(idKind(groupIdFor('a')), 'g')
  t.equal(idKind(ephemeralIdFor('a')), 'e')
  t.equal(idKind(memberIdFor(groupIdFor('a'), volumeIdFor('a'))), 's', 'a group member is a snapshot')
  const hex = '0'.repeat(32)
  for (const near of ['', `v-${hex.slice(1)}`, `v-${hex}0`, `V-${hex}`, `x-${hex}`, `v-${'A'.repeat(32)}`, `v_${hex}`, ` v-${hex}`, `v-${hex}\n`, `v-${hex}/..`, 'pvc-1']) {
    t.equal(idKind(near), undefined, JSON.stringify(near))
  }
})

t.test('idShape: the pattern the CRDs check ids with agrees with idKind', async (t) => {
  const hex = '0'.repeat(32)
  for (const id of [volumeIdFor('a'), snapshotIdFor('a'), groupIdFor('a'), ephemeralIdFor('a'), `v-${hex.slice(1)}`, `v-${hex}0`, `V-${hex}`, `v-${hex}\n`, 'pvc-1']) {
    for (const kind of ['v', 's', 'g', 'e'] as const) t.equal(idShape(kind).test(id), idKind(id) === kind, `${JSON.stringify(id)} ${kind}`)
  }
})

t.test('isId and idInName: ids of given kinds, and the id a file is named by', async (t) => {
  const v = volumeIdFor('a')
  const e = ephemeralIdFor('a')
  const s = snapshotIdFor('a')
  t.ok(isId(v, VOLUME_KINDS))
  t.ok(isId(e, VOLUME_KINDS))
  t.notOk(isId(s, VOLUME_KINDS))
  t.ok(isId(s, ['s']))
  t.equal(idInName(v, VOLUME_KINDS), v)
  t.equal(idInName(`${e}.img`, VOLUME_KINDS, '.img'), e)
  t.equal(idInName(`${v}.img`, VOLUME_KINDS), undefined, 'the suffix is part of the name')
  t.equal(idInName(v, VOLUME_KINDS, '.img'), undefined, 'a name without the suffix')
  t.equal(idInName(`${s}.img`, VOLUME_KINDS, '.img'), undefined, 'another kind')
  t.equal(idInName('.img', VOLUME_KINDS, '.img'), undefined)
  t.equal(idInName('lost+found', VOLUME_KINDS), undefined)
})
