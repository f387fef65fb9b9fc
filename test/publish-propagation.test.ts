// Root-only: a publication's flags (readonly, noexec, ...) hold in every copy of its mount that
// mount propagation makes, not only in the node plugin's own.
//
// In a cluster the node plugin runs in its own mount namespace and sees kubelet's directory
// through a Bidirectional (rshared) volume: each mount it makes there is copied into the host's
// namespace, and the pod gets the host's copy. A copy is made when the mount is attached and
// takes the mount's flags at that moment; a later remount changes the plugin's copy only. The
// real-cluster e2e found pods given mountOptions noexec (and readonly volumes) without them.
//
// Here the test process plays the host: D (the kubelet folder) is a shared mount, and the node's
// real handlers and mounter run in a child (test/helpers/node-in-namespace.ts) started in a new
// mount namespace where D stays a peer of the test's D.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { volumeIdFor } from '../common/ids.js'
import { MS, ST, mount, parseMountInfo, statvfs, type MountInfo } from '../native/index.js'
import { mountCap, type TT } from './helpers/csi.js'
import { mountsUnder, testRig, type Proc } from './helpers/driver.js'

// The TypeScript loader tap runs us with; the child needs it to import node/.
const tsLoader = process.execArgv.find((a) => a.includes('@tapjs/typescript'))
const skip = process.getuid?.() !== 0
  ? 'mount propagation tests mount and need root'
  : !tsLoader ? 'no TypeScript loader to run the child node with' : false

type Answer = { ok?: unknown; error?: { code: unknown; message: string } }

