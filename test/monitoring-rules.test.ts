// deploy/monitoring/: the files parse, the PrometheusRule carries exactly the rules file's groups,
// promtool accepts the rules and their unit tests pass, every dashboard query is valid PromQL, and
// every metric they name is one the sidecar or the driver exports. No root needed.
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { loadAllYaml, loadYaml } from '@kubernetes/client-node'
import { sidecarMetrics } from '../sidecar/own-metrics.js'
import { ROOT } from './helpers/driver.js'
import { haveTools, promtool, RULES_FILE } from './helpers/prometheus.js'

const DIR = path.join(ROOT, 'deploy/monitoring')
const read = (f: string): string => readFileSync(path.join(DIR, f), 'utf8')

interface RulesFile { groups: { name: string; rules: { alert?: string; record?: string; expr: string; for?: string }[] }[] }

// The driver's series the rules and dashboard may use (issue 4): RPCs from common/grpc.ts'
// observer, pools, volumes and reconcile errors from the node plugin.
const DRIVER_METRICS = [
  'tscsi_rpc_total', 'tscsi_rpc_duration_seconds', 'tscsi_pool_total_bytes', 'tscsi_pool_free_bytes', 'tscsi_pool_allocated_bytes', 'tscsi_node_volumes',
  'tscsi_volume_used_bytes', 'tscsi_volume_capacity_bytes', 'tscsi_node_reconcile_errors_total',
]

function dashboardExprs(): string[] {
  const dash = JSON.parse(read('grafana-dashboard.json')) as { panels: { targets?: { expr: string }[] }[] }
  return dash.panels.flatMap((p) => p.targets ?? []).map((x) => x.expr)
}

t.test('the files parse and say what they should', async (t) => {
  const rules = loadYaml<RulesFile>(read('prometheus-rules.yaml'))
  const cr = loadYaml<{ apiVersion: string; kind: string; spec: RulesFile }>(read('prometheusrule.yaml'))
  t.equal(cr.apiVersion, 'monitoring.coreos.com/v1')
  t.equal(cr.kind, 'PrometheusRule')
  t.same(cr.spec.groups, rules.groups, 'the PrometheusRule carries exactly the groups of prometheus-rules.yaml')

  const alerts = Object.fromEntries(rules.groups.flatMap((g) => g.rules).map((r) => [r.alert, r.expr]))
  t.match(alerts['TscsiProbeFailing'], /increase\(tscsi_sidecar_probe_failures_total\[/, 'probe failing: the failure counter increasing')
  t.match(alerts['TscsiReconcileErrors'], /tscsi_node_reconcile_errors_total/)
  t.match(alerts['TscsiPoolNearlyFull'], /tscsi_pool_free_bytes \/ tscsi_pool_total_bytes > 0\.9/)
  t.match(alerts['TscsiVolumeNearlyFull'], /tscsi_volume_used_bytes \/ on \(volume_id\) group_left \(\) tscsi_volume_capacity_bytes > 0\.9/)

  const docs = loadAllYaml(read('podmonitor.yaml')) as { kind: string; spec: any }[]
  t.equal(docs.length, 1)
  t.equal(docs[0]!.kind, 'PodMonitor')
  t.same(docs[0]!.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'tscsi' })
  t.same(docs[0]!.spec.podMetricsEndpoints.map((e: { port: string; path: string }) => [e.port, e.path]), [['metrics', '/metrics']])

  const exprs = dashboardExprs()
  t.ok(exprs.length >= 8, `the dashboard has its queries (${exprs.length})`)
  const all = exprs.join('\n')
  for (const needle of ['rate(tscsi_rpc_total', 'code!="OK"', 'histogram_quantile(0.5,', 'histogram_quantile(0.99,', 'tscsi_rpc_duration_seconds_bucket', 'tscsi_pool_free_bytes', 'tscsi_volume_used_bytes']) {
    t.ok(all.includes(needle), `a dashboard query uses ${needle}`)
  }
})

t.test('every metric the rules and the dashboard name exists', async (t) => {
  const own = sidecarMetrics({ defaultMetrics: false }).registry.getMetricsAsArray().map((m) => m.name)
  const known = new Set([...own, ...DRIVER_METRICS])
  const rules = loadYaml<RulesFile>(read('prometheus-rules.yaml')).groups.flatMap((g) => g.rules).map((r) => r.expr)
  const variables = (JSON.parse(read('grafana-dashboard.json')) as { templating: { list: { definition?: string }[] } }).templating.list.map((v) => v.definition ?? '')
  const text = [...rules, ...dashboardExprs(), ...variables].join('\n')
  const used = new Set([...text.matchAll(/\btscsi_[a-z0-9_]+/g)].map((m) => m[0].replace(/_(bucket|sum|count)$/, '')))
  for (const name of used) t.ok(known.has(name), `${name} is exported by the sidecar or the driver`)
})

t.test('promtool accepts the rules, their unit tests pass, and the dashboard queries are valid PromQL', async (t) => {
  if (!haveTools(t)) return
  const check = await promtool(['check', 'rules', RULES_FILE])
  t.equal(check.code, 0, `promtool check rules:\n${check.stdout}${check.stderr}`)
  t.match(check.stdout, /SUCCESS: 5 rules found/)

  const unit = await promtool(['test', 'rules', path.join(DIR, 'prometheus-rules.test.yaml')])
  t.equal(unit.code, 0, `promtool test rules:\n${unit.stdout}${unit.stderr}`)

  // promtool parses every expression of a rules file, so the dashboard's queries go through it as
  // recording rules, with Grafana's variables replaced by what they expand to.
  const dir = t.testdir()
  const exprs = dashboardExprs().map((e) => e.replaceAll('$__rate_interval', '5m').replaceAll('$node', '.*').replaceAll('$component', '.*'))
  t.notMatch(exprs.join('\n'), /\$/, 'no variable left unexpanded')
  const file = path.join(dir, 'dashboard-rules.yaml')
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })) }] }))
  const dash = await promtool(['check', 'rules', file])
  t.equal(dash.code, 0, `the dashboard's queries parse:\n${dash.stdout}${dash.stderr}`)
})
