import assert from 'node:assert/strict'
import {describe, test} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {readServiceLog, readSudoLog} from '../sim/node-fixture.js'
import {FROM, TO, describeWrites, lab, nodeStates, writes} from './helpers.js'

/** Exit 3, the reason on stderr, and not one write to the cluster or restart on a node. */
async function assertRefused(homelab: Homelab, args: string[], reason: RegExp, version: string): Promise<string> {
  const run = await homelab.cli(['k8s', 'upgrade', ...args, '--yes'])
  assert.equal(run.exitCode, 3, `${run.stdout}\n${run.stderr}`)
  assert.match(run.stderr, reason)
  assert.match(run.stderr, /nothing was changed/)
  assert.deepEqual(writes(homelab), [], describeWrites(writes(homelab)))
  assert.deepEqual(homelab.api.k3sLog, [])
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: version, disk: version, ready: true, cordoned: false}, name)
  return run.stderr
}

describe('pre-flight refuses, exit 3, nothing written', () => {
  test('a downgrade', async (t) => {
    const homelab = await lab(t, {version: TO, releases: [FROM]})
    await assertRefused(homelab, ['--to', FROM], /runs v1\.31\.5\+k3s1; v1\.31\.4\+k3s1 would be a downgrade/, TO)
  })

  test('a +k3s downgrade (same Kubernetes version, older k3s release)', async (t) => {
    const homelab = await lab(t, {version: 'v1.31.5+k3s2', releases: ['v1.31.5+k3s1']})
    await assertRefused(homelab, ['--to', 'v1.31.5+k3s1'], /runs v1\.31\.5\+k3s2; v1\.31\.5\+k3s1 would be a downgrade/, 'v1.31.5+k3s2')
  })

  test('a skipped minor with --no-hops', async (t) => {
    const homelab = await lab(t, {
      version: 'v1.29.12+k3s1',
      releases: ['v1.30.8+k3s1', TO],
      channels: {stable: TO, latest: TO, 'v1.30': 'v1.30.8+k3s1', 'v1.31': TO},
    })
    await assertRefused(homelab, ['--to', TO, '--no-hops'], /more than one minor version ahead of v1\.29\.12\+k3s1.*first to v1\.30\.8\+k3s1/s, 'v1.29.12+k3s1')
  })

  test('an unknown host key: refused before anything is sent to the node or the API is written', async (t) => {
    const homelab = await lab(t, {trustHostKeys: false})
    const stderr = await assertRefused(homelab, ['--to', TO], /node agent-2: host key for 127\.[\d.]+:\d+ is not in known_hosts \(SHA256:/, FROM)
    // The fix offered is the host key's, not a sudo problem that does not exist.
    assert.match(stderr, /--accept-new-host-keys/)
    assert.doesNotMatch(stderr, /sudo|as root/)
    for (const node of homelab.nodes) {
      assert.deepEqual(await readSudoLog(node.fixture), [], `${node.spec.name} ran sudo`)
      assert.deepEqual((await readServiceLog(node.fixture)).filter((e) => e.source !== 'service' && e.source !== 'k3s'), [], `${node.spec.name} was asked to change its service`)
    }
  })

  test('a PodDisruptionBudget that allows no disruption on an agent, reported with the node', async (t) => {
    const homelab = await lab(t)
    homelab.api.workloads.addReplicaSet({name: 'db', namespace: 'default', podsOn: ['agent-2']})
    homelab.api.pdbs.add({name: 'db', namespace: 'default', selector: {app: 'db'}, minAvailable: 1})
    await assertRefused(homelab, ['--to', TO], /agent agent-2 cannot be drained now: PodDisruptionBudget default\/db allows no disruption of default\/db-/, FROM)
  })
})

test('homelab.yaml saying rke2 on a k3s cluster is refused with exit 2, naming what the nodes run, writing nothing', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 0})
  await homelab.writeConfig({distribution: 'rke2'})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.31.5+rke2r1', '--yes'])
  assert.equal(run.exitCode, 2, run.stderr)
  assert.match(run.stderr, /says distribution: rke2, but the cluster runs k3s \(kubelet v1\.31\.4\+k3s1 on every node\).*fix: set distribution: k3s/)
  assert.deepEqual(writes(homelab), [])
})
