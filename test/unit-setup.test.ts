// The one set-up step (scripts/setup.sh) must install every Debian package whose program the
// product, the tests, the e2e or the benchmarks start. Once, xfsprogs and btrfs-progs were
// installed only by a script that ran after the suites needing them, and a new machine failed
// 66 checks while every developer machine (which had them) passed. This test finds each program
// started as a child process and fails when nothing the set-up step installs provides it.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, realpathSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { scanShell, scanTs, walk, type Use } from './helpers/programs.js'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const PRODUCT_DIRS = ['controller', 'node', 'common', 'native', 'sidecar', 'tools']
const TEST_DIRS = ['test', 'e2e', 'bench']
// What a machine of this project's kind comes with, outside Debian's packages: Node.js 20 with
// npm (the README's prerequisites) and Go (which builds csi-sanity, Kubernetes and the sidecars).
const MACHINE = new Set(['node', 'npm', 'npx', 'go'])
// Built into .tools/bin by the project's scripts (Go module proxy); never from a package.
const BUILT = new Set([
  'kube-apiserver', 'kube-controller-manager', 'kube-scheduler', 'kubelet', 'kubectl', 'csi-sanity',
  'csi-provisioner', 'csi-resizer', 'csi-snapshotter', 'snapshot-controller', 'csi-node-driver-registrar',
  'hostpathplugin', 'helm', 'csc-grpc119', 'csc-grpc-current',
])
// Named by an absolute path in a script but written, never run.
const NOT_RUN = new Set(['/usr/sbin/policy-rc.d'])
const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']

interface Listed { scope: string; programs: string[] }
function readList(): Map<string, Listed> {
  const out = new Map<string, Listed>()
  for (const raw of execFileSync('bash', [path.join(ROOT, 'scripts/setup.sh'), '--table'], { encoding: 'utf8' }).split('\n')) {
    const line = raw.trim()
    if (!line || line.startsWith('#')) continue
    const [pkg, scope = '', ...programs] = line.split(/\s+/) as [string, ...string[]]
    out.set(pkg, { scope, programs }) // a line without a scope fails the scope check
  }
  return out
}

