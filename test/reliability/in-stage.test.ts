/**
 * Issue 9, fault matrix: the faults met in the middle of a stage, after the first change. Each
 * case asserts the end state (version on the API and on disk, Ready), the journal, the exit code
 * and that nothing is left cordoned by us. The cases tested elsewhere are listed in ELSEWHERE
 * below, and this file checks that those tests still exist under the names given.
 */
import assert from 'node:assert/strict'
import {readFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {readServiceLog, setStartFailure} from '../sim/node-fixture.js'
import {FROM, TO, cordonPatches, journals, lab, nodeStates, parseJson, spawnCli, type RunFile} from '../upgrade/helpers.js'

/** Cases covered by a test elsewhere: file and test name (checked below, so the table cannot rot). */
export const ELSEWHERE: ReadonlyArray<{fault: string; file: string; test: string}> = [
  {fault: 'a node that never becomes Ready', file: 'test/upgrade/compensate-server.test.ts', test: 'server-2 never becomes Ready at the target'},
  {fault: 'a node that cannot start even at its old version', file: 'test/upgrade/end-state-report.test.ts', test: 'after a compensation that could not finish'},
  {fault: 'eviction blocked by a PodDisruptionBudget until the drain timeout', file: 'test/upgrade/compensate-agent.test.ts', test: 'an agent drain blocked by a PodDisruptionBudget past the drain timeout'},
  {fault: 'the lock held by a live run (exit 6)', file: 'test/upgrade/lock.test.ts', test: 'while a run is upgrading, a second run'},
  {fault: 'the lock held by an expired run (taken over)', file: 'test/upgrade/lock.test.ts', test: 'an expired one is taken over'},
  {fault: 'SIGINT during the agent stage', file: 'test/upgrade/ctrl-c.test.ts', test: 'Ctrl-C while agents drain'},
  {fault: 'SIGKILL during the agent stage, then --resume', file: 'test/upgrade/kill-resume.test.ts', test: 'SIGKILL in the middle of the agent stage'},
  {fault: 'SIGKILL during compensation, then rollback', file: 'test/upgrade/kill-rollback.test.ts', test: 'killed while undoing'},
  {fault: 'SIGKILL at 25 random points, then --resume', file: 'test/reliability/crash-consistency.test.ts', test: 'seeded random points, each followed by --resume'},
]

test('the cases tested elsewhere still have their tests', async () => {
  const root = path.resolve(import.meta.dirname, '..', '..')
  for (const entry of ELSEWHERE) {
    const text = await readFile(path.join(root, entry.file), 'utf8')
    assert.ok(text.includes(entry.test), `${entry.file} has no test "${entry.test}" (${entry.fault})`)
  }
})

type State = {kubelet: string; disk: string; ready: boolean; cordoned: boolean}

/** Every node at `version` (or per node), Ready, not cordoned; and none carries our cordon mark. */
async function assertEndState(homelab: Homelab, expected: string | ((name: string) => Partial<State> & {kubelet: string})) {
  for (const [name, state] of await nodeStates(homelab)) {
    const want = typeof expected === 'string' ? {kubelet: expected} : expected(name)
    assert.deepEqual(state, {disk: want.kubelet, ready: true, cordoned: false, ...want}, name)
  }
  assertNothingCordonedByUs(homelab)
}

function assertNothingCordonedByUs(homelab: Homelab) {
  const cordoned = new Set<string>()
  for (const patch of cordonPatches(homelab)) patch.cordon ? cordoned.add(patch.node) : cordoned.delete(patch.node)
  assert.deepEqual([...cordoned], [], 'left cordoned by us')
  for (const node of homelab.nodes) {
    assert.equal(homelab.api.nodes.get(node.spec.name)?.metadata.annotations?.['homelab.dev/cordoned-by'], undefined, `${node.spec.name} still carries our cordon annotation`)
  }
}

async function lastJournal(homelab: Homelab): Promise<RunFile> {
  const all = await journals(homelab)
  assert.ok(all.length > 0, 'no journal written')
  return all.at(-1) as RunFile
}

function assertLockReleased(homelab: Homelab) {
  assert.equal(homelab.api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0, 'the lock was released')
}

interface RunJson {
  outcome: string
  error?: {message: string; hint?: string}
  backups: Array<{velero?: string}>
  nodes: Array<{name: string; after?: string; end?: {healthy: boolean; problems: string[]}}>
}

async function upgrade(homelab: Homelab, extra: string[] = []) {
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json', ...extra])
  return {...run, result: parseJson<RunJson>(run.stdout), all: `${run.stdout}\n${run.stderr}`}
}

const SMALL = {servers: 1, agents: 2}

test('SSH dropped during a binary upload: the copy is made again on a new connection, the run finishes', async (t) => {
  const homelab = await lab(t, SMALL)
  homelab.node('agent-1').ssh.faults?.dropDuringUpload(1)
  const run = await upgrade(homelab)
  assert.equal(homelab.node('agent-1').ssh.faults?.dropped, 1, 'the fault never fired')
  assert.equal(run.exitCode, 0, run.all)
  assert.equal(run.result.outcome, 'succeeded')
  await assertEndState(homelab, TO)
  assert.equal((await lastJournal(homelab)).status, 'succeeded')
  assertLockReleased(homelab)
})

test('SSH dropped during a restart: the outcome is read from the API on a new connection, the run finishes', async (t) => {
  const homelab = await lab(t, SMALL)
  homelab.node('agent-2').ssh.faults?.dropAfterCommand(/systemctl restart k3s-agent/, 1)
  const run = await upgrade(homelab)
  assert.equal(homelab.node('agent-2').ssh.faults?.dropped, 1, 'the fault never fired')
  assert.equal(run.exitCode, 0, run.all)
  await assertEndState(homelab, TO)
  assert.equal((await lastJournal(homelab)).status, 'succeeded')
  // Restarted once: the lost answer did not make it restart again.
  assert.deepEqual(homelab.api.k3sLog.filter((e) => e.node === 'agent-2' && e.event === 'k3s-started').map((e) => e.version), [TO])
})

test('Ready but at the wrong version: compensated, every node back at the old version, exit 4', async (t) => {
  const homelab = await lab(t, {...SMALL, config: {upgrade: {timeouts: {nodeReady: '3s'}}}})
  // agent-1's service keeps running the old k3s whatever binary is in place.
  homelab.api.nodes.behave('agent-1', {reportsVersion: FROM})
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 4, run.all)
  assert.equal(run.result.outcome, 'compensated')
  assert.match(run.result.error?.message ?? '', /waiting for node agent-1 to be Ready at v1\.31\.5\+k3s1: agent-1 is Ready, but its kubelet runs v1\.31\.4\+k3s1 \(node version mismatch/)
  await assertEndState(homelab, FROM)
  const journal = await lastJournal(homelab)
  assert.equal(journal.status, 'compensated')
  assert.ok(journal.compensations.every((c) => c.state === 'compensated'))
  assert.equal(homelab.api.store.list('restores.velero.io').length, 1)
})

test('the Velero restore fails during compensation: nodes back, the restore named as not done, exit 5', async (t) => {
  const homelab = await lab(t, SMALL)
  await setStartFailure(homelab.node('agent-2').fixture, 'level=fatal msg="flag provided but not defined: -some-removed-flag"', {version: TO})
  homelab.api.velero?.failNextRestore('Failed', 'restore of some items failed')
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 5, run.all)
  assert.equal(run.result.outcome, 'compensation-incomplete')
  assert.match(run.all, /restore/i)
  assert.match(run.all, /velero restore create --from-backup pre-upgrade-v1-31-5-k3s1-/)
  const journal = await lastJournal(homelab)
  assert.equal(journal.status, 'compensation-incomplete')
  const failed = journal.compensations.filter((c) => c.state !== 'compensated').map((c) => c.id)
  assert.deepEqual(failed, [failed.find((id) => id.startsWith('restore-backup'))].filter(Boolean))
  assert.equal(failed.length, 1, JSON.stringify(journal.compensations))
  // The binaries went back before the restore was tried.
  await assertEndState(homelab, FROM)
})

