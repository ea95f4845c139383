import assert from 'node:assert/strict'
import {test} from 'node:test'

import {readServiceLog} from '../sim/node-fixture.js'
import {TO, journals, lab, nodeStates, parseJson} from './helpers.js'

// Issue 9, defect 2: each node is restarted (and, on failure, told to be restarted) with the
// service manager that defines its service there, in a homelab that mixes systemd and OpenRC.
test('a homelab mixing systemd and OpenRC nodes: each is restarted through its own manager, and the plan says which', async (t) => {
  const homelab = await lab(t, {
    nodes: [
      {name: 'server-1', role: 'server', serviceManager: 'systemd'},
      {name: 'agent-1', role: 'agent', serviceManager: 'openrc'},
      {name: 'agent-2', role: 'agent', serviceManager: 'systemd'},
    ],
  })
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const result = parseJson<{plans: Array<{servers: Array<{name: string; serviceManager: string}>; agents: Array<{name: string; serviceManager: string}>}>}>(run.stdout)
  const managers = Object.fromEntries([...result.plans[0].servers, ...result.plans[0].agents].map((n) => [n.name, n.serviceManager]))
  assert.deepEqual(managers, {'server-1': 'systemd', 'agent-1': 'openrc', 'agent-2': 'systemd'})

  const restartedWith = async (name: string) => {
    const log = await readServiceLog(homelab.node(name).fixture)
    return [...new Set(log.filter((e) => (e.source === 'systemctl' || e.source === 'rc-service') && e.args.includes('restart')).map((e) => e.source))]
  }
  assert.deepEqual(await restartedWith('server-1'), ['systemctl'])
  assert.deepEqual(await restartedWith('agent-1'), ['rc-service'])
  assert.deepEqual(await restartedWith('agent-2'), ['systemctl'])
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'succeeded')
})
