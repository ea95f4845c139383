import assert from 'node:assert/strict'
import {test} from 'node:test'

import {AGENTS, FROM, TO, journals, lab, nodeStates, parseJson, spawnCli} from './helpers.js'

test('Ctrl-C while agents drain: exit 130, journal saved, no node left half-done; --resume finishes', async (t) => {
  const homelab = await lab(t)
  const {api} = homelab
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => e.type === 'log' && e.step === 'agents' && e.message === 'draining')
  cli.child.kill('SIGINT')
  const exit = await cli.exited
  assert.equal(exit.code, 130, cli.stderr().slice(-3000))
  assert.match(cli.stderr(), /interrupted; finishing or undoing the node action in flight/)

  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'interrupted')
  assert.ok(cli.events.some((e) => e.type === 'run-finished' && e.outcome === 'interrupted'))

  // Every agent is either untouched or done: nothing cordoned, no binary ahead of its kubelet.
  const states = await nodeStates(homelab)
  for (const agent of AGENTS) {
    const state = states.get(agent)
    assert.ok(state)
    assert.equal(state.cordoned, false, `${agent} left cordoned`)
    assert.equal(state.ready, true, `${agent} left NotReady`)
    assert.equal(state.disk, state.kubelet, `${agent} left with k3s ${state.disk} on disk but ${state.kubelet} running`)
    assert.ok([FROM, TO].includes(state.kubelet))
  }
  assert.ok([...states.values()].some((s) => s.kubelet === FROM), 'the interrupt came too late to prove anything')
  assert.equal(api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0, 'the lock was released')

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', journal.id, '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, `${resumed.stdout}\n${resumed.stderr}`)
  assert.equal(parseJson<{outcome: string}>(resumed.stdout).outcome, 'succeeded')
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
  assert.equal(api.store.list('backups.velero.io').length, 1)
  assert.equal((await journals(homelab))[0].status, 'succeeded')
})
