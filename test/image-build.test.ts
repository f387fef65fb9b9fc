// The images scripts/image.sh builds without Docker: the tscsi image runs its entrypoints and the
// filesystem tools from its own root, carries nothing a build needs, and containerd imports it and
// the sidecar images as the e2e cluster will. The first run builds the base root (debootstrap,
// about two minutes); later runs reuse .tools/images/cache.
import t from 'tap'
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from './helpers/driver.js'
import { buildImages, execInImage, inImage, mountsBelow, processesNaming, startContainerd, unpackImage, type BuiltImage } from './helpers/image.js'

const SIDECARS = ['csi-provisioner', 'csi-resizer', 'csi-snapshotter', 'snapshot-controller', 'csi-node-driver-registrar']
const have = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0

/** The programs the table in scripts/setup.sh says the image-scope packages provide. */
function imagePrograms(): string[] {
  return execFileSync('bash', [path.join(ROOT, 'scripts/setup.sh'), '--table'], { encoding: 'utf8' }).split('\n')
    .filter((l) => !/^\s*(#|$)/.test(l))
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f[1] === 'image')
    .flatMap((f) => f.slice(2))
}

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'building and entering the image needs root (debootstrap, chroot, mount namespaces)'
  const tools = ['debootstrap', 'unshare', 'chroot', 'tar', 'gzip', 'npm', 'ctr', 'containerd'].filter((c) => !have(c))
  if (tools.length) return `${tools.join(', ')} missing: scripts/setup.sh installs containerd; debootstrap: apt-get install debootstrap`
  return undefined
}

