import assert from 'node:assert/strict'
import {test} from 'node:test'

import {listSnapshots} from '../sim/node-fixture.js'
import {AGENTS, SERVERS, TO, journals, lab, nodeStates, parseJson, spawnCli} from './helpers.js'

test('SIGKILL in the middle of the agent stage, then --resume: finishes with one backup', async (t) => {
  const homelab = await lab(t)
  const {api} = homelab
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  // An agent has its new binary but k3s was not restarted on it yet; the other is mid-way too.
  const swapped = await cli.waitForEvent((e) => e.type === 'log' && e.step === 'agents' && /binary swapped/.test(e.message ?? ''))
  cli.child.kill('SIGKILL')
  assert.equal((await cli.exited).signal, 'SIGKILL')
  const killedAt = api.audit.at(-1)?.seq ?? 0

  const [crashed] = await journals(homelab)
  assert.equal(crashed.status, 'running', 'a killed run cannot have written its end')
  assert.equal(crashed.steps.find((s) => s.name === 'agents')?.actions[swapped.node as string]?.state, 'running')
  assert.ok(await nodeStates(homelab).then((s) => [...s.values()].some((n) => n.cordoned)), 'the kill left a node cordoned (else this test proves little)')

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, `${resumed.stdout}\n${resumed.stderr}`)
  const result = parseJson<{outcome: string; runIds: string[]}>(resumed.stdout)
  assert.equal(result.outcome, 'succeeded')
  assert.deepEqual(result.runIds, [crashed.id], 'the same run was resumed')

  // One backup, one etcd snapshot: the resumed run followed the backup it had recorded.
  assert.equal(api.store.list('backups.velero.io').length, 1)
  assert.equal(api.audit.matching({verb: 'create', resource: 'backups', code: 201}).length, 1)
  assert.equal((await listSnapshots(homelab.node('server-1').fixture)).length, 1)
  // The servers, done before the kill, were not restarted again.
  assert.deepEqual(api.k3sLog.filter((e) => SERVERS.includes(e.node) && e.seq > killedAt), [])
  for (const agent of AGENTS) {
    assert.deepEqual(api.k3sLog.filter((e) => e.node === agent && e.event === 'k3s-started').map((e) => e.version), [TO], agent)
  }

  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
  for (const name of [...SERVERS, ...AGENTS]) {
    assert.equal(api.nodes.get(name)?.metadata.annotations?.['homelab.dev/cordoned-by'], undefined, `${name} still carries our cordon annotation`)
  }
  const [done] = await journals(homelab)
  assert.equal(done.status, 'succeeded')
  assert.equal(api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0, 'the lock was released')
})