/** The node's handlers in a child mount namespace, called one request at a time. */
async function nodeInNamespace(rig: { procs: Proc[] }, config: Record<string, unknown>): Promise<{
  pid: number
  call(name: string, req: Record<string, unknown>): Promise<Answer>
  mounts(): MountInfo[]
  stop(): Promise<number | null>
}> {
  const program = path.join(import.meta.dirname, 'helpers/node-in-namespace.ts')
  // unshare execs the program (no --fork), so the child's pid is the node's.
  const child = spawn('unshare', ['--mount', '--propagation', 'unchanged', process.execPath, tsLoader!, program, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  let logs = ''
  child.stderr!.on('data', (b) => (logs += b))
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  rig.procs.push({ child, socket: '', logs: () => logs, exited })
  const waiting: ((a: Answer & { ready?: boolean }) => void)[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => waiting.shift()?.(JSON.parse(line)))
  const next = (): Promise<Answer & { ready?: boolean }> => new Promise((resolve, reject) => {
    waiting.push(resolve)
    void exited.then((code) => reject(new Error(`the child node exited (${code}):\n${logs}`)))
  })
  if (!(await next()).ready) throw new Error(`the child node did not start:\n${logs}`)
  return {
    pid: child.pid!,
    call: (name, req) => {
      const answer = next()
      child.stdin!.write(JSON.stringify({ call: name, req }) + '\n')
      return answer
    },
    mounts: () => parseMountInfo(readFileSync(`/proc/${child.pid}/mountinfo`, 'utf8')),
    stop: () => {
      child.stdin!.end()
      return exited
    },
  }
}

/** The options of the topmost mount at mountPoint in a table, or undefined when none is there. */
function optionsAt(table: MountInfo[], mountPoint: string): string[] | undefined {
  return table.filter((m) => m.mountPoint === mountPoint).pop()?.mountOptions
}

function ownMounts(): MountInfo[] {
  return parseMountInfo(readFileSync('/proc/self/mountinfo', 'utf8'))
}

async function publishUnpublish(t: TT, mountApi: boolean): Promise<void> {
  const rig = testRig(t)
  const dir = realpathSync(rig.dir)
  const id = volumeIdFor('pvc-propagation')
  const kubelet = path.join(dir, 'kubelet')
  const staging = path.join(kubelet, 'staging')
  const roTarget = path.join(kubelet, 'pods/p1/mount')
  const execTarget = path.join(kubelet, 'pods/p2/mount')
  for (const p of [path.join(dir, 'data/volumes', id), staging, path.dirname(roTarget), path.dirname(execTarget)]) mkdirSync(p, { recursive: true })
  writeFileSync(path.join(dir, 'data/volumes', id, 'seed'), 'seed')
  // kubelet's folder as a cluster node has it (rshared); testRig's teardown detaches it.
  mount(kubelet, kubelet, null, MS.BIND, null)
  mount(null, kubelet, null, MS.SHARED, null)

  // The scratch folder sits in the shared one here, the worst place for it: its mounts are
  // copied to the host as well, and must be gone from there too.
  const scratchDir = path.join(kubelet, 'scratch')
  const node = await nodeInNamespace(rig, { dataRoot: path.join(dir, 'data'), scratchDir, mountApi })
  const base = { volume_id: id, staging_target_path: staging, volume_context: {} }
  t.same(await node.call('NodeStageVolume', { ...base, volume_capability: mountCap() }), { ok: {} }, 'staged in the child')
  const roReq = { ...base, target_path: roTarget, readonly: true, volume_capability: mountCap('SINGLE_NODE_WRITER', ['noexec', 'nosuid,nodev']) }
  t.same(await node.call('NodePublishVolume', roReq), { ok: {} }, 'published read-only with noexec, nosuid, nodev')
  const execReq = { ...base, target_path: execTarget, readonly: false, volume_capability: mountCap('SINGLE_NODE_WRITER', ['noexec']) }
  t.same(await node.call('NodePublishVolume', execReq), { ok: {} }, 'published read-write with noexec')

  for (const [view, table] of [['the node\'s namespace', node.mounts()], ['the host\'s copy', ownMounts()]] as const) {
    const ro = optionsAt(table, roTarget)
    t.ok(ro, `${view}: the read-only publication is mounted`)
    for (const opt of ['ro', 'noexec', 'nosuid', 'nodev']) t.ok(ro?.includes(opt), `${view}: read-only target has ${opt} (${ro?.join(',')})`)
    const ex = optionsAt(table, execTarget)
    t.ok(ex?.includes('rw') && ex.includes('noexec'), `${view}: the other target is rw,noexec (${ex?.join(',')})`)
  }
  t.equal(existsSync(scratchDir), !mountApi, `the scratch folder is ${mountApi ? 'not ' : ''}used`)
  for (const [view, table] of [['the node\'s namespace', node.mounts()], ['the host', ownMounts()]] as const) {
    t.same(table.filter((m) => m.mountPoint.startsWith(scratchDir)), [], `${view}: nothing is left mounted in the scratch folder`)
  }
  const st = statvfs(roTarget).flags
  t.ok(st & ST.RDONLY && st & ST.NOEXEC && st & ST.NOSUID && st & ST.NODEV, 'statvfs in the host agrees')
  t.throws(() => writeFileSync(path.join(roTarget, 'nope'), 'x'), { code: 'EROFS' }, 'the host\'s copy refuses writes')
  t.equal(readFileSync(path.join(roTarget, 'seed'), 'utf8'), 'seed', 'and shows the volume')
  writeFileSync(path.join(execTarget, 'via-host'), 'x')
  t.equal(readFileSync(path.join(dir, 'data/volumes', id, 'via-host'), 'utf8'), 'x', 'the read-write copy writes into the volume')

  t.same(await node.call('NodePublishVolume', roReq), { ok: {} }, 'the same publish again is OK')
  t.match(await node.call('NodePublishVolume', { ...roReq, readonly: false }), { error: { code: 6 } }, 'read-write at the read-only target is ALREADY_EXISTS')

  for (const target of [roTarget, execTarget]) {
    t.same(await node.call('NodeUnpublishVolume', { volume_id: id, target_path: target }), { ok: {} }, `unpublished ${path.basename(path.dirname(target))}`)
    t.notOk(optionsAt(node.mounts(), target), 'gone from the node\'s namespace')
    t.notOk(optionsAt(ownMounts(), target), 'and from the host\'s')
    t.notOk(existsSync(target), 'the target directory is removed')
  }
  t.same(await node.call('NodeUnstageVolume', { volume_id: id, staging_target_path: staging }), { ok: {} }, 'unstaged')
  const under = (table: MountInfo[]): string[] => table.map((m) => m.mountPoint).filter((mp) => mp.startsWith(dir + '/'))
  t.same(under(node.mounts()), [kubelet], 'the node\'s namespace keeps only the shared kubelet folder')
  t.same(mountsUnder(dir), [kubelet], 'and so does the host\'s')
  t.equal(await node.stop(), 0, 'the child node exits cleanly')
}

t.test('with the mount API: the flags hold in the propagated copy, and unpublish removes every copy', { skip }, (t) => publishUnpublish(t, true))
t.test('as on kernels before 5.12 (scratch mount): the same', { skip }, (t) => publishUnpublish(t, false))