test('API unreachable for 20 s while the only server restarts: ridden through, exit 0', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 1, api: {apiDownOnServerRestartMs: 20_000}, config: {upgrade: {timeouts: {apiReady: '60s', nodeReady: '60s'}}}})
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 0, run.all)
  await assertEndState(homelab, TO)
  assert.equal((await lastJournal(homelab)).status, 'succeeded')
})

test('API unreachable longer than the timeout after the only server restarts: compensated once it is back, exit 4', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 1, api: {apiDownOnServerRestartMs: 8_000}, config: {upgrade: {timeouts: {apiReady: '3s', nodeReady: '20s'}}}})
  const {api} = homelab
  // The new release keeps the API away 8 s, longer than upgrade.timeouts.apiReady; the old one starts as usual.
  const newStarted = (async () => {
    await api.waitFor(() => api.k3sLog.find((e) => e.node === 'server-1' && e.event === 'k3s-started' && e.version === TO), {timeoutMs: 60_000, message: 'server-1 started at the target'})
    api.setApiDownOnServerRestart(500)
  })()
  const run = await upgrade(homelab)
  await newStarted
  assert.equal(run.exitCode, 4, run.all)
  assert.match(run.result.error?.message ?? '', /API server|readyz|apiserver/i)
  await assertEndState(homelab, FROM)
  const journal = await lastJournal(homelab)
  assert.equal(journal.status, 'compensated')
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'agent-1'), [], 'the agent was not touched')
  assertLockReleased(homelab)
})

