import assert from 'node:assert/strict'
import {test} from 'node:test'

import {compareVersions} from '../../src/versions/release-version.js'
import {AGENTS, SERVERS, TO, lab, nodeStates, parseJson} from './helpers.js'

const START = 'v1.29.12+k3s1'
const V130 = 'v1.30.8+k3s1'

test('two minors ahead: passes through the newest v1.30 (from its channel) on every node, then v1.31', async (t) => {
  const homelab = await lab(t, {
    version: START,
    releases: ['v1.30.2+k3s1', V130, TO],
    channels: {stable: TO, latest: TO, 'v1.30': V130, 'v1.31': TO},
  })
  const {api} = homelab
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const result = parseJson<{outcome: string; hops: string[]; runIds: string[]; backups: unknown[]; nodes: Array<{name: string; before: string; after: string}>}>(run.stdout)
  assert.equal(result.outcome, 'succeeded')
  assert.deepEqual(result.hops, [V130, TO])
  assert.equal(result.runIds.length, 2, 'one run (and journal) per hop')
  assert.equal(result.backups.length, 2, 'a backup before each hop')
  assert.deepEqual(result.nodes.map((n) => [n.name, n.before, n.after]), [...SERVERS, ...AGENTS].map((n) => [n, START, TO]))

  // Each node went v1.30 then v1.31, by k3s starts and by the kubelet versions the API saw.
  for (const name of [...SERVERS, ...AGENTS]) {
    assert.deepEqual(api.k3sLog.filter((e) => e.node === name && e.event === 'k3s-started').map((e) => e.version), [V130, TO], name)
    const versions = api.changes.of('nodes', name).filter((c) => 'kubeletVersion' in c.diff).map((c) => c.diff.kubeletVersion[1])
    assert.deepEqual(versions, [START, V130, TO], name)
  }
  // The whole cluster reached v1.30 before any node started v1.31.
  const lastAt130 = Math.max(...api.k3sLog.filter((e) => e.version === V130).map((e) => e.seq))
  const firstAt131 = Math.min(...api.k3sLog.filter((e) => e.version === TO).map((e) => e.seq))
  assert.ok(lastAt130 < firstAt131)

  // Replaying kubelet versions: no agent was ever newer than a server, and no node skipped a minor.
  const version = new Map([...SERVERS, ...AGENTS].map((n) => [n, START]))
  for (const change of api.changes.of('nodes')) {
    if (!('kubeletVersion' in change.diff) || change.type !== 'MODIFIED') continue
    const [before, after] = change.diff.kubeletVersion as [string, string]
    assert.ok(Number(after.split('.')[1]) - Number(before.split('.')[1]) <= 1, `${change.name} went ${before} → ${after}`)
    version.set(change.name, after)
    const oldestServer = SERVERS.map((s) => version.get(s) as string).sort(compareVersions)[0]
    for (const agent of AGENTS) assert.ok(compareVersions(version.get(agent) as string, oldestServer) <= 0, `${agent} at ${version.get(agent)} while a server was at ${oldestServer}`)
  }

  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
})