const why = missing()
if (why) {
  // Under CI a missing tool is a missing install step, not a reason to pass.
  if (process.env['CI'] && process.getuid?.() === 0) t.fail(why)
  else t.skip(why, () => {})
} else {
  t.setTimeout(1_500_000)
  const work = mkdtempSync(path.join(os.tmpdir(), 'tscsi-image-'))
  t.teardown(() => {
    // The namespaces the checks ran in are gone with their processes; a mount left here would
    // mean one escaped, and rm would then descend into the host's /dev.
    const left = mountsBelow(work)
    if (left.length) throw new Error(`mounts left under ${work}: ${left.join(', ')}`)
    rmSync(work, { recursive: true, force: true })
  })

  const built = buildImages([])
  const image = built.images[0] as BuiltImage
  t.comment(`built ${image.ref} in ${built.seconds.toFixed(1)} s:\n${built.stderr.split('\n').filter((l) => l.startsWith('image: ')).join('\n')}`)
  const again = buildImages([])
  t.same(again.images, built.images, 'a second build of the same tree names the same image and file')
  // Not timed: another work tree's build may hold the shared lock for minutes.
  t.match(again.stderr, /is up to date/, `and rebuilds nothing (${again.seconds.toFixed(1)} s)`)
  t.match(image.ref, /^tscsi\.local\/tscsi:\d+\.\d+\.\d+-[0-9a-f]{10}$/, 'the default tag is the version and a content hash')
  const size = readFileSync(image.file + '.size', 'utf8')
  t.comment(`${path.basename(image.file)}: ${size.trim()}`)

  const { manifest, config, root } = unpackImage(image.file, path.join(work, 'tscsi'))
  const du = spawnSync('du', ['-sb', root], { encoding: 'utf8' }).stdout.split('\t')[0]
  t.comment(`unpacked: ${du} bytes`)

  t.test('the archive is what ctr import and the manifests expect', async (t) => {
    t.same(manifest.RepoTags, [image.ref], 'the archive names its reference')
    t.equal(manifest.Layers.length, 3, 'three layers: base, node, app')
    t.equal(config.config.User, '65532:65532', 'the default user is 65532, as in the Dockerfile')
    t.ok(config.config.Env?.some((e) => e.startsWith('PATH=') && e.includes('/usr/local/bin')), 'PATH holds /usr/local/bin')
    t.match(readFileSync(path.join(root, 'etc/passwd'), 'utf8'), /^nonroot:x:65532:65532:/m, '65532 has a name')
    t.equal((statSync(root).mode & 0o7777).toString(8), '755', 'its / is 0755, open to every user')
  })

  t.test('the entrypoints and the filesystem tools run from the image', async (t) => {
    const cases: [string, string, RegExp][] = [
      ['tscsi-node --help', '0:0', /--data-root/],
      ['tscsi-controller --help', '65532:65532', /--realise-timeout/],
      ['tscsi-metrics --help', '65532:65532', /--csi-address/],
      ['tscsi-call', '65532:65532', /usage: tscsi-call/],
      ['node -p process.version', '65532:65532', new RegExp(`^${process.version}$`, 'm')],
      // koffi's prebuilt binary loads, and calls into the image's own libc.
      ['cd /opt/tscsi && node -e "const k = require(\'koffi\'); console.log(k.load(\'libc.so.6\').func(\'int getpid()\')() === process.pid)"', '0:0', /^true$/m],
      // Every production dependency still loads after the modules were pruned.
      ['cd /opt/tscsi && node --input-type=module -e "for (const d of Object.keys(JSON.parse(await (await import(\'node:fs/promises\')).readFile(\'package.json\', \'utf8\')).dependencies)) await import(d); console.log(\'all loaded\')"', '65532:65532', /^all loaded$/m],
      ['mkfs.xfs -V', '0:0', /mkfs\.xfs version/],
      ['mkfs.btrfs --version', '0:0', /mkfs\.btrfs, part of btrfs-progs/],
      ['mkfs.ext4 -V', '0:0', /mke2fs \d/],
      ['resize2fs', '0:0', /resize2fs \d/],
      ['xfs_growfs -V', '0:0', /xfs_growfs version/],
      // Real filesystems on sparse files inside the image: the tools work, not only print.
      ['cd /tmp && truncate -s 320M f && mkfs.xfs -q f && mkfs.btrfs -q -f f && mkfs.ext4 -q -F f && e2fsck -fn f >/dev/null && truncate -s 400M f && resize2fs f && rm f && echo made', '0:0', /made/],
    ]
    for (const [script, user, want] of cases) {
      const r = inImage(root, script, user)
      t.match(r.stdout + r.stderr, want, `${script} (as ${user})`)
    }
    const pkgs = spawnSync('bash', [path.join(ROOT, 'scripts/setup.sh'), '--list', '--image'], { encoding: 'utf8' }).stdout.trim().split('\n')
    const installed = inImage(root, `dpkg-query -W -f '\${Package} \${Status}\\n' ${pkgs.join(' ')}`).stdout
    for (const p of pkgs) t.match(installed, new RegExp(`^${p} install ok installed$`, 'm'), `${p} (setup.sh --list --image) is installed in the image`)
    t.match(readFileSync(path.join(root, 'etc/apt/sources.list'), 'utf8'), /bookworm-security/, 'the base root was upgraded from bookworm-security')
    const progs = imagePrograms()
    t.ok(progs.length >= 5, 'scripts/setup.sh names the image scope\'s programs')
    const r = inImage(root, progs.map((p) => `command -v ${p} >/dev/null || echo "missing ${p}"`).join('; '))
    t.equal(r.stdout + r.stderr, '', `every image-scope program is on PATH: ${progs.join(' ')}`)
  })

  t.test('the image carries nothing a build needs', async (t) => {
    const tools = ['gcc', 'cc', 'c++', 'g++', 'clang', 'make', 'ld', 'as', 'npm', 'npx', 'corepack', 'yarn', 'tsc', 'python3-config']
    const r = inImage(root, tools.map((c) => `command -v ${c} || true`).join('; '))
    t.equal(r.stdout.trim(), '', `no compiler, linker, npm or tsc on PATH (${tools.join(' ')})`)
    const modules = path.join(root, 'opt/tscsi/node_modules')
    for (const dev of ['typescript', 'tap', '@tapjs', 'tsx', '.bin/tsc']) {
      t.notOk(existsSync(path.join(modules, dev)), `no dev dependency ${dev}`)
    }
    t.ok(existsSync(path.join(modules, '@grpc/grpc-js')) && existsSync(path.join(modules, '@koromix/koffi-linux-x64')), 'the production dependencies are there')
    for (const p of ['usr/local/lib/node_modules', 'usr/local/include/node', 'root/.npm', 'home/nonroot/.npm', 'usr/share/man']) {
      t.notOk(existsSync(path.join(root, p)), `no /${p}`)
    }
    t.same(readdirSync(path.join(root, 'var/lib/apt/lists')), [], 'no apt lists')
    t.same(readdirSync(path.join(root, 'var/cache/apt')), [], 'no apt cache')
    t.same(readdirSync(path.join(root, 'usr/share/locale')), [], 'no locales')
    const find = (args: string[]) => spawnSync('find', args, { encoding: 'utf8' }).stdout.trim()
    t.equal(find([path.join(root, 'usr/share/doc'), '-type', 'f', '!', '-name', 'copyright']), '', 'docs are gone, copyright files stay')
    t.equal(find([path.join(root, 'opt/tscsi'), '(', '-name', '*.ts', '-o', '-name', '*.map', ')', '-print', '-quit']), '', 'no TypeScript sources, type declarations or source maps')
    t.equal(find([root, '-xdev', '(', '-type', 'b', '-o', '-type', 'c', ')', '-print', '-quit']), '', 'no device nodes (the runtime makes /dev)')
  })

  t.test('a second tag shares every layer and is a distinct image', async (t) => {
    const second = buildImages(['second-tag-test']).images[0] as BuiltImage
    t.teardown(() => { for (const s of ['', '.stamp', '.size']) rmSync(second.file + s, { force: true }) })
    t.equal(second.ref, 'tscsi.local/tscsi:second-tag-test')
    const list = (f: string) => spawnSync('tar', ['-tf', f], { encoding: 'utf8' }).stdout.split('\n').sort()
    const [a, b] = [list(image.file), list(second.file)]
    t.same(a.filter((n) => n.endsWith('layer.tar')), b.filter((n) => n.endsWith('layer.tar')), 'the same layers')
    t.not(a.find((n) => /^[0-9a-f]{64}\.json$/.test(n)), b.find((n) => /^[0-9a-f]{64}\.json$/.test(n)), 'a different config, so a different image id')
  })

  t.test('a private containerd imports the tscsi image and a sidecar image', async (t) => {
    const refs = [image]
    const sidecarBins = SIDECARS.filter((s) => existsSync(path.join(ROOT, '.tools/bin', s)))
    if (sidecarBins.length === 0) {
      // scripts/test-all.sh builds them before any tap suite; run alone, this part needs them too.
      t.fail('no sidecar binary in .tools/bin: run `bash scripts/e2e/tools.sh` first')
    } else {
      const sidecars = buildImages(['sidecars']).images
      t.equal(sidecars.length, sidecarBins.length, `one image per binary: ${sidecars.map((s) => s.ref).join(' ')}`)
      for (const s of sidecars) t.match(s.ref, /^tscsi\.local\/[a-z-]+:v\d+\.\d+\.\d+$/, `${s.ref} is named by its module version`)
      const first = sidecars[0] as BuiltImage
      const unpacked = unpackImage(first.file, path.join(work, 'sidecar'))
      const name = first.ref.split('/')[1]?.split(':')[0] ?? ''
      t.same(unpacked.config.config.Entrypoint, [`/${name}`], 'the entrypoint is the binary, where upstream puts it')
      t.equal((statSync(unpacked.root).mode & 0o7777).toString(8), '755', 'its / is 0755')
      const r = execInImage(unpacked.root, [`/${name}`, '--help'], '65532:65532')
      t.match(r.stdout + r.stderr, /Usage of \/[a-z-]+:/, `${name} runs from its one-file image`)
      refs.push(first)
    }

    const dir = path.join(work, 'containerd')
    const ctrd = await startContainerd(dir)
    t.teardown(() => ctrd.stop()) // when an assertion below throws; stopping twice is harmless
    try {
      for (const r of refs) {
        const imp = ctrd.ctr(['-n', 'k8s.io', 'images', 'import', r.file])
        t.equal(imp.status, 0, `ctr images import ${path.basename(r.file)}: ${imp.stderr.trim()}`)
      }
      const ls = ctrd.ctr(['-n', 'k8s.io', 'images', 'ls', '-q']).stdout.split('\n')
      for (const r of refs) t.ok(ls.includes(r.ref), `ctr images ls lists ${r.ref}`)
      const check = ctrd.ctr(['-n', 'k8s.io', 'images', 'check']).stdout
      for (const r of refs) t.match(check, new RegExp(`${r.ref.replace(/[.]/g, '\\.')}\\s+application/\\S+\\s+sha256:[0-9a-f]{64}\\s+complete`), `${r.ref} is complete`)
    } finally {
      await ctrd.stop()
    }
    t.same(processesNaming(dir), [], 'no process of the private containerd is left')
    t.same(mountsBelow(dir), [], 'no mount is left under its root')
  })
}