test('disk full on a node: the upload fails, nothing swapped there, compensated, exit 4', async (t) => {
  const homelab = await lab(t, SMALL)
  homelab.node('agent-2').ssh.faults?.diskFull(true)
  const run = await upgrade(homelab)
  homelab.node('agent-2').ssh.faults?.diskFull(false)
  assert.equal(run.exitCode, 4, run.all)
  assert.match(run.result.error?.message ?? '', /agent-2.*no space left on device/i)
  assert.match(run.result.error?.hint ?? '', /free|space/i)
  await assertEndState(homelab, FROM)
  assert.deepEqual(homelab.api.k3sLog.filter((e) => e.node === 'agent-2'), [], 'agent-2 was never restarted')
  assert.equal((await lastJournal(homelab)).status, 'compensated')
})

test("one agent's restart failing among eight in parallel: every agent back, exit 4", async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 8, config: {upgrade: {agentConcurrency: 8}}})
  // The new release cannot start on agent-5 (say, a flag it no longer accepts); the old one can.
  await setStartFailure(homelab.node('agent-5').fixture, 'level=fatal msg="flag provided but not defined: -some-removed-flag"', {version: TO})
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 4, run.all)
  assert.match(run.result.error?.message ?? '', /agent-5/)
  await assertEndState(homelab, FROM)
  const journal = await lastJournal(homelab)
  assert.equal(journal.status, 'compensated')
  // The eight ran at once.
  const agents = journal.steps.find((s) => s.name === 'agents')
  assert.equal(Object.keys(agents?.actions ?? {}).length, 8)
})

test('a restart that fails once succeeds on the compensating restart: node back at the old version, exit 4', async (t) => {
  const homelab = await lab(t, SMALL)
  const agent = homelab.node('agent-1').fixture
  await setStartFailure(agent, 'level=fatal msg="starting kubernetes: preparing server: timed out"')
  // The failure is transient: gone once it happened.
  const healed = (async () => {
    const deadline = Date.now() + 60_000
    while (!(await readServiceLog(agent)).some((e) => e.args[0] === 'start-failed')) {
      assert.ok(Date.now() < deadline, 'agent-1 never failed to start')
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    await setStartFailure(agent, null)
  })()
  const run = await upgrade(homelab)
  await healed
  assert.equal(run.exitCode, 4, run.all)
  await assertEndState(homelab, FROM)
  const journal = await lastJournal(homelab)
  assert.equal(journal.status, 'compensated')
  assert.ok(journal.compensations.every((c) => c.state === 'compensated'))
})

test('SIGINT during the server stage: exit 130, no server half-done; --resume finishes', async (t) => {
  const homelab = await lab(t)
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => e.type === 'log' && e.step === 'servers' && e.node === 'server-2' && e.message === 'cordoned')
  cli.child.kill('SIGINT')
  const exit = await cli.exited
  assert.equal(exit.code, 130, cli.stderr().slice(-3000))
  const journal = await lastJournal(homelab)
  assert.equal(journal.status, 'interrupted')
  for (const [name, state] of await nodeStates(homelab)) {
    assert.equal(state.cordoned, false, `${name} left cordoned`)
    assert.equal(state.ready, true, `${name} left NotReady`)
    assert.equal(state.disk, state.kubelet, `${name}: ${state.disk} on disk, ${state.kubelet} running`)
  }
  assert.equal((await nodeStates(homelab)).get('agent-1')?.kubelet, FROM, 'the agents were not started')
  assertLockReleased(homelab)

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', journal.id, '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, `${resumed.stdout}\n${resumed.stderr}`)
  await assertEndState(homelab, TO)
  assert.equal(homelab.api.store.list('backups.velero.io').length, 1)
  assert.equal((await lastJournal(homelab)).status, 'succeeded')
})
