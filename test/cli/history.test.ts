/**
 * `homelab k8s history` (issue 10) after three real runs against one simulated homelab: a
 * success, a failure that was compensated, and a run killed with SIGKILL then finished with
 * --resume. The list and the detail come from the journals the CLI wrote.
 */
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {breakUntilCompensated, journals, lab, parseJson, spawnCli, TO} from '../upgrade/helpers.js'

const TO2 = 'v1.31.6+k3s1'

interface Summary {
  id: string
  distribution: string
  from: string[]
  to: string
  outcome: string
  durationMs: number
  nodes: string[]
  backups: {velero?: string; etcdSnapshot?: {node: string; name: string}}
  resumed: boolean
  error?: {message: string}
}

test('history lists a success, a compensated failure and a resumed run, and shows each one', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 1, releases: [TO, TO2]})
  const history = async (args: string[] = []) => {
    const result = await homelab.cli(['k8s', 'history', ...args])
    assert.equal(result.exitCode, 0, `${result.stdout}\n${result.stderr}`)
    return result.stdout
  }

  assert.match(await history(), /No runs yet/)

  const ok = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  assert.equal(ok.exitCode, 0, ok.stderr)

  const healed = breakUntilCompensated(homelab, 'agent-1', TO2)
  const failed = await homelab.cli(['k8s', 'upgrade', '--to', TO2, '--yes', '--json'])
  await healed
  assert.equal(failed.exitCode, 4, `${failed.stdout}\n${failed.stderr}`)

  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO2, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => e.type === 'log' && e.step === 'agents' && /binary swapped/.test(e.message ?? ''))
  cli.child.kill('SIGKILL')
  await cli.exited
  const killed = parseJson<{runs: Summary[]}>(await history(['--json'])).runs[0]
  assert.equal(killed.outcome, 'abandoned', 'a killed run is told apart from a live one')
  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, `${resumed.stdout}\n${resumed.stderr}`)

  // --json: newest first, with what each journal says.
  const written = await journals(homelab)
  const {runs, more} = parseJson<{runs: Summary[]; more: number}>(await history(['--json']))
  assert.equal(more, 0)
  assert.deepEqual(runs.map((r) => r.id), written.map((j) => j.id).reverse())
  const [last, compensated, first] = runs
  assert.deepEqual(runs.map((r) => [r.outcome, r.from, r.to, r.resumed]), [
    ['succeeded', [TO], TO2, true],
    ['compensated', [TO], TO2, false],
    ['succeeded', ['v1.31.4+k3s1'], TO, false],
  ])
  assert.equal(last.id, killed.id, 'the resumed run is the killed one')
  for (const run of runs) {
    assert.equal(run.distribution, 'k3s')
    assert.deepEqual(run.nodes, ['server-1', 'agent-1'])
    assert.match(run.backups.velero ?? '', new RegExp(`^pre-upgrade-${run.to.replace(/[.+]/g, '-')}-`), JSON.stringify(run.backups))
    assert.equal(run.backups.etcdSnapshot?.node, 'server-1')
    assert.ok(run.durationMs > 0)
  }
  assert.match(compensated.error?.message ?? '', /agent-1/)
  assert.equal(first.error, undefined)

  // The table.
  const table = await history()
  const header = table.split('\n')[0]
  for (const column of ['ID', 'STARTED', 'DISTRIBUTION', 'FROM → TO', 'OUTCOME', 'DURATION', 'NODES', 'BACKUPS']) assert.ok(header.includes(column), column)
  const row = (id: string) => table.split('\n').find((line) => line.startsWith(id)) ?? ''
  assert.match(row(last.id), new RegExp(`k3s\\s+v1\\.31\\.5\\+k3s1 → v1\\.31\\.6\\+k3s1\\s+succeeded \\(resumed\\)\\s+\\S+\\s+server-1,agent-1\\s+velero ${last.backups.velero}, etcd ${last.backups.etcdSnapshot?.name}`))
  assert.match(row(compensated.id), /compensated/)
  assert.equal((await history(['--limit', '1'])).includes('2 older runs not shown'), true)
  assert.equal(parseJson<{runs: Summary[]; more: number}>(await history(['--limit', '2', '--json'])).more, 1)

  // One run: steps, node actions with times, the error, the compensations.
  const failedRun = await history([compensated.id])
  assert.match(failedRun, new RegExp(`^Run ${compensated.id} \\(`))
  assert.match(failedRun, /outcome\s+compensated, compensations ran/)
  assert.match(failedRun, /error\s+.*agent-1/)
  // The failed node action, undone since, keeps its error.
  assert.match(failedRun, /\n {4}compensated agent-1 {2}\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ → \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(\S+\)\n {16}error: timed out .*agent-1/)
  assert.match(failedRun, /\n {2}pending {5}Verify the cluster\n/)
  assert.match(failedRun, /Compensations \(newest first\):\n\s+compensated\s+/)
  const detail = parseJson<{steps: Array<{name: string; attempts: number; actions: Array<{node: string; state: string; startedAt: string}>}>}>(await history([last.id, '--json']))
  const agents = detail.steps.find((s) => s.name === 'agents')
  assert.equal(agents?.attempts, 2, 'the resumed step was started twice')
  assert.deepEqual(agents?.actions.map((a) => [a.node, a.state]), [['agent-1', 'done']])

  // An id that names no run: one line, exit 2.
  const missing = await homelab.cli(['k8s', 'history', '20990101-000000-abcdef'])
  assert.equal(missing.exitCode, 2)
  assert.match(missing.stderr, /^homelab: no run 20990101-000000-abcdef in .* \(fix: see homelab k8s history for the run ids\)\n$/)
})
