import assert from 'node:assert/strict'
import {test} from 'node:test'

import {FROM, TO, journals, lab, nodeStates, parseJson, spawnCli} from './helpers.js'

test('killed while undoing: --resume refuses, `homelab k8s rollback` finishes the undo from the journal', async (t) => {
  const homelab = await lab(t, {config: {upgrade: {timeouts: {nodeReady: '3s'}}}})
  const {api} = homelab
  api.nodes.behave('server-2', {neverReady: true})
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => e.type === 'compensation-started' && e.id === 'restore-binary:server-2')
  cli.child.kill('SIGKILL')
  await cli.exited
  api.nodes.behave('server-2', {neverReady: false})

  const [crashed] = await journals(homelab)
  assert.equal(crashed.status, 'running')
  assert.ok(crashed.compensations.some((c) => c.state !== 'compensated'))

  // Half undone is not a state to go forward from.
  const resume = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes'])
  assert.equal(resume.exitCode, 2, resume.stderr)
  assert.match(resume.stderr, new RegExp(`run ${crashed.id} is being rolled back and cannot be resumed \\(fix: finish the undo with homelab k8s rollback ${crashed.id}\\)`))

  const rollback = await homelab.cli(['k8s', 'rollback', '--yes', '--json'])
  assert.equal(rollback.exitCode, 0, `${rollback.stdout}\n${rollback.stderr}`)
  const result = parseJson<{outcome: string; runIds: string[]}>(rollback.stdout)
  assert.equal(result.outcome, 'compensated')
  assert.deepEqual(result.runIds, [crashed.id])

  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  assert.equal(api.store.list('restores.velero.io').length, 1)
  assert.ok(api.changes.of('restores').some((c) => c.diff.phase?.[1] === 'Completed'))
  assert.equal((await journals(homelab))[0].status, 'compensated')
  assert.equal(api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0, 'the lock was released')
})
