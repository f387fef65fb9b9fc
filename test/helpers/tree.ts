// A tree with the things copies get wrong (holes, links, odd modes and owners, an xattr, an old
// mtime), for the tests that prove a snapshot, restore or clone equal to its source with
// node/digest.ts's treeDigest: test/process-snapshot.test.ts and test/vm/nfs-volumes.vm.ts.
import { chmodSync, chownSync, closeSync, linkSync, mkdirSync, openSync, symlinkSync, truncateSync, utimesSync, writeFileSync, writeSync } from 'node:fs'
import path from 'node:path'
import { setXattr } from '../../native/index.js'

const MiB = 1 << 20

/** Writes the tree into root (which may exist). */
export function writeTree(root: string): void {
  mkdirSync(path.join(root, 'sub/deeper'), { recursive: true })
  writeFileSync(path.join(root, 'regular'), 'hello')
  writeFileSync(path.join(root, 'empty'), '')
  const sparse = path.join(root, 'sparse')
  const fd = openSync(sparse, 'w')
  writeSync(fd, Buffer.alloc(4096, 1), 0, 4096, 8 * MiB)
  closeSync(fd)
  truncateSync(sparse, 32 * MiB)
  symlinkSync('regular', path.join(root, 'link'))
  symlinkSync('/nowhere/at/all', path.join(root, 'dangling'))
  linkSync(path.join(root, 'regular'), path.join(root, 'sub/hardlink'))
  chmodSync(path.join(root, 'sub/deeper'), 0o1777)
  writeFileSync(path.join(root, 'sub/setuid'), '#!/bin/sh\n')
  chmodSync(path.join(root, 'sub/setuid'), 0o4755)
  chownSync(path.join(root, 'sub/setuid'), 1000, 1000)
  setXattr(path.join(root, 'regular'), 'user.origin', Buffer.from('tscsi'))
  utimesSync(path.join(root, 'sub/deeper'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'))
}

