/**
 * Split roles: a cluster whose etcd runs on a server of its own (etcd label, no control-plane
 * label) gets an etcd plan before the server plan, and the controller upgrades etcd-only
 * servers, then control-plane servers one at a time, then agents.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {chmod, mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {after, before, describe, it} from 'node:test'
import {fileURLToPath} from 'node:url'

import {parseAllDocuments} from 'yaml'

import {ExitCode, PreflightError} from '../src/errors.js'
import {selectorMatches} from '../src/kube/selectors.js'
import {applyPlans} from '../src/suc/apply.js'
import {generatePlans, type GenerateRequest} from '../src/suc/generate.js'
import {WAIT_FOR_PLAN, WAIT_FOR_PLAN_SCRIPT} from '../src/suc/prepare.js'
import {readPlansStatus, waitForPlans} from '../src/suc/status.js'
import type {Plan} from '../src/suc/types.js'
import {parsePlanFile, planProblems} from '../src/suc/validate.js'
import {sucPlanCrd} from './sim/kube-api/crds.js'
import type {AddNodeOptions} from './sim/kube-api/index.js'
import {validateCustomResource} from './sim/kube-api/schema.js'
import {fromLabelSelector, matchesLabels} from './sim/kube-api/selectors.js'
import {cli, defaultConfig, requireBuiltCli, startSucCluster, type SucCluster, type SucClusterOptions} from './suc-fixture.js'

const GOLDEN = path.join(path.dirname(fileURLToPath(import.meta.url)), 'golden', 'suc')
const UPDATE = process.env.UPDATE_GOLDEN === '1'

const ETCD = 'node-role.kubernetes.io/etcd'
const CONTROL_PLANE = 'node-role.kubernetes.io/control-plane'
const MASTER = 'node-role.kubernetes.io/master'

/** An etcd-only k3s server, as `--disable-apiserver --disable-controller-manager --disable-scheduler` registers it. */
const etcdOnly = (name: string): AddNodeOptions => ({
  name,
  role: 'agent',
  labels: {[ETCD]: 'true'},
  annotations: {'k3s.io/node-args': JSON.stringify(['server', '--disable-apiserver', '--disable-controller-manager', '--disable-scheduler'])},
})
/** A control-plane-only server (`--disable-etcd`). */
const controlPlaneOnly = (name: string): AddNodeOptions => ({name, role: 'server', etcd: false})

/** 1 etcd-only + 2 control-plane + 3 agents. */
function splitCluster(options: SucClusterOptions = {}): Promise<SucCluster> {
  return startSucCluster({
    servers: 0,
    agents: 3,
    nodes: [etcdOnly('etcd-1'), controlPlaneOnly('cp-1'), controlPlaneOnly('cp-2')],
    ...options,
  })
}

const EXPECTED = {'k3s-etcd': ['etcd-1'], 'k3s-server': ['cp-1', 'cp-2'], 'k3s-agent': ['agent-1', 'agent-2', 'agent-3']}

function generate(c: SucCluster, request: Partial<GenerateRequest> = {}) {
  return generatePlans({config: c.config, kube: () => c.kube}, {to: 'v1.31.5+k3s1', cluster: 'required', ...request})
}

/** Which plans select each node, by both matchers: ours (src/kube/selectors.ts) and the simulated API's. */
function selections(c: SucCluster, plans: readonly Plan[]): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const node of c.api.nodes.list()) {
    const labels = node.metadata.labels ?? {}
    const ours = plans.filter((p) => selectorMatches(p.spec.nodeSelector, labels)).map((p) => p.metadata.name)
    const sims = plans.filter((p) => matchesLabels(fromLabelSelector(p.spec.nodeSelector as never), labels)).map((p) => p.metadata.name)
    assert.deepEqual(ours, sims, `the two matchers agree on ${node.metadata.name}`)
    out[node.metadata.name] = ours
  }
  return out
}

function byPlan(selected: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {}
  for (const [node, plans] of Object.entries(selected)) for (const plan of plans) (out[plan] ??= []).push(node)
  for (const nodes of Object.values(out)) nodes.sort()
  return out
}

