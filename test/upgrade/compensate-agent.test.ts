import assert from 'node:assert/strict'
import {test} from 'node:test'

import {FROM, SERVERS, TO, cordonPatches, journals, lab, nodeStates, parseJson} from './helpers.js'

test('an agent drain blocked by a PodDisruptionBudget past the drain timeout: every change undone, Velero restore, exit 4', async (t) => {
  const homelab = await lab(t, {
    nodes: [
      ...SERVERS.map((name) => ({name, role: 'server' as const})),
      {name: 'agent-1', role: 'agent', cordoned: true},
      {name: 'agent-2', role: 'agent'},
      {name: 'agent-3', role: 'agent'},
    ],
    config: {upgrade: {agentConcurrency: 2, drain: {timeout: '3s'}}},
  })
  const {api} = homelab
  // A database on agent-3 whose budget allows one disruption when pre-flight looks...
  api.workloads.addReplicaSet({name: 'db', namespace: 'default', podsOn: ['agent-3']})
  api.pdbs.add({name: 'db', namespace: 'default', selector: {app: 'db'}, minAvailable: 0})
  const db = api.pods.list({namespace: 'default', labelSelector: 'app=db'})[0]
  // ...and none once the agents are being drained (someone raised minAvailable meanwhile).
  const tightened = (async () => {
    await api.waitFor(() => cordonPatches(homelab).find((p) => p.node.startsWith('agent-') && p.cordon), {timeoutMs: 60_000, message: 'the agents stage'})
    api.store.mutate('poddisruptionbudgets.policy', 'default', 'db', (pdb) => {
      pdb.spec = {...pdb.spec, minAvailable: 1}
    }, {source: 'test'})
  })()

  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  await tightened
  assert.equal(run.exitCode, 4, `${run.stdout}\n${run.stderr}`)
  const result = parseJson<{outcome: string; error: {message: string}; backups: Array<{velero: string}>}>(run.stdout)
  assert.equal(result.outcome, 'compensated')
  assert.match(result.error.message, /draining agent-3 timed out after 3s: .*disruption budget/)

  // The budget said no until the drain's timeout ran out, not just once.
  const refused = api.audit.matching({verb: 'create', resource: 'pods', subresource: 'eviction', name: db.metadata.name}).filter((e) => e.code === 429)
  assert.ok(refused.length >= 2, `expected the eviction to be retried, got ${refused.length} attempt(s)`)
  assert.ok(refused.at(-1)!.at - refused[0].at >= 2500, `gave up ${refused.at(-1)!.at - refused[0].at} ms after the first refusal, before the 3s timeout`)
  assert.equal(api.pods.get('default', db.metadata.name)?.spec?.nodeName, 'agent-3')

  // Servers, the agents that were done, and agent-3 all back where they were.
  for (const [name, state] of await nodeStates(homelab)) {
    assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: name === 'agent-1'}, name)
  }
  // agent-1 was cordoned before the run: never cordoned nor uncordoned by it, upgraded and put back.
  assert.deepEqual(cordonPatches(homelab).filter((p) => p.node === 'agent-1'), [])
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'agent-1' && e.event === 'k3s-started').map((e) => e.version), [TO, FROM])
  // agent-3 never got the new binary: it was only cordoned, and uncordoned again.
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'agent-3'), [])
  assert.deepEqual(cordonPatches(homelab).filter((p) => p.node === 'agent-3').map((p) => p.cordon), [true, false])

  const restores = api.store.list('restores.velero.io')
  assert.equal(restores.length, 1)
  assert.equal(restores[0].spec?.backupName, result.backups[0].velero)
  assert.ok(api.changes.of('restores').some((c) => c.diff.phase?.[1] === 'Completed'), 'the restore never completed')
  assert.deepEqual(api.audit.matching({verb: ['delete', 'deletecollection'], resource: 'pods'}), [])

  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'compensated')
})
