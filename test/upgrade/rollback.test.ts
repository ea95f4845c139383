import assert from 'node:assert/strict'
import {test} from 'node:test'

import {setStartFailure} from '../sim/node-fixture.js'
import {FROM, SERVERS, TO, journals, lab, nodeStates, parseJson} from './helpers.js'

test('--on-failure=stop only uncordons; `homelab k8s rollback <id>` then puts everything back', async (t) => {
  const homelab = await lab(t)
  const {api} = homelab
  // k3s fails to start on agent-2 (say, a flag the new version no longer accepts).
  await setStartFailure(homelab.node('agent-2').fixture, 'level=fatal msg="flag provided but not defined: -some-removed-flag"')

  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--on-failure', 'stop'])
  assert.equal(run.exitCode, 5, `${run.stdout}\n${run.stderr}`)
  assert.match(run.stdout, /stopped \(--on-failure=stop\): nodes were uncordoned/)
  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'failed')
  assert.match(run.stdout, new RegExp(`undo: +homelab k8s rollback ${journal.id}`))
  // The etcd last resort names each server's own data dir.
  for (const server of ['server-2', 'server-3']) {
    const dataDir = homelab.node(server).fixture.dataDir
    assert.ok(run.stdout.includes(`on ${server}: sudo rm -rf ${dataDir}/server/db/ && sudo systemctl start k3s`), `no etcd step for ${server} with ${dataDir}:\n${run.stdout}`)
  }

  // Stopped where it failed: no node cordoned, the servers (and maybe agent-1) left at the target.
  const stopped = await nodeStates(homelab)
  for (const [name, state] of stopped) assert.equal(state.cordoned, false, `${name} left cordoned`)
  for (const server of SERVERS) assert.equal(stopped.get(server)?.kubelet, TO)
  assert.equal(stopped.get('agent-2')?.disk, TO)
  assert.equal(stopped.get('agent-2')?.ready, false)
  assert.equal(api.store.list('restores.velero.io').length, 0, 'stop must not restore the backup')

  // The operator sees why, and asks for everything back.
  await setStartFailure(homelab.node('agent-2').fixture, null)
  const rollback = await homelab.cli(['k8s', 'rollback', journal.id, '--yes', '--json'])
  assert.equal(rollback.exitCode, 0, `${rollback.stdout}\n${rollback.stderr}`)
  assert.equal(parseJson<{outcome: string}>(rollback.stdout).outcome, 'compensated')

  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  const restores = api.store.list('restores.velero.io')
  assert.equal(restores.length, 1)
  assert.equal(restores[0].spec?.backupName, journal.data.veleroBackup)
  assert.ok(api.changes.of('restores').some((c) => c.diff.phase?.[1] === 'Completed'), 'the restore never completed')
  const [after] = await journals(homelab)
  assert.equal(after.status, 'compensated')
  assert.ok(after.compensations.every((c) => c.state === 'compensated'))

  // Rolled back is final: it can be neither resumed nor rolled back again.
  const resume = await homelab.cli(['k8s', 'upgrade', '--resume', journal.id, '--yes'])
  assert.equal(resume.exitCode, 2, resume.stderr)
  assert.match(resume.stderr, /cannot be resumed/)
})