describe('split roles: plan generate', () => {
  let c: SucCluster
  before(async () => {
    c = await splitCluster({controller: false})
  })
  after(() => c.stop())

  it('writes etcd plan → server plan → agent plan, chained by prepare', async () => {
    const generated = await generate(c)
    assert.deepEqual(generated.plans.map((p) => p.metadata.name), ['k3s-etcd', 'k3s-server', 'k3s-agent'])
    assert.equal(generated.etcd, generated.plans[0])
    assert.equal(generated.server, generated.plans[1])
    assert.equal(generated.agent, generated.plans[2])
    const [etcd, server, agent] = generated.plans

    assert.deepEqual(etcd.spec.nodeSelector, {matchExpressions: [{key: ETCD, operator: 'In', values: ['true']}, {key: CONTROL_PLANE, operator: 'DoesNotExist'}]})
    assert.deepEqual(server.spec.nodeSelector, {matchExpressions: [{key: CONTROL_PLANE, operator: 'In', values: ['true']}]})
    assert.deepEqual(agent.spec.nodeSelector, {matchExpressions: [{key: CONTROL_PLANE, operator: 'DoesNotExist'}, {key: ETCD, operator: 'DoesNotExist'}]})
    for (const plan of [etcd, server]) {
      assert.equal(plan.spec.concurrency, 1, plan.metadata.name)
      assert.equal(plan.spec.cordon, true, plan.metadata.name)
    }
    assert.equal(etcd.spec.prepare, undefined, 'the etcd plan goes first')
    // The server plan waits for the etcd plan's nodes with our step (upstream's would wait for
    // the control-plane nodes, i.e. for itself); the agent plan keeps upstream's.
    assert.deepEqual(server.spec.prepare?.command, ['/bin/sh', '-c'])
    assert.deepEqual(server.spec.prepare?.args, [
      WAIT_FOR_PLAN_SCRIPT,
      WAIT_FOR_PLAN,
      'k3s-etcd',
      'system-upgrade',
      `${ETCD} in (true),!${CONTROL_PLANE},plan.upgrade.cattle.io/k3s-etcd!=disabled`,
    ])
    assert.equal(server.spec.prepare?.image, 'rancher/k3s-upgrade')
    assert.deepEqual(agent.spec.prepare, {image: 'rancher/k3s-upgrade', args: ['prepare', 'k3s-server']})
    for (const plan of generated.plans) assert.equal(plan.spec.version, 'v1.31.5+k3s1')
    assert.deepEqual(generated.plans.map((p) => p.metadata.labels?.['homelab.dev/plan-role']), ['etcd', 'server', 'agent'])

    // Every node in exactly one plan, the one its role says.
    const selected = selections(c, generated.plans)
    for (const [node, plans] of Object.entries(selected)) assert.equal(plans.length, 1, `${node}: ${plans.join(', ') || 'no plan'}`)
    assert.deepEqual(byPlan(selected), EXPECTED)
    assert.deepEqual(generated.check?.selected, EXPECTED)
    assert.deepEqual(generated.warnings, [])
  })

  it('matches the golden file, reads back as a valid plan file and fits the Plan CRD', async () => {
    const {yaml} = await generate(c)
    const file = path.join(GOLDEN, 'split-roles.yaml')
    if (UPDATE) await writeFile(file, yaml)
    assert.equal(yaml, await readFile(file, 'utf8'), `${file} differs (UPDATE_GOLDEN=1 rewrites it after a deliberate change)`)

    const schema = sucPlanCrd().spec!.versions[0].schema.openAPIV3Schema
    const docs = parseAllDocuments(yaml, {version: '1.1'}).map((d) => d.toJS() as Plan)
    assert.equal(docs.length, 3)
    assert.equal(docs[1].spec.prepare?.args?.[0], WAIT_FOR_PLAN_SCRIPT, 'the script survives the YAML round trip')
    for (const plan of docs) {
      const result = validateCustomResource(structuredClone(plan), schema)
      assert.deepEqual(result.causes, [], `${plan.metadata.name}: schema errors`)
      assert.deepEqual(result.unknownFields, [], `${plan.metadata.name}: fields the API server would drop`)
      assert.deepEqual(planProblems(plan).problems, [], plan.metadata.name)
    }
    assert.equal(parsePlanFile(yaml, 'plans.yaml').plans.length, 3)
    // The server plan waiting for an etcd plan of another version would wait for ever.
    const mismatch = yaml.replace('version: v1.31.5+k3s1', 'version: v1.31.6+k3s1')
    assert.throws(() => parsePlanFile(mismatch, 'plans.yaml'), /k3s-server targets v1\.31\.5\+k3s1 but waits for k3s-etcd, which targets v1\.31\.6\+k3s1/)
  })

  it('rke2: the same three plans with the rke2 image', async () => {
    const r = await splitCluster({controller: false, version: 'v1.31.2+rke2r1'})
    try {
      const generated = await generate(r, {to: 'v1.31.3+rke2r1', distribution: 'rke2'})
      assert.deepEqual(generated.plans.map((p) => p.metadata.name), ['rke2-etcd', 'rke2-server', 'rke2-agent'])
      assert.deepEqual(generated.server.spec.prepare?.args?.slice(1), [WAIT_FOR_PLAN, 'rke2-etcd', 'system-upgrade', `${ETCD} in (true),!${CONTROL_PLANE},plan.upgrade.cattle.io/rke2-etcd!=disabled`])
      assert.equal(generated.server.spec.prepare?.image, 'rancher/rke2-upgrade')
      assert.deepEqual(generated.agent.spec.prepare?.args, ['prepare', 'rke2-server'])
      assert.deepEqual(byPlan(selections(r, generated.plans)), {'rke2-etcd': ['etcd-1'], 'rke2-server': ['cp-1', 'cp-2'], 'rke2-agent': ['agent-1', 'agent-2', 'agent-3']})
    } finally {
      await r.stop()
    }
  })

  it('--offline: the two plans, and the agent plan still leaves the etcd-only server alone', async () => {
    for (const distribution of ['k3s', 'rke2'] as const) {
      const offline = await generatePlans({config: defaultConfig()}, {to: distribution === 'k3s' ? 'v1.31.5+k3s1' : 'v1.31.3+rke2r1', distribution, cluster: 'offline'})
      assert.deepEqual(offline.plans.map((p) => p.metadata.name), [`${distribution}-server`, `${distribution}-agent`])
      assert.equal(offline.etcd, undefined)
      assert.deepEqual(offline.agent.spec.nodeSelector.matchExpressions?.map((e) => [e.key, e.operator]), [[CONTROL_PLANE, 'DoesNotExist'], [ETCD, 'DoesNotExist']])
      const selected = selections(c, offline.plans)
      assert.deepEqual(selected['etcd-1'], [], `${distribution}: no plan of the two takes etcd-1`)
      assert.ok(offline.warnings.some((w) => /without an etcd plan: an etcd-only server .* would be upgraded by no plan/.test(w)), offline.warnings.join('\n'))
      assert.match(offline.yaml, /^# Written without the cluster's node labels, so without an etcd plan/m)
    }
  })

  it('refuses an agent selector that takes a server, and warns about a node only labelled master', async () => {
    await assert.rejects(generate(c, {agentSelector: `!${CONTROL_PLANE}`}), (error: PreflightError) => {
      assert.equal(error.exitCode, ExitCode.preflightRefused)
      assert.match(error.message, /node etcd-1 is selected by k3s-etcd and k3s-agent/)
      return true
    })
    const old = await startSucCluster({servers: 1, agents: 1, nodes: [{name: 'old-master', role: 'agent', labels: {[MASTER]: 'true'}}], controller: false})
    try {
      await assert.rejects(generate(old, {agentSelector: `!${CONTROL_PLANE}`}), (error: PreflightError) => {
        assert.equal(error.exitCode, ExitCode.preflightRefused)
        assert.match(error.message, /node old-master is a server, but the agent plan k3s-agent selects it/)
        assert.match(error.hint ?? '', /leave servers out of k3s-agent \(its selector: !node-role\.kubernetes\.io\/control-plane\)/)
        return true
      })
      const generated = await generate(old)
      assert.deepEqual(generated.plans.map((p) => p.metadata.name), ['k3s-server', 'k3s-agent'], 'no etcd-only node, no etcd plan')
      assert.deepEqual(generated.agent.spec.nodeSelector.matchExpressions?.at(-1), {key: MASTER, operator: 'DoesNotExist'})
      assert.deepEqual(selections(old, generated.plans)['old-master'], [])
      assert.ok(generated.warnings.some((w) => /old-master carries node-role\.kubernetes\.io\/master but neither .*: no plan upgrades it/.test(w)), generated.warnings.join('\n'))
    } finally {
      await old.stop()
    }
  })
})

describe('split roles: the simulated controller follows the prepare chain', () => {
  for (const distribution of ['k3s', 'rke2'] as const) {
    it(`${distribution}: etcd-only first, then the control-plane nodes one at a time, then the agents`, async () => {
      const [from, to] = distribution === 'k3s' ? ['v1.31.4+k3s1', 'v1.31.5+k3s1'] : ['v1.31.2+rke2r1', 'v1.31.3+rke2r1']
      const c = await splitCluster({version: from})
      try {
        const generated = await generate(c, {to, distribution, agentConcurrency: 2})
        // Applied agents first: the order of apply must not matter, prepare holds them.
        await applyPlans(c.kube, [...generated.plans].reverse())
        const {outcome, report} = await waitForPlans(c.kube, {timeoutMs: 20_000})
        assert.equal(outcome, 'complete', report.summary)
        assert.deepEqual(report.plans.map((p) => [p.name, p.role, p.done]), [
          [`${distribution}-etcd`, 'etcd', ['etcd-1']],
          [`${distribution}-server`, 'server', ['cp-1', 'cp-2']],
          [`${distribution}-agent`, 'agent', ['agent-1', 'agent-2', 'agent-3']],
        ])
        for (const node of c.api.nodes.list()) assert.equal(node.status?.nodeInfo?.kubeletVersion, to, node.metadata.name)

        const changes = c.api.changes.of('nodes').filter((e) => e.type === 'MODIFIED' && 'kubeletVersion' in e.diff)
        const at = (name: string) => changes.find((e) => e.name === name)!.seq
        assert.ok(at('etcd-1') < Math.min(at('cp-1'), at('cp-2')), 'etcd-1 before every control-plane node')
        assert.ok(Math.max(at('cp-1'), at('cp-2')) < Math.min(at('agent-1'), at('agent-2'), at('agent-3')), 'the control-plane nodes before every agent')
        assert.equal(c.suc.maxActive.get(`${distribution}-etcd`), 1)
        assert.equal(c.suc.maxActive.get(`${distribution}-server`), 1, 'control-plane nodes one at a time')
        assert.deepEqual(c.suc.errors, [])
        assert.deepEqual(c.api.internalErrors, [])
      } finally {
        await c.stop()
      }
    })
  }

  it('while the etcd plan is stuck, the server plan waits in prepare and no control-plane node is touched', async () => {
    const c = await splitCluster()
    try {
      c.suc.failNext('etcd-1', {kind: 'image-pull', container: 'upgrade'})
      await applyPlans(c.kube, (await generate(c)).plans)
      const pods = () => c.api.pods.list({namespace: 'system-upgrade'})
      await c.api.waitFor(() => pods().some((p) => JSON.stringify(p.status).includes('ImagePullBackOff')) && pods().filter((p) => JSON.stringify(p.status?.initContainerStatuses).includes('running')).length >= 2, {message: 'etcd-1 stuck, the others in prepare'})
      const report = await readPlansStatus(c.kube, {stuckAfterMs: 60_000})
      assert.deepEqual(report.plans.map((p) => p.name), ['k3s-etcd', 'k3s-server', 'k3s-agent'])
      const [etcd, server, agent] = report.plans
      assert.equal(etcd.problems[0]?.state, 'stuck')
      assert.equal(server.problems[0]?.state, 'waiting')
      assert.match(server.problems[0].message, /prepare waits for plan k3s-etcd \(still applying on etcd-1\)/)
      assert.equal(agent.problems[0]?.state, 'waiting')
      assert.match(agent.problems[0].message, /prepare waits for plan k3s-server/)
      for (const name of ['cp-1', 'cp-2', 'agent-1', 'agent-2', 'agent-3']) {
        assert.equal(c.api.nodes.get(name)?.spec?.unschedulable, undefined, `${name} not cordoned`)
        assert.equal(c.api.nodes.get(name)?.status?.nodeInfo?.kubeletVersion, 'v1.31.4+k3s1', `${name} not upgraded`)
      }
    } finally {
      await c.stop()
    }
  })
})

describe('split roles: the wait-for-plan script, run by sh with a fake kubectl', () => {
  let dir: string
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'homelab-wait-'))
    const bin = path.join(dir, 'bin')
    await mkdir(bin)
    // kubectl answers from step-<n>.json (n counts the sleeps so far): {plan, nodes}; null fails.
    await writeFile(
      path.join(bin, 'kubectl'),
      `#!/bin/sh
echo "$*" >> "$STATE/calls"
n=$(cat "$STATE/step" 2>/dev/null || echo 0)
file="$STATE/step-$n.json"; [ -f "$file" ] || file=$(ls "$STATE"/step-*.json | sort -t- -k2 -n | tail -1)
case "$*" in
  *"get plan"*) key=plan ;;
  *"get nodes"*) key=nodes ;;
esac
out=$(jq -c ".$key" "$file")
[ "$out" = null ] && { echo "error: not found" >&2; exit 1; }
printf '%s\\n' "$out"
`,
    )
    // sleep counts the steps; past the last one the script would wait for ever: stop it.
    await writeFile(
      path.join(bin, 'sleep'),
      `#!/bin/sh
n=$(( $(cat "$STATE/step" 2>/dev/null || echo 0) + 1 ))
echo $n > "$STATE/step"
[ $n -gt "$MAX_STEPS" ] && { echo gave-up; kill -TERM $PPID; }
exit 0
`,
    )
    await chmod(path.join(bin, 'kubectl'), 0o755)
    await chmod(path.join(bin, 'sleep'), 0o755)
  })
  after(() => rm(dir, {recursive: true, force: true}))

  const node = (name: string, version: string, ready = true) => ({metadata: {name}, status: {nodeInfo: {kubeletVersion: version}, conditions: [{type: 'Ready', status: ready ? 'True' : 'False'}]}})
  const plan = (latestVersion: string, applying?: string[]) => ({metadata: {name: 'k3s-etcd'}, status: {latestVersion, ...(applying ? {applying} : {})}})

  async function run(name: string, steps: Array<{plan: unknown; nodes: unknown}>): Promise<{code: number; stdout: string; calls: string[]; sleeps: number}> {
    const state = path.join(dir, name)
    await mkdir(state)
    await Promise.all(steps.map((s, i) => writeFile(path.join(state, `step-${i}.json`), JSON.stringify(s))))
    const selector = `${ETCD} in (true),!${CONTROL_PLANE},plan.upgrade.cattle.io/k3s-etcd!=disabled`
    const result = await new Promise<{code: number; stdout: string}>((resolve) => {
      execFile('/bin/sh', ['-c', WAIT_FOR_PLAN_SCRIPT, WAIT_FOR_PLAN, 'k3s-etcd', 'system-upgrade', selector], {
        env: {PATH: `${path.join(dir, 'bin')}:${process.env.PATH}`, STATE: state, MAX_STEPS: String(steps.length), SYSTEM_UPGRADE_PLAN_LATEST_VERSION: 'v1.31.5-k3s1'},
        timeout: 20_000,
      }, (error, stdout) => resolve({code: error ? Number((error as {code?: number}).code ?? 1) : 0, stdout}))
    })
    const calls = (await readFile(path.join(state, 'calls'), 'utf8').catch(() => '')).trim().split('\n')
    const sleeps = Number((await readFile(path.join(state, 'step'), 'utf8').catch(() => '0')).trim())
    return {...result, calls, sleeps}
  }

  it('waits for the plan, for it to resolve the version and apply nowhere, then for its nodes to be Ready at it', async () => {
    const r = await run('ordered', [
      {plan: null, nodes: {items: []}},
      {plan: plan('v1.31.4-k3s1'), nodes: {items: []}},
      {plan: plan('v1.31.5-k3s1', ['etcd-1']), nodes: {items: []}},
      {plan: plan('v1.31.5-k3s1'), nodes: {items: [node('etcd-1', 'v1.31.4+k3s1')]}},
      {plan: plan('v1.31.5-k3s1'), nodes: null},
      {plan: plan('v1.31.5-k3s1'), nodes: {items: [node('etcd-1', 'v1.31.5+k3s1', false)]}},
      {plan: plan('v1.31.5-k3s1'), nodes: {items: [node('etcd-1', 'v1.31.5+k3s1')]}},
    ])
    assert.equal(r.code, 0, r.stdout)
    assert.equal(r.sleeps, 6, r.stdout)
    assert.deepEqual(r.stdout.trim().split('\n'), [
      'waiting for plan k3s-etcd to exist',
      'waiting for plan k3s-etcd to resolve v1.31.5-k3s1',
      'waiting for plan k3s-etcd: applying on etcd-1',
      'waiting for the nodes of plan k3s-etcd to run v1.31.5-k3s1: etcd-1',
      'waiting: cannot list the nodes of plan k3s-etcd',
      'waiting for the nodes of plan k3s-etcd to run v1.31.5-k3s1: etcd-1',
      'plan k3s-etcd is done: its nodes run v1.31.5-k3s1',
    ])
    assert.ok(r.calls.includes(`get nodes -l ${ETCD} in (true),!${CONTROL_PLANE},plan.upgrade.cattle.io/k3s-etcd!=disabled -o json`), r.calls.join('\n'))
    assert.ok(r.calls.includes('-n system-upgrade get plan k3s-etcd -o json'))
  })

  it('a plan with no node left is no reason to wait; a plan that never finishes keeps it waiting', async () => {
    const empty = await run('empty', [{plan: plan('v1.31.5-k3s1'), nodes: {items: []}}])
    assert.equal(empty.code, 0, empty.stdout)
    assert.equal(empty.sleeps, 0)
    const stuck = await run('stuck', [{plan: plan('v1.31.5-k3s1', ['etcd-1']), nodes: {items: [node('etcd-1', 'v1.31.5+k3s1')]}}])
    assert.notEqual(stuck.code, 0, 'still waiting when stopped')
    assert.match(stuck.stdout, /gave-up/)
    assert.doesNotMatch(stuck.stdout, /is done/)
  })
})

