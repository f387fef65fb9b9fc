// treeDigest: a sha256 over a tree's content and metadata, to prove a copy (a snapshot, a
// restore, a clone) equal to its source bit for bit. Verification only; the copy engine is
// node/copy.ts.
import { createHash } from 'node:crypto'
import { constants as C, promises as fsp } from 'node:fs'
import { getXattr, listXattrs } from '../native/index.js'
import { CHUNK, fmtOf, join, openSource } from './copy.js'

/**
 * sha256 over a canonical listing of the tree at `root`, to prove two trees
 * equal "bit for bit, metadata included". One record per entry, in bytewise
 * name order, the root included as "": relative path bytes, file type,
 * permission bits with setuid/setgid/sticky (not for symlinks: always 0777),
 * uid, gid, mtime in ns, size (regular files and symlinks; directory sizes
 * are filesystem-specific), device number (char/block), symlink target
 * bytes, every readable xattr as sorted name=hex(value), the sha256 of
 * regular file content, and for non-directories the first name in this
 * order with the same inode (hard-link grouping). Excluded: atime (though
 * this reads with O_NOATIME), ctime/btime (unsettable), inode numbers, link
 * counts (links from outside the tree), block allocation. Walks by plain
 * paths: meant for trees the caller controls.
 */
export async function treeDigest(root: string): Promise<string> {
  const h = createHash('sha256')
  const firstName = new Map<string, string>()
  const walk = async (p: Buffer, rel: Buffer): Promise<void> => {
    const st = await fsp.lstat(p, { bigint: true })
    const fmt = fmtOf(st)
    const is = (...f: number[]): boolean => f.includes(fmt)
    const inode = is(C.S_IFDIR) ? '' : `${st.dev}:${st.ino}`
    if (!firstName.has(inode)) firstName.set(inode, rel.toString('hex'))
    const record = [
      rel.toString('hex'), fmt.toString(8), is(C.S_IFLNK) ? '' : (Number(st.mode) & 0o7777).toString(8),
      `${st.uid}`, `${st.gid}`, `${st.mtimeNs}`, is(C.S_IFREG, C.S_IFLNK) ? `${st.size}` : '',
      is(C.S_IFCHR, C.S_IFBLK) ? `${st.rdev}` : '',
      is(C.S_IFLNK) ? (await fsp.readlink(p, { encoding: 'buffer' })).toString('hex') : '',
      listXattrs(p).sort().map((n) => `${n}=${getXattr(p, n).toString('hex')}`),
      is(C.S_IFREG) ? await fileSha256(p) : '',
      inode === '' ? '' : firstName.get(inode),
    ]
    h.update(JSON.stringify(record) + '\n')
    if (!is(C.S_IFDIR)) return
    for (const n of (await fsp.readdir(p, { encoding: 'buffer' })).sort(Buffer.compare)) {
      await walk(join(p, n), rel.length === 0 ? n : join(rel, n))
    }
  }
  await walk(Buffer.from(root), Buffer.alloc(0))
  return h.digest('hex')
}

async function fileSha256(p: Buffer): Promise<string> {
  const h = createHash('sha256')
  // The stream closes the handle at the end and on error.
  for await (const chunk of (await openSource(p)).createReadStream({ highWaterMark: CHUNK })) h.update(chunk as Buffer)
  return h.digest('hex')
}