// The Debian package that owns a file, trying the path as named and then with links resolved
// (alternatives such as /usr/bin/iptables -> /usr/sbin/iptables-legacy).
// The Debian packages owning files, by one dpkg -S call. Bookworm's merged /usr means dpkg knows
// many programs by their /bin or /sbin name, and alternatives (/usr/bin/iptables ->
// /usr/sbin/iptables-legacy) by their target, so each file is looked up under all of those.
const owners = new Map<string, string | undefined>()
function lookUp(files: string[]): void {
  const names = new Map<string, string>() // name dpkg may know -> file asked about
  for (const f of files.filter((f) => !owners.has(f))) {
    owners.set(f, undefined)
    for (const p of [f, realpathSync(f)]) {
      for (const n of [p, p.replace(/^\/usr\/(s?bin|lib)\//, '/$1/'), p.replace(/^\/(s?bin|lib)\//, '/usr/$1/')]) names.set(n, f)
    }
  }
  if (names.size === 0) return
  const r = spawnSync('dpkg', ['-S', ...names.keys()], { encoding: 'utf8' })
  for (const line of r.stdout.split('\n')) {
    const m = line.startsWith('diversion') ? null : /^([^:\s][^:]*): (\/.*)$/.exec(line)
    const f = m ? names.get(m[2]!) : undefined
    if (m && f && !owners.get(f)) owners.set(f, m[1]!.replace(/,.*/, '').trim()) // the first of the packages
  }
}
function owner(file: string): string | undefined {
  lookUp([file])
  return owners.get(file)
}
const priority = (pkg: string): string => spawnSync('dpkg-query', ['-W', '-f=${Priority}', pkg], { encoding: 'utf8' }).stdout.trim()
const locate = (program: string): string | undefined =>
  path.isAbsolute(program) ? (existsSync(program) ? program : undefined) : SYSTEM_PATH.map((d) => path.join(d, program)).find((p) => existsSync(p))

/** Why a program's package is not covered by the set-up step, or undefined when it is. */
function problem(program: string, list: Map<string, Listed>, needImage: boolean): string | undefined {
  if (MACHINE.has(path.basename(program)) || BUILT.has(path.basename(program)) || NOT_RUN.has(program)) return undefined
  const file = locate(program)
  if (!file) return `is on no system path here: add the Debian package that provides it to the table in scripts/setup.sh`
  const pkg = owner(file)
  if (!pkg) return `${file} belongs to no Debian package`
  // debootstrap --variant=minbase installs every package of priority required.
  if (priority(pkg) === 'required') return undefined
  const listed = list.get(pkg)
  if (!listed) return `comes from package ${pkg}, which the table in scripts/setup.sh does not list`
  if (needImage && listed.scope !== 'image') return `is run by the product, but its package ${pkg} has scope ${listed.scope}, not image`
  return undefined
}

const where = (u: Use): string => `${path.relative(ROOT, u.file)}:${u.line}`

t.test('every program started anywhere comes from a package the set-up step installs', async (t) => {
  const list = readList()
  const isTs = (n: string): boolean => n.endsWith('.ts') && !n.endsWith('.d.ts')
  const product = scanTs(walk(ROOT, PRODUCT_DIRS, isTs))
  const tests = scanTs(walk(ROOT, TEST_DIRS, isTs))
  const shell = scanShell([...walk(ROOT, ['scripts'], (n) => n.endsWith('.sh')), path.join(ROOT, '.ci/run')])
  t.same([...product.unresolved, ...tests.unresolved].map((u) => `${where(u)} ${u.program}`), [], 'every child_process call names its program')
  // The scan must see the programs it exists for; an empty scan would pass anything.
  const all = [...product.uses, ...tests.uses, ...shell.uses]
  for (const p of ['mkfs.xfs', 'mkfs.btrfs', 'xfs_growfs', 'promtool', 'containerd', 'ctr', 'csi-sanity']) {
    t.ok(all.some((u) => path.basename(u.program) === p), `the scan finds ${p}`)
  }
  const byProgram = new Map<string, { image: boolean; uses: [Use, ...Use[]] }>()
  for (const [scan, image] of [[product, true], [tests, false], [shell, false]] as const) {
    for (const u of scan.uses) {
      const e = byProgram.get(u.program)
      if (e) {
        e.image ||= image
        e.uses.push(u)
      } else byProgram.set(u.program, { image, uses: [u] })
    }
  }
  lookUp([...byProgram.keys()].map(locate).filter((f): f is string => f !== undefined))
  const gaps: string[] = []
  for (const [program, e] of [...byProgram].sort()) {
    const why = problem(program, list, e.image)
    if (why) gaps.push(`${program} (${where(e.uses[0])}) ${why}`)
  }
  t.same(gaps, [], `all ${byProgram.size} programs are covered`)
})

t.test('the package list is installed, and each program it names is in its package', async (t) => {
  const list = readList()
  t.ok(list.size > 5, 'the list parses')
  for (const [pkg, { scope, programs }] of list) {
    t.match(scope, /^(image|test)$/, `${pkg}: scope is image or test`)
    const files = spawnSync('dpkg', ['-L', pkg], { encoding: 'utf8' })
    t.equal(files.status, 0, `${pkg} is installed (scripts/setup.sh ran before the tests)`)
    for (const prog of programs) {
      const suffix = prog.startsWith('/') ? prog : `/${prog}`
      t.ok(files.stdout.split('\n').some((f) => f.endsWith(suffix)), `${pkg} provides ${prog}`)
    }
  }
})

t.test('the scan catches a program nothing installs (so the check above can fail)', async (t) => {
  const dir = t.testdir({
    'a.ts': "import { spawnSync } from 'node:child_process'\nspawnSync('mkfs.tscsi-nonexistent', ['-q'])\n",
    'b.ts': "import { execFile } from 'node:child_process'\nfunction tool(cmd: string) { return execFile(cmd, []) }\ntool('frob-tool')\nexecFile(someVariable, [])\n",
    'c.sh': '#!/bin/sh\n# frobnicate in a comment is not a command\necho "frobnicate in a string is not either"\nif frobnicate --x; then :; fi\nx="$(zorkify -q)"\ndone_fn() { :; }\ndone_fn\n',
  })
  const ts = scanTs([path.join(dir, 'a.ts'), path.join(dir, 'b.ts')])
  t.same(ts.uses.map((u) => u.program).sort(), ['frob-tool', 'mkfs.tscsi-nonexistent'])
  t.same(ts.unresolved.map((u) => u.program), ['someVariable'], 'a program it cannot name is reported, not dropped')
  const sh = scanShell([path.join(dir, 'c.sh')])
  t.same(sh.uses.map((u) => u.program).sort(), ['frobnicate', 'zorkify'])
  const list = readList()
  t.match(problem('mkfs.tscsi-nonexistent', list, true), /on no system path/)
  // A list without xfsprogs, and one where prometheus is only for tests.
  t.match(problem('mkfs.xfs', new Map([['e2fsprogs', { scope: 'image', programs: [] }]]), true), /package xfsprogs, which .* does not list/)
  t.match(problem('promtool', new Map([['prometheus', { scope: 'test', programs: [] }]]), true), /scope test, not image/)
  t.equal(problem('mkfs.xfs', list, true), undefined, 'the real list covers mkfs.xfs for the image')
})
