/**
 * The verification at the end of a run, read from the API: its before → after in the report and
 * in --json, and a failed verification undone like any failure (exit 4).
 */
import assert from 'node:assert/strict'
import {describe, it} from 'node:test'

import {AGENTS, FROM, SERVERS, TO, lab, nodeStates, parseJson} from './helpers.js'

interface Result {
  outcome: string
  verification: {passed: boolean; nodes: Array<{name: string; before: string; after: string; ready: boolean}>; workloads: Array<{workload: string; before: number; after: number}>; problems: string[]}
}

describe('post-upgrade verification', {timeout: 180_000}, () => {
  it('reports every node before → after and passes when the cluster is as it was', async (t) => {
    const homelab = await lab(t)
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
    assert.equal(result.exitCode, 0, result.stderr)
    const {verification} = parseJson<Result>(result.stdout)
    assert.equal(verification.passed, true, verification.problems.join('; '))
    assert.deepEqual(verification.nodes.map((n) => `${n.name} ${n.before} → ${n.after} ${n.ready}`).sort(), [...SERVERS, ...AGENTS].map((n) => `${n} ${FROM} → ${TO} true`).sort())
  })

  it('fails the run when a kube-system pod is not Ready at the end: undone, exit 4, the pod named in the report and --json', async (t) => {
    const homelab = await lab(t, {config: {upgrade: {healthGate: {timeout: '2s'}}}})
    // A system pod no workload stands behind, which the new version breaks.
    homelab.api.pods.add({name: 'metrics-probe', namespace: 'kube-system', node: 'server-1', labels: {app: 'metrics-probe'}, pinned: false})
    homelab.api.controllers.kubelet!.readiness.push({namespace: 'kube-system', matchLabels: {app: 'metrics-probe'}, onVersion: TO, never: true})
    const result = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
    assert.equal(result.exitCode, 4, result.stderr)
    const parsed = parseJson<Result & {error: {message: string}}>(result.stdout)
    assert.equal(parsed.outcome, 'compensated')
    assert.equal(parsed.verification.passed, false)
    assert.ok(parsed.verification.problems.some((p) => p.includes('kube-system pod metrics-probe (Running, not Ready)')), parsed.verification.problems.join('; '))
    assert.match(parsed.error.message, /verification after the upgrade to v1\.31\.5\+k3s1 failed: kube-system pod metrics-probe/)
    for (const [name, state] of await nodeStates(homelab)) {
      assert.equal(state.kubelet, FROM, `${name} put back`)
      assert.equal(state.cordoned, false, name)
    }
  })
})