describe('split roles: the CLI', () => {
  let c: SucCluster
  before(async () => {
    requireBuiltCli()
    c = await splitCluster()
  })
  after(() => c.stop())

  it('generate --json lists the three plans; apply installs them; status --wait follows them in order', async () => {
    const generated = await cli(c, ['k8s', 'plan', 'generate', '--to', 'v1.31.5+k3s1', '--json'])
    assert.equal(generated.code, 0, generated.stderr)
    const result = JSON.parse(generated.stdout)
    assert.deepEqual(result.plans.map((p: Plan) => p.metadata.name), ['k3s-etcd', 'k3s-server', 'k3s-agent'])
    assert.equal(result.clusterChecked, true)

    const apply = await cli(c, ['k8s', 'plan', 'apply', '--to', 'v1.31.5+k3s1'])
    assert.equal(apply.code, 0, apply.stderr)
    assert.match(apply.stdout, /^plan\.upgrade\.cattle\.io\/k3s-etcd created\nplan\.upgrade\.cattle\.io\/k3s-server created\nplan\.upgrade\.cattle\.io\/k3s-agent created$/m)

    const wait = await cli(c, ['k8s', 'plan', 'status', '--wait', '--timeout', '20s', '--json'])
    assert.equal(wait.code, 0, wait.stderr)
    const report = JSON.parse(wait.stdout)
    assert.equal(report.outcome, 'complete')
    assert.deepEqual(report.plans.map((p: {name: string; done: string[]}) => [p.name, p.done]), Object.entries(EXPECTED))

    const table = await cli(c, ['k8s', 'plan', 'status', '--name-prefix', 'k3s-'])
    assert.equal(table.code, 0, table.stderr)
    assert.match(table.stdout, /^k3s-etcd\s.*\n^k3s-server\s.*\n^k3s-agent\s/m)
  })
})
