import assert from 'node:assert/strict'
import {test} from 'node:test'

import {renderResult} from '../../commands/_cli/upgrade-output.js'
import type {UpgradeResult} from '../../src/upgrade/run-upgrade.js'
import {AGENTS, FROM, TO, lab, parseJson} from './helpers.js'

// Issue 9, defect 1: a failed compensation once reported `server-2 (server): v → v` for a server
// that was NotReady. The report must say each node's real end state, read after the run.
test('after a compensation that could not finish, the report marks the NotReady server and only it', async (t) => {
  const homelab = await lab(t, {
    nodes: [
      {name: 'server-1', role: 'server'},
      {name: 'server-2', role: 'server'},
      {name: 'server-3', role: 'server'},
      ...AGENTS.map((name) => ({name, role: 'agent' as const})),
    ],
    config: {upgrade: {timeouts: {nodeReady: '3s'}}},
  })
  // Broken at every version: the compensating restart back to FROM cannot bring it Ready either.
  homelab.api.nodes.behave('server-2', {neverReady: true})

  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  assert.equal(run.exitCode, 5, `${run.stdout}\n${run.stderr}`)
  const result = parseJson<UpgradeResult>(run.stdout)
  assert.equal(result.outcome, 'compensation-incomplete')

  const byName = new Map(result.nodes.map((n) => [n.name, n]))
  const broken = byName.get('server-2')
  assert.ok(broken?.end, 'server-2 has no end state')
  assert.equal(broken.end.healthy, false)
  assert.equal(broken.end.ready, false)
  assert.equal(broken.end.cordoned, false)
  assert.match(broken.end.problems.join('; '), /NotReady/)
  for (const name of ['server-1', 'server-3', ...AGENTS]) {
    const node = byName.get(name)
    assert.deepEqual({healthy: node?.end?.healthy, after: node?.after, onDisk: node?.end?.onDisk, cordoned: node?.end?.cordoned}, {healthy: true, after: FROM, onDisk: FROM, cordoned: false}, name)
  }

  const text = renderResult(result)
  assert.match(text, /server-2 \(server\): v1\.31\.4\+k3s1 → v1\.31\.4\+k3s1 — NOT HEALTHY: NotReady/)
  assert.match(text, /server-1 \(server\): v1\.31\.4\+k3s1 → v1\.31\.4\+k3s1, Ready\n/)
})
