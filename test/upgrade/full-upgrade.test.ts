import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {listSnapshots, readServiceLog} from '../sim/node-fixture.js'
import {AGENTS, FROM, SERVERS, TO, cordonPatches, describeWrites, lab, mostCordonedAtOnce, nodeStates, parseJson, readyAtSeq, writes} from './helpers.js'

interface Result {
  outcome: string
  exitCode: number
  runIds: string[]
  target: string
  nodes: Array<{name: string; role: string; before: string; after: string}>
  backups: Array<{velero?: string; etcdSnapshot?: {node: string; name: string}}>
  plans: Array<{drain: Array<{node: string; evict: string[]}>}>
  durationMs: number
}

describe('full upgrade of 3 servers and 3 agents', () => {
  let homelab: Homelab
  let result: Result
  let exitCode: number

  const cleanups: Array<() => Promise<void>> = []
  after(async () => {
    for (const cleanup of cleanups) await cleanup()
  })

  before(async () => {
    homelab = await lab((stop) => cleanups.push(stop), {ssh: 'openssh'})
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '2', '--json'])
    exitCode = run.exitCode
    assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
    result = parseJson<Result>(run.stdout)
  })

  test('exits 0 with a JSON result: run id, every node before and after, backups, duration, outcome', () => {
    assert.equal(exitCode, 0)
    assert.equal(result.outcome, 'succeeded')
    assert.equal(result.exitCode, 0)
    assert.equal(result.target, TO)
    assert.equal(result.runIds.length, 1)
    assert.match(result.runIds[0], /^\d{8}-\d{6}-[0-9a-f]+$/)
    assert.deepEqual(
      result.nodes.map((n) => [n.name, n.role, n.before, n.after]),
      [...SERVERS.map((n) => [n, 'server', FROM, TO]), ...AGENTS.map((n) => [n, 'agent', FROM, TO])],
    )
    assert.equal(result.backups.length, 1)
    assert.match(result.backups[0].velero ?? '', /^pre-upgrade-v1-31-5-k3s1-\d{8}t\d{6}$/)
    assert.equal(result.backups[0].etcdSnapshot?.node, 'server-1')
    assert.ok(result.durationMs > 0)
  })

  test('every node runs the target, Ready and uncordoned; the lock is released', async () => {
    for (const [name, state] of await nodeStates(homelab)) {
      assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
    }
    assert.equal(homelab.api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0)
  })

  test('the Velero backup was Completed before any node was changed', () => {
    const backups = homelab.api.store.list('backups.velero.io')
    assert.equal(backups.length, 1)
    assert.equal(backups[0].metadata.name, result.backups[0].velero)
    const completed = homelab.api.changes.of('backups').find((c) => c.diff.phase?.[1] === 'Completed')
    assert.ok(completed, 'the backup never reached Completed')
    const firstNodeWrite = writes(homelab).find((w) => w.resource === 'nodes' || w.resource === 'pods')
    assert.ok(firstNodeWrite)
    assert.ok(firstNodeWrite.seq > completed.seq, `node written (seq ${firstNodeWrite.seq}) before the backup completed (seq ${completed.seq})`)
    const firstRestart = homelab.api.k3sLog[0]
    assert.ok(firstRestart.seq > completed.seq, `k3s restarted on ${firstRestart.node} before the backup completed`)
  })

  test('the etcd snapshot was saved on the first server before any node was changed', async () => {
    const server = homelab.node('server-1').fixture
    assert.deepEqual(await listSnapshots(server), [result.backups[0].etcdSnapshot?.name])
    const saved = (await readServiceLog(server)).find((e) => e.args[0] === 'snapshot-saved')
    assert.ok(saved)
    const firstNodeWrite = writes(homelab).find((w) => w.resource === 'nodes')
    assert.ok(firstNodeWrite && saved.time.getTime() <= firstNodeWrite.at, 'snapshot taken after the first node was cordoned')
  })

  test('servers strictly one at a time, each started only after the previous was Ready at the target', () => {
    const startOf = (node: string) =>
      Math.min(
        cordonPatches(homelab).find((p) => p.node === node && p.cordon)?.seq ?? Infinity,
        homelab.api.k3sLog.find((e) => e.node === node)?.seq ?? Infinity,
      )
    for (const [i, server] of SERVERS.entries()) {
      assert.ok(Number.isFinite(startOf(server)), `${server} was never upgraded`)
      if (i === 0) continue
      const previous = SERVERS[i - 1]
      const previousReady = readyAtSeq(homelab, previous, TO)
      assert.ok(previousReady !== undefined, `${previous} never became Ready at ${TO}`)
      assert.ok(startOf(server) > previousReady, `${server} started (seq ${startOf(server)}) before ${previous} was Ready at ${TO} (seq ${previousReady})`)
      const previousUncordon = cordonPatches(homelab).find((p) => p.node === previous && !p.cordon)
      assert.ok(previousUncordon && startOf(server) > previousUncordon.seq, `${server} started before ${previous} was uncordoned`)
    }
    // Replaying the change log: whenever a server's k3s stopped, every other server was Ready.
    const ready = new Map(SERVERS.map((s) => [s, true]))
    for (const change of homelab.api.changes) {
      if (change.resource !== 'nodes' || !SERVERS.includes(change.name)) continue
      if (change.type === 'EVENT' && change.event === 'k3s-stopped') {
        const down = SERVERS.filter((s) => s !== change.name && !ready.get(s))
        assert.deepEqual(down, [], `${change.name}'s k3s stopped while ${down.join(', ')} was not Ready`)
      }
      if ('ready' in change.diff) ready.set(change.name, change.diff.ready[1] === 'True')
    }
  })

  test('no agent touched before every server was done', () => {
    const serversDone = Math.max(...SERVERS.map((s) => cordonPatches(homelab).findLast((p) => p.node === s && !p.cordon)?.seq ?? Infinity))
    assert.ok(Number.isFinite(serversDone))
    assert.ok(serversDone > Math.max(...SERVERS.map((s) => readyAtSeq(homelab, s, TO) ?? Infinity)))
    const agentWrites = writes(homelab).filter((w) => (w.resource === 'nodes' && AGENTS.includes(w.name ?? '')) || w.resource === 'pods')
    assert.ok(agentWrites.length > 0)
    const early = agentWrites.filter((w) => w.seq < serversDone)
    assert.equal(early.length, 0, `agent writes before the servers were done:\n${describeWrites(early)}`)
    const earlyRestarts = homelab.api.k3sLog.filter((e) => AGENTS.includes(e.node) && e.seq < serversDone)
    assert.deepEqual(earlyRestarts, [])
  })

  test('never more than --concurrency agents cordoned at once (from the node patches)', () => {
    const {most, left} = mostCordonedAtOnce(homelab, AGENTS)
    assert.equal(most, 2, 'agents were not upgraded two at a time')
    assert.equal(left, 0)
  })

  test('every pod was evicted through pods/eviction; the CLI deleted no pod', () => {
    const evictions = homelab.api.audit.matching({verb: 'create', resource: 'pods', subresource: 'eviction'})
    const planned = result.plans[0].drain.flatMap((d) => d.evict)
    assert.ok(planned.length >= 3, `expected the demo workloads on the agents, got ${planned.join(', ')}`)
    for (const pod of planned) {
      const [namespace, name] = pod.split('/')
      assert.ok(evictions.some((e) => e.namespace === namespace && e.name === name && e.code === 201), `${pod} was not evicted`)
    }
    for (const eviction of evictions) {
      assert.deepEqual((eviction.body as {apiVersion?: string; kind?: string}).kind, 'Eviction')
      assert.equal((eviction.body as {apiVersion?: string}).apiVersion, 'policy/v1')
    }
    assert.deepEqual(homelab.api.audit.matching({verb: ['delete', 'deletecollection'], resource: 'pods'}), [])
  })

  test('running it again changes nothing, exits 0 and says so', async () => {
    const mark = homelab.api.audit.at(-1)?.seq ?? 0
    const restarts = homelab.api.k3sLog.length
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(run.exitCode, 0, run.stderr)
    assert.match(run.stdout, /Nothing to do: every node is already at v1\.31\.5\+k3s1/)
    assert.deepEqual(writes(homelab, mark), [], describeWrites(writes(homelab, mark)))
    assert.equal(homelab.api.k3sLog.length, restarts)
    assert.equal(homelab.api.store.list('backups.velero.io').length, 1)
  })
})

describe('--dry-run', () => {
  test('prints the plan and changes nothing', async (t) => {
    const homelab = await lab(t)
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
    assert.equal(run.exitCode, 0, run.stderr)
    assert.match(run.stdout, /Upgrade to v1\.31\.5\+k3s1:/)
    assert.match(run.stdout, /servers, one at a time:\n {4}server-1 .*v1\.31\.4\+k3s1 → v1\.31\.5\+k3s1(?:\n {6}images: .*)?\n {4}server-2 .*(?:\n {6}images: .*)?\n {4}server-3 /)
    assert.match(run.stdout, /agents, drained first:\n {4}agent-1 .*(?:\n {6}images: .*)?\n {4}agent-2 .*(?:\n {6}images: .*)?\n {4}agent-3 /)
    assert.match(run.stdout, /drain agent-1: evict \d+ pod\(s\)/)
    assert.match(run.stdout, /Dry run: pre-flight passed; nothing was changed\./)
    assert.deepEqual(writes(homelab), [], describeWrites(writes(homelab)))
    assert.deepEqual(homelab.api.k3sLog, [])
    for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  })
})
