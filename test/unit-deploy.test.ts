// The hardening deploy/kubernetes promises, checked on the manifests themselves: only the node
// plugin is privileged; every other container runs as a non-root user with a read-only root
// filesystem, no privilege escalation, all capabilities dropped and the RuntimeDefault seccomp
// profile; and the node plugin's host mounts are exactly the kubelet directory, the data
// roots and the host's /dev. (kubectl apply --dry-run=server of the same kustomization runs in process-apiserver-smoke.)
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { loadAllYaml } from '@kubernetes/client-node'
import { ROOT } from './helpers/driver.js'

type Obj = Record<string, any>

const DIR = path.join(ROOT, 'deploy/kubernetes')
const docs: Obj[] = readdirSync(DIR).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((f) => loadAllYaml(readFileSync(path.join(DIR, f), 'utf8')) as Obj[])
  .filter(Boolean)
const workloads = docs.filter((d) => d.kind === 'Deployment' || d.kind === 'DaemonSet')

/** A container's effective setting: its own securityContext first, then the pod's. */
function effective(pod: Obj, c: Obj, key: string): unknown {
  return c.securityContext?.[key] ?? pod.securityContext?.[key]
}

t.test('the manifests hold a controller Deployment and a node DaemonSet', async (t) => {
  t.same(workloads.map((w) => `${w.kind}/${w.metadata.name}`).sort(), ['DaemonSet/tscsi-node', 'Deployment/tscsi-controller'])
})

t.test('only the node plugin is privileged; everything else is locked down', async (t) => {
  for (const w of workloads) {
    const pod = w.spec.template.spec
    for (const c of [...(pod.initContainers ?? []), ...pod.containers]) {
      const who = `${w.metadata.name}/${c.name}`
      if (c.securityContext?.privileged) {
        t.equal(who, 'tscsi-node/tscsi-node', `${who} is the one privileged container`)
        t.equal(c.securityContext.runAsUser, 0, `${who} runs as root (the image's user is 65532; mounting needs root's capabilities)`)
        continue
      }
      t.equal(effective(pod, c, 'runAsNonRoot'), true, `${who}: runAsNonRoot`)
      const uid = effective(pod, c, 'runAsUser')
      t.ok(typeof uid === 'number' && uid > 0, `${who}: a non-zero runAsUser (${uid})`)
      t.equal(c.securityContext?.readOnlyRootFilesystem, true, `${who}: read-only root filesystem`)
      t.equal(c.securityContext?.allowPrivilegeEscalation, false, `${who}: no privilege escalation`)
      t.same(c.securityContext?.capabilities?.drop, ['ALL'], `${who}: all capabilities dropped`)
      t.notOk(c.securityContext?.capabilities?.add?.length, `${who}: no capability added`)
      t.same(effective(pod, c, 'seccompProfile'), { type: 'RuntimeDefault' }, `${who}: seccomp RuntimeDefault`)
    }
    if (w.kind === 'Deployment') {
      t.notOk(pod.volumes?.some((v: Obj) => v.hostPath), `${w.metadata.name} mounts nothing from the host`)
      t.notOk(pod.hostNetwork || pod.hostPID || pod.hostIPC, `${w.metadata.name} shares no host namespace`)
    }
  }
})

t.test("the node plugin's host mounts are exactly the kubelet directory, the data roots and /dev", async (t) => {
  const ds = workloads.find((w) => w.kind === 'DaemonSet')!
  const pod = ds.spec.template.spec
  const hostPathOf = new Map<string, string>((pod.volumes as Obj[]).filter((v) => v.hostPath).map((v) => [v.name, v.hostPath.path]))
  const plugin = (pod.containers as Obj[]).find((c) => c.name === 'tscsi-node')!
  const args: string[] = plugin.args
  const dataRoots = [
    ...args.filter((a) => a.startsWith('--data-root=')).map((a) => a.slice('--data-root='.length)),
    ...args.filter((a) => a.startsWith('--pool=')).map((a) => a.slice(a.indexOf('=', '--pool='.length) + 1)),
  ]
  const mounted = (plugin.volumeMounts as Obj[]).map((m) => hostPathOf.get(m.name) ?? `(not a host path: ${m.name})`)
  t.same(mounted.sort(), ['/dev', '/var/lib/kubelet', ...dataRoots].sort(), 'kubelet directory + data roots + the host /dev (loop devices), nothing else')
  for (const m of plugin.volumeMounts as Obj[]) {
    if (m.mountPath === '/dev') {
      t.equal(m.mountPropagation, undefined, '/dev: one devtmpfs, no mount propagation needed')
      continue
    }
    t.equal(m.mountPropagation, 'Bidirectional', `${m.mountPath} propagates mounts both ways`)
    t.equal(m.mountPath, hostPathOf.get(m.name), `${m.mountPath} is mounted at the same path as on the host`)
  }
  // Every socket and folder the plugin is told about lies inside what it mounts.
  for (const a of args.filter((x) => /^--(endpoint|registration-dir)=/.test(x))) {
    const p = a.replace(/^[^=]+=(unix:\/\/)?/, '')
    t.ok(p.startsWith('/var/lib/kubelet/'), `${a} lies inside the kubelet directory`)
  }
  // The sidecars' host paths are inside the kubelet directory too, and none is privileged.
  for (const c of (pod.containers as Obj[]).filter((x) => x !== plugin)) {
    for (const m of c.volumeMounts ?? []) {
      const hp = hostPathOf.get(m.name)
      if (hp) t.ok(hp.startsWith('/var/lib/kubelet/'), `${c.name}: ${hp} lies inside the kubelet directory`)
    }
  }
})
