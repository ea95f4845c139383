/**
 * The workload health gate: after a node is back, the workloads it ran must be as available as
 * before the run before the next node is touched. Pods that never become Ready on upgraded
 * nodes fail the first agent (compensated, exit 4); pods that are slow hold the next node back
 * and the run succeeds; a workload broken before the run is reported, not waited on.
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {AGENTS, FROM, SERVERS, TO, breakUntilCompensated, cordonPatches, journals, lab, nodeStates} from './helpers.js'

/** A DaemonSet on every node, and a ReplicaSet that was broken before anyone upgraded anything. */
function addWorkloads(homelab: Homelab): void {
  // A node pool label, as users put on their workers; the DaemonSet runs there only.
  for (const agent of AGENTS) homelab.api.store.patch('nodes', undefined, agent, {metadata: {labels: {pool: 'workers'}}})
  homelab.api.workloads.addDaemonSet({name: 'node-agent', namespace: 'monitoring', nodeSelector: {pool: 'workers'}})
  homelab.api.controllers.kubelet!.readiness.push({namespace: 'default', matchLabels: {app: 'broken'}, never: true})
  homelab.api.workloads.addReplicaSet({name: 'broken', namespace: 'default', replicas: 1})
}

async function settle(homelab: Homelab, check: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 50))
  assert.ok(check(), 'the simulation settled')
  void homelab
}

const dsAvailable = (homelab: Homelab) => Number(homelab.api.store.get('daemonsets.apps', 'monitoring', 'node-agent')?.status?.numberAvailable ?? 0)

describe('workload health gate', {timeout: 180_000}, () => {
  it('fails the first agent whose return leaves a workload below its availability: compensated, exit 4, nothing cordoned, the broken workload only reported', async (t) => {
    const homelab = await lab(t, {config: {upgrade: {healthGate: {timeout: '3s'}}}})
    addWorkloads(homelab)
    await settle(homelab, () => dsAvailable(homelab) === 3)
    // The new kubelet breaks this DaemonSet's pods.
    homelab.api.controllers.kubelet!.readiness.push({namespace: 'monitoring', matchLabels: {app: 'node-agent'}, onVersion: TO, never: true})

    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '1'])
    const out = result.stdout + result.stderr
    assert.equal(result.exitCode, 4, out)
    assert.match(out, /health gate after agent-1: not back within 3s to where they were before the run: DaemonSet monitoring\/node-agent: its pod on agent-1 not Ready/)
    assert.match(out, /unhealthy before the run, not waited on: ReplicaSet default\/broken 0\/1/)
    assert.doesNotMatch(out, /waiting for [^\n]*broken/)

    // The first node whose return broke it is the one put back; nothing after it was touched.
    const states = await nodeStates(homelab)
    for (const name of [...SERVERS, ...AGENTS]) {
      assert.equal(states.get(name)?.kubelet, FROM, name)
      assert.equal(states.get(name)?.cordoned, false, `${name} left cordoned`)
    }
    assert.deepEqual([...new Set(cordonPatches(homelab).map((p) => p.node))], [...SERVERS, 'agent-1'], 'no agent after the first was touched')
    const [run] = await journals(homelab)
    assert.equal(run.status, 'compensated')
  })

  it('holds the next node until slow pods are back, then goes on', async (t) => {
    const homelab = await lab(t)
    addWorkloads(homelab)
    await settle(homelab, () => dsAvailable(homelab) === 3)
    homelab.api.controllers.kubelet!.readiness.push({namespace: 'monitoring', matchLabels: {app: 'node-agent'}, onVersion: TO, delayMs: 700})

    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '1'])
    const out = result.stdout + result.stderr
    assert.equal(result.exitCode, 0, out)
    assert.match(out, /agent-1: waiting for DaemonSet monitoring\/node-agent: its pod on agent-1 not Ready/)
    for (const [name, state] of await nodeStates(homelab)) assert.equal(state.kubelet, TO, name)

    // Every node is cordoned only once the DaemonSet is whole again after the node before it.
    const available = homelab.api.changes.of('daemonsets', 'node-agent').filter((c) => 'numberAvailable' in c.diff)
    assert.ok(available.some((c) => c.diff.numberAvailable[1] === 2), 'the DaemonSet did lose a pod')
    const cordons = cordonPatches(homelab).filter((p) => p.cordon)
    assert.equal(cordons.length, 6)
    for (const cordon of cordons.filter((c) => AGENTS.includes(c.node)).slice(1)) {
      const before = available.filter((c) => c.seq < cordon.seq).at(-1)
      assert.equal(before?.diff.numberAvailable[1], 3, `${cordon.node} was cordoned while the DaemonSet was at ${String(before?.diff.numberAvailable[1])}`)
    }
  })

  it('does not hold a node back for a DaemonSet pod on another node that failed beside it', async (t) => {
    // The default gate timeout (10 minutes): the run must end long before it.
    const homelab = await lab(t)
    addWorkloads(homelab)
    await settle(homelab, () => dsAvailable(homelab) === 3)
    const repaired = breakUntilCompensated(homelab, 'agent-1', TO)
    const started = Date.now()
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '2'])
    await repaired
    assert.equal(result.exitCode, 4, result.stdout + result.stderr)
    assert.ok(Date.now() - started < 90_000, `took ${Date.now() - started} ms`)
    assert.doesNotMatch(result.stdout + result.stderr, /health gate after agent-2/)
    for (const [name, state] of await nodeStates(homelab)) assert.equal(state.cordoned, false, `${name} left cordoned`)
  })
})
