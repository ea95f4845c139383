import assert from 'node:assert/strict'
import {after, before, describe, it} from 'node:test'

import {applyPlans} from '../src/suc/apply.js'
import {buildPlans} from '../src/suc/build.js'
import {diagnosePlans, readPlansStatus, waitForPlans} from '../src/suc/status.js'
import {planNodeLabel, type Plan} from '../src/suc/types.js'
import {parseVersion} from '../src/versions/release-version.js'
import {startChannelServer} from './sim/channel-server.js'
import {defaultConfig, startSucCluster, type SucCluster} from './suc-fixture.js'

function plans(version: string, agentConcurrency = 2): Plan[] {
  const built = buildPlans({distribution: 'k3s', target: {kind: 'version', version: parseVersion(version)}, agentConcurrency, drain: defaultConfig().upgrade.drain})
  return [built.server, built.agent]
}

const nodeVersion = (c: SucCluster, name: string) => String(c.api.nodes.get(name)?.status?.nodeInfo?.kubeletVersion)
const cordoned = (c: SucCluster, name: string) => c.api.nodes.get(name)?.spec?.unschedulable === true

describe('plan status and --wait against the simulated controller', () => {
  describe('a clean upgrade', () => {
    let c: SucCluster
    before(async () => {
      c = await startSucCluster({servers: 3, agents: 3})
      // A workload the agent drain has to move.
      c.api.workloads.addReplicaSet({name: 'web', podsOn: ['agent-1', 'agent-2']})
    })
    after(() => c.stop())

    it('follows both plans to Complete: servers one at a time, then agents two at a time', async () => {
      await applyPlans(c.kube, plans('v1.31.5+k3s1'), {})
      const seen: string[] = []
      const {outcome, report} = await waitForPlans(c.kube, {timeoutMs: 15_000, onReport: (r) => seen.push(r.state)})
      assert.equal(outcome, 'complete', report.summary)
      assert.equal(seen.at(-1), 'complete')
      assert.ok(seen.includes('in-progress'), 'the wait saw the plans in progress first')

      for (const name of ['server-1', 'server-2', 'server-3', 'agent-1', 'agent-2', 'agent-3']) {
        assert.equal(nodeVersion(c, name), 'v1.31.5+k3s1', name)
        assert.equal(cordoned(c, name), false, `${name} uncordoned after success`)
      }
      const [server, agent] = report.plans
      assert.equal(server.name, 'k3s-server')
      assert.equal(server.latestVersion, 'v1.31.5+k3s1')
      assert.match(server.latestHash ?? '', /^[0-9a-f]{56}$/)
      assert.deepEqual(server.done, ['server-1', 'server-2', 'server-3'])
      assert.deepEqual(agent.done, ['agent-1', 'agent-2', 'agent-3'])
      assert.deepEqual([server.toGo, agent.toGo, server.applying, agent.applying], [[], [], [], []])
      assert.equal(server.complete.status, 'True')
      for (const name of server.done) assert.equal(c.api.nodes.get(name)?.metadata.labels?.[planNodeLabel('k3s-server')], server.latestHash)

      assert.equal(c.suc.maxActive.get('k3s-server'), 1, 'servers one at a time')
      assert.equal(c.suc.maxActive.get('k3s-agent'), 2, 'agents under the concurrency')
      // prepare held the agents: no agent changed version before the last server did.
      const versionChanges = c.api.changes.of('nodes').filter((e) => e.type === 'MODIFIED' && 'kubeletVersion' in e.diff)
      const lastServer = Math.max(...versionChanges.filter((e) => e.name.startsWith('server')).map((e) => e.seq))
      const firstAgent = Math.min(...versionChanges.filter((e) => e.name.startsWith('agent')).map((e) => e.seq))
      assert.ok(lastServer < firstAgent, 'servers finished before any agent was upgraded')
      // The drain moved the workload off each agent before its upgrade.
      const evicted = c.api.changes.of('pods').filter((e) => e.source === 'controller:system-upgrade' && 'deletionTimestamp' in e.diff)
      assert.ok(evicted.some((e) => e.name.startsWith('web-')), 'the web pods were drained')
      assert.deepEqual(c.api.internalErrors, [])
      assert.deepEqual(c.suc.errors, [])
    })

    it('reads the same verdict without waiting, and a second wait returns at once', async () => {
      const report = await readPlansStatus(c.kube)
      assert.equal(report.state, 'complete')
      const started = Date.now()
      const {outcome} = await waitForPlans(c.kube, {timeoutMs: 5000})
      assert.equal(outcome, 'complete')
      assert.ok(Date.now() - started < 2000)
    })

    it('a new version is not complete until the controller has caught up with it', async () => {
      c.suc.pause()
      await applyPlans(c.kube, plans('v1.31.6+k3s1'), {})
      // The plans still carry the old status (Complete, the old latestVersion): that is not done.
      const report = await readPlansStatus(c.kube)
      assert.equal(report.state, 'in-progress')
      const {outcome} = await waitForPlans(c.kube, {timeoutMs: 300})
      assert.equal(outcome, 'timeout')
      c.suc.resume()
      const done = await waitForPlans(c.kube, {timeoutMs: 15_000})
      assert.equal(done.outcome, 'complete', done.report.summary)
      assert.equal(nodeVersion(c, 'agent-3'), 'v1.31.6+k3s1')
    })
  })

  describe('a downgrade the upgrade image refuses', () => {
    let c: SucCluster
    before(async () => {
      c = await startSucCluster({servers: 1, agents: 2})
    })
    after(() => c.stop())

    it('fails for good, names the job and the message, and reports the node left cordoned', async () => {
      c.suc.failNext('agent-2', {kind: 'downgrade-refused'})
      await applyPlans(c.kube, plans('v1.31.5+k3s1'), {})
      const {outcome, report} = await waitForPlans(c.kube, {timeoutMs: 15_000})
      assert.equal(outcome, 'failed', report.summary)
      const agent = report.plans.find((p) => p.name === 'k3s-agent')!
      assert.equal(agent.problems.length, 1)
      const [problem] = agent.problems
      assert.equal(problem.node, 'agent-2')
      assert.equal(problem.state, 'failed')
      assert.equal(problem.reason, 'BackoffLimitExceeded')
      assert.match(problem.message, /Refusing to downgrade/)
      assert.match(problem.message, /container upgrade exited 1/)
      assert.match(problem.job, /^apply-k3s-agent-on-agent-2-with-/)
      assert.equal(agent.complete.status, 'False')
      assert.equal(agent.complete.reason, 'JobFailed')
      assert.deepEqual(agent.toGo, ['agent-2'])
      assert.deepEqual(agent.done, ['agent-1'])
      assert.ok(cordoned(c, 'agent-2'), 'the controller leaves a failed node cordoned')
      assert.deepEqual(report.leftCordoned.map((n) => n.node), ['agent-2'])
      assert.equal(report.uncordonCommand, 'kubectl uncordon agent-2')
      // Three attempts (backoffLimit 2), each a pod whose container exited 1.
      const pods = c.api.pods.list({namespace: 'system-upgrade', labelSelector: `job-name=${problem.job}`})
      assert.equal(pods.length, 3)
    })

    it('the image refuses a plain downgrade by itself, too', async () => {
      const c2 = await startSucCluster({servers: 1, agents: 1, versions: {'agent-1': 'v1.31.5+k3s2'}})
      try {
        await applyPlans(c2.kube, plans('v1.31.5+k3s1'), {})
        const {outcome, report} = await waitForPlans(c2.kube, {timeoutMs: 15_000})
        assert.equal(outcome, 'failed')
        const problem = report.plans.flatMap((p) => p.problems)[0]
        assert.equal(problem.node, 'agent-1')
        assert.match(problem.message, /from v1\.31\.5\+k3s2 to v1\.31\.5\+k3s1/)
      } finally {
        await c2.stop()
      }
    })
  })

  describe('an image that cannot be pulled', () => {
    let c: SucCluster
    before(async () => {
      c = await startSucCluster({servers: 1, agents: 1})
    })
    after(() => c.stop())

    it('is stuck (ErrImagePull / ImagePullBackOff), the agents wait in prepare, and the server is left cordoned', async () => {
      c.suc.failNext('server-1', {kind: 'image-pull'})
      await applyPlans(c.kube, plans('v1.31.5+k3s1'), {})
      await c.api.waitFor(() => c.api.pods.list({namespace: 'system-upgrade'}).some((p) => JSON.stringify(p.status).includes('ImagePullBackOff')) && c.api.pods.list({namespace: 'system-upgrade'}).some((p) => JSON.stringify(p.status?.initContainerStatuses).includes('running')), {message: 'pull back-off and prepare running'})

      const report = await readPlansStatus(c.kube, {stuckAfterMs: 60_000})
      assert.equal(report.state, 'in-progress', 'a fresh pull error may still heal')
      const [server, agent] = report.plans
      const [stuck] = server.problems
      assert.equal(stuck.state, 'stuck')
      assert.equal(stuck.reason, 'ImagePullBackOff')
      assert.match(stuck.message, /cannot pull rancher\/k3s-upgrade:v1\.31\.5-k3s1 for container upgrade/)
      assert.equal(stuck.givenUp, false)
      assert.deepEqual(server.applying, ['server-1'])
      const [waiting] = agent.problems
      assert.equal(waiting.state, 'waiting')
      assert.equal(waiting.reason, 'PrepareWaiting')
      assert.match(waiting.message, /prepare waits for plan k3s-server \(still applying on server-1\)/)
      assert.deepEqual(report.leftCordoned.map((n) => n.node), ['server-1'])
      assert.equal(cordoned(c, 'agent-1'), false, 'the agent waits before its cordon')

      const {outcome, report: final} = await waitForPlans(c.kube, {timeoutMs: 10_000, stuckAfterMs: 400})
      assert.equal(outcome, 'failed')
      assert.equal(final.plans[0].problems[0].givenUp, true)
      assert.equal(final.uncordonCommand, 'kubectl uncordon server-1')
    })
  })

  it('plans that follow a channel: the controller resolves it, status shows what it resolved', async () => {
    const channels = await startChannelServer({channels: {'v1.31': 'v1.31.6+k3s1'}})
    const c = await startSucCluster({servers: 1, agents: 1})
    try {
      const built = buildPlans({
        distribution: 'k3s',
        target: {kind: 'channel', channel: 'v1.31', url: `${channels.url}/v1.31`, resolved: parseVersion('v1.31.6+k3s1')},
        agentConcurrency: 1,
        drain: defaultConfig().upgrade.drain,
      })
      await applyPlans(c.kube, [built.server, built.agent])
      const {outcome, report} = await waitForPlans(c.kube, {timeoutMs: 10_000})
      assert.equal(outcome, 'complete', report.summary)
      assert.equal(report.plans[0].target, `channel ${channels.url}/v1.31`)
      assert.equal(report.plans[0].latestVersion, 'v1.31.6+k3s1')
      assert.equal(nodeVersion(c, 'agent-1'), 'v1.31.6+k3s1')
      assert.deepEqual(c.suc.channelRequests, [`${channels.url}/v1.31`])
    } finally {
      await c.stop()
      await channels.stop()
    }
  })

  it('--wait rides out the API server going away while the only server upgrades', async () => {
    const c = await startSucCluster({servers: 1, agents: 1, api: {crds: {velero: false}, apiDownOnServerRestartMs: 700, nodeDefaults: {readyDelayMs: 20}}})
    try {
      // Both plans in before the server's restart takes the API away.
      c.suc.pause()
      await applyPlans(c.kube, plans('v1.31.5+k3s1'))
      // The wait starts while the API is away (as it is while the only server restarts).
      await c.api.setUnreachable(400)
      c.suc.resume()
      const retries: unknown[] = []
      const {outcome, report} = await waitForPlans(c.kube, {timeoutMs: 15_000, onRetry: (e) => retries.push(e)})
      assert.equal(outcome, 'complete', report.summary)
      assert.ok(c.api.changes.events('api-down').length >= 1, 'the API really went away')
      assert.ok(retries.length > 0, 'and the wait saw it')
    } finally {
      await c.stop()
    }
  })

  it('a missing set of plans says how to apply them', async () => {
    const c = await startSucCluster({servers: 1, agents: 0, controller: false})
    try {
      await assert.rejects(readPlansStatus(c.kube), (error: Error & {hint?: string}) => {
        assert.match(error.message, /no Plans labelled app\.kubernetes\.io\/managed-by=homelab in namespace system-upgrade/)
        assert.match(error.hint ?? '', /homelab k8s plan apply/)
        return true
      })
    } finally {
      await c.stop()
    }
  })

  it('diagnosePlans on its own: Unschedulable upgrade pods point at --tolerations', () => {
    const [server] = plans('v1.31.5+k3s1')
    const hash = 'a'.repeat(56)
    server.status = {latestVersion: 'v1.31.5-k3s1', latestHash: hash, applying: ['server-1'], conditions: [{type: 'Complete', status: 'False'}]}
    const job = {metadata: {name: 'apply-k3s-server-on-server-1-with-aaaa', labels: {'upgrade.cattle.io/plan': 'k3s-server', 'upgrade.cattle.io/node': 'server-1', [planNodeLabel('k3s-server')]: hash}, creationTimestamp: new Date(1000) as never}, status: {active: 1}}
    const pod = {
      metadata: {name: 'p', labels: {'job-name': job.metadata.name}},
      status: {phase: 'Pending', conditions: [{type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: '0/1 nodes are available: 1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }'}]},
    }
    const node = {metadata: {name: 'server-1', labels: {'kubernetes.io/hostname': 'server-1', 'node-role.kubernetes.io/control-plane': 'true'}}, spec: {unschedulable: true}, status: {nodeInfo: {kubeletVersion: 'v1.31.4+k3s1'}}}
    const report = diagnosePlans({namespace: 'system-upgrade', plans: [server], nodes: [node as never], jobs: [job as never], pods: [pod as never], now: 1000 + 10 * 60_000, stuckAfterMs: 5 * 60_000})
    const [problem] = report.plans[0].problems
    assert.equal(problem.reason, 'Unschedulable')
    assert.match(problem.message, /untolerated taint/)
    assert.match(problem.message, /--tolerations/)
    assert.equal(problem.givenUp, true)
    assert.equal(report.state, 'failed')
    assert.equal(report.uncordonCommand, 'kubectl uncordon server-1')
  })
})
