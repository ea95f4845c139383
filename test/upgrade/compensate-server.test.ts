import assert from 'node:assert/strict'
import {test} from 'node:test'

import {AGENTS, FROM, TO, breakUntilCompensated, cordonPatches, journals, lab, nodeStates, parseJson} from './helpers.js'

test('server-2 never becomes Ready at the target: every change undone, Velero restore, exit 4; a node cordoned before stays cordoned', async (t) => {
  const homelab = await lab(t, {
    nodes: [
      {name: 'server-1', role: 'server', cordoned: true},
      {name: 'server-2', role: 'server'},
      {name: 'server-3', role: 'server'},
      ...AGENTS.map((name) => ({name, role: 'agent' as const})),
    ],
    config: {upgrade: {timeouts: {nodeReady: '4s'}}},
  })
  const {api} = homelab
  // The new version is broken on server-2; the old one still works once it is put back.
  const healed = breakUntilCompensated(homelab, 'server-2', TO)

  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  await healed
  assert.equal(run.exitCode, 4, `${run.stdout}\n${run.stderr}`)
  const result = parseJson<{outcome: string; error: {message: string}; backups: Array<{velero: string}>}>(run.stdout)
  assert.equal(result.outcome, 'compensated')
  assert.match(result.error.message, /server-2 to be Ready at v1\.31\.5\+k3s1/)

  // Every node back at its version, on disk and running; only the node cordoned before is cordoned.
  const states = await nodeStates(homelab)
  for (const [name, state] of states) {
    assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: name === 'server-1'}, name)
  }
  // server-1 was upgraded and put back without us ever cordoning or uncordoning it.
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'server-1' && e.event === 'k3s-started').map((e) => e.version), [TO, FROM])
  assert.deepEqual(cordonPatches(homelab).filter((p) => p.node === 'server-1'), [])
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'server-2' && e.event === 'k3s-started').map((e) => e.version), [TO, FROM])
  // Nothing beyond the failure was touched.
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'server-3' || AGENTS.includes(e.node)), [])
  assert.deepEqual(cordonPatches(homelab).filter((p) => p.node !== 'server-2').map((p) => p.node), [])

  // The Velero restore from the pre-upgrade backup, after the nodes were back.
  const restores = api.store.list('restores.velero.io')
  assert.equal(restores.length, 1)
  assert.equal(restores[0].spec?.backupName, result.backups[0].velero)
  assert.equal(restores[0].spec?.existingResourcePolicy, 'update')
  const restoreCompleted = api.changes.of('restores').find((c) => c.diff.phase?.[1] === 'Completed')
  assert.ok(restoreCompleted, 'the restore never completed')
  assert.ok(restoreCompleted.seq > (api.k3sLog.at(-1)?.seq ?? Infinity))

  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'compensated')
  assert.ok(journal.compensations.every((c) => c.state === 'compensated'))
})
