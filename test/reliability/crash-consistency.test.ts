/**
 * Issue 9, crash consistency: the demo-sized upgrade (3 servers, 3 agents, k3s) SIGKILLed at 25
 * seeded random points, each followed by `--resume`; every time all nodes end at the target, none
 * cordoned by us, exactly one Velero backup and one etcd snapshot for the run, and every journal
 * complete and parseable. The seed is printed; HOMELAB_CRASH_SEED=<n> replays a run.
 *
 * One homelab for all 25: each kill upgrades to the next patch release (v1.31.5, v1.31.6, …), so
 * no reset is needed and each run's backup and snapshot are told apart by its target. The kill
 * points are delays after the run's start event, drawn within the length of a measured run.
 * Killing during compensation and finishing with `rollback`: test/upgrade/kill-rollback.test.ts.
 */
import assert from 'node:assert/strict'
import {readdir, readFile, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {kubeadmFixture} from '../sim/kubeadm-node.js'
import {listSnapshots} from '../sim/node-fixture.js'
import {KTO, kubeadmLab} from '../upgrade/kubeadm-helpers.js'
import {FROM, journals, lab, nodeStates, parseJson, spawnCli, cordonPatches} from '../upgrade/helpers.js'

const KILLS = 25
const patchOf = (v: string) => Number(/^v1\.31\.(\d+)\+k3s1$/.exec(v)?.[1])
const release = (patch: number) => `v1.31.${patch}+k3s1`
// One to measure, one per kill, and a few spare for kills that came after a run had ended.
const TARGETS = Array.from({length: KILLS + 6}, (_, i) => release(patchOf(FROM) + 1 + i))

/** mulberry32: small, seedable, good enough to spread kill points. */
function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test(`SIGKILL at ${KILLS} seeded random points, each followed by --resume: all at the target, one backup, one snapshot, journals whole`, {timeout: 15 * 60_000}, async (t) => {
  const seed = process.env.HOMELAB_CRASH_SEED ? Number(process.env.HOMELAB_CRASH_SEED) : Math.floor(Math.random() * 2 ** 31)
  assert.ok(Number.isInteger(seed), `HOMELAB_CRASH_SEED must be an integer, got ${process.env.HOMELAB_CRASH_SEED}`)
  // Printed first, so a failure can be replayed.
  t.diagnostic(`crash seed ${seed} (replay: HOMELAB_CRASH_SEED=${seed})`)
  console.log(`# crash-consistency: HOMELAB_CRASH_SEED=${seed}`)
  const random = prng(seed)

  const homelab = await lab(t, {releases: TARGETS})
  const {api} = homelab
  const runsDir = path.join(homelab.env.XDG_STATE_HOME, 'homelab', 'runs')

  // The measured run: how long an upgrade takes from its start event to its end.
  const measured = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TARGETS[0], '--yes', '--log-format', 'json'])
  await measured.waitForEvent((e) => e.type === 'run-started')
  const startedAt = Date.now()
  assert.equal((await measured.exited).code, 0, measured.stderr().slice(-3000))
  const runMs = Date.now() - startedAt
  t.diagnostic(`a full run takes ${runMs} ms from its start event`)

  const points: string[] = []
  let kills = 0
  for (const [i, target] of TARGETS.slice(1).entries()) {
    if (kills === KILLS) break
    // Runs vary in length: draw within 90% of the measured one, and draw again when a run ended first.
    const delay = Math.floor(random() * runMs * 0.9)
    const since = api.audit.at(-1)?.seq ?? 0
    const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', target, '--yes', '--log-format', 'json'])
    const started = await cli.waitForEvent((e) => e.type === 'run-started')
    const runId = started.runId as string
    await new Promise((resolve) => setTimeout(resolve, delay))
    const lastEvent = cli.events.at(-1)
    cli.child.kill('SIGKILL')
    const exit = await cli.exited
    const where = `${lastEvent?.type ?? ''}${lastEvent?.step ? ` ${lastEvent.step}` : ''}${lastEvent?.node ? ` ${lastEvent.node}` : ''}${lastEvent?.message ? `: ${lastEvent.message}` : ''}`
    // A kill after the journal's end (or after the exit) is no crash of the run: it does not count.
    const finished = (await journals(homelab)).find((j) => j.id === runId)?.status === 'succeeded'
    const counted = exit.signal === 'SIGKILL' && !finished
    points.push(`#${i + 1} ${target} +${delay} ms (${counted ? 'killed' : exit.signal ? 'killed after its end' : `had exited ${exit.code}`}) after ${where}`)
    if (counted) kills += 1
    const context = `kill #${i + 1} (seed ${seed}) at +${delay} ms, after ${where}`

    const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', runId, '--yes', '--json'])
    if (finished) {
      // Nothing to resume, and the run says so.
      assert.equal(resumed.exitCode, 2, `${context}\n${resumed.stdout}\n${resumed.stderr}`)
      assert.match(resumed.stdout + resumed.stderr, new RegExp(`run ${runId} is succeeded and cannot be resumed`), context)
    } else {
      assert.equal(resumed.exitCode, 0, `${context}\n${resumed.stdout}\n${resumed.stderr}`)
      assert.equal(parseJson<{outcome: string}>(resumed.stdout).outcome, 'succeeded', context)
    }

    for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: target, disk: target, ready: true, cordoned: false}, `${context}: ${name}`)
    for (const node of homelab.nodes) assert.equal(api.nodes.get(node.spec.name)?.metadata.annotations?.['homelab.dev/cordoned-by'], undefined, `${context}: ${node.spec.name} carries our cordon mark`)
    const left = new Set<string>()
    for (const patch of cordonPatches(homelab)) patch.cordon ? left.add(patch.node) : left.delete(patch.node)
    assert.deepEqual([...left], [], `${context}: left cordoned`)

    // One backup and one snapshot for this run, however often it was started.
    const stem = `pre-upgrade-${target.toLowerCase().replace(/[^a-z0-9]+/g, '-')}`
    const backups = api.store.list('backups.velero.io').filter((b) => b.metadata.name.startsWith(`${stem}-`))
    assert.equal(backups.length, 1, `${context}: backups ${backups.map((b) => b.metadata.name).join(', ')}`)
    assert.equal(api.audit.since(since).filter((e) => e.verb === 'create' && e.resource === 'backups' && e.code === 201).length, 1, `${context}: backups created`)
    const snapshots = (await Promise.all(homelab.nodes.filter((n) => n.spec.role === 'server').map((n) => listSnapshots(n.fixture)))).flat().filter((s) => s.startsWith(`${stem}-`))
    assert.equal(snapshots.length, 1, `${context}: etcd snapshots ${snapshots.join(', ')}`)
    assert.equal(api.store.list('restores.velero.io').length, 0, `${context}: nothing was restored`)

    // Every journal parses, and this run's is complete.
    for (const file of (await readdir(runsDir)).filter((f) => f.endsWith('.json'))) {
      const text = await readFile(path.join(runsDir, file), 'utf8')
      assert.doesNotThrow(() => JSON.parse(text), `${context}: ${file} is not JSON`)
    }
    const journal = (await journals(homelab)).find((j) => j.id === runId)
    assert.ok(journal, `${context}: no journal for ${runId}`)
    assert.equal(journal.status, 'succeeded', context)
    for (const step of journal.steps) {
      assert.ok(['done', 'skipped'].includes(step.state), `${context}: step ${step.name} is ${step.state}`)
      for (const [node, action] of Object.entries(step.actions)) assert.ok(['done', 'skipped'].includes(action.state), `${context}: ${step.name} ${node} is ${action.state}`)
    }
    assert.equal(api.store.list('leases.coordination.k8s.io').filter((l) => l.metadata.name === 'homelab-upgrade').length, 0, `${context}: the lock was released`)
  }
  for (const point of points) t.diagnostic(point)
  assert.equal(kills, KILLS, `only ${kills} of the runs were still running when killed`)
})

/**
 * The narrowest window of all, found by the random kills above: the snapshot saved on the node,
 * the journal not yet saying so. Made deterministic by killing right after the snapshot and
 * taking its record out of the journal, as a kill a moment earlier would have left it.
 */
async function killBetweenSnapshotAndJournal(t: import('node:test').TestContext, homelab: Homelab, target: string, snapshots: () => Promise<string[]>) {
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', target, '--yes', '--log-format', 'json'])
  const started = await cli.waitForEvent((e) => e.type === 'run-started')
  await cli.waitForEvent((e) => e.type === 'log' && e.step === 'backup' && /^etcd snapshot /.test(e.message ?? ''), 120_000)
  cli.child.kill('SIGKILL')
  await cli.exited
  const file = path.join(homelab.env.XDG_STATE_HOME, 'homelab', 'runs', `${started.runId}.json`)
  const journal = JSON.parse(await readFile(file, 'utf8')) as {data: Record<string, unknown>}
  const recorded = journal.data.etcdSnapshot
  assert.ok(recorded, 'the snapshot was journalled')
  delete journal.data.etcdSnapshot
  await writeFile(file, JSON.stringify(journal, null, 2))
  assert.equal((await snapshots()).length, 1)

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', started.runId as string, '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, `${resumed.stdout}\n${resumed.stderr}`)
  assert.equal((await snapshots()).length, 1, 'a second etcd snapshot was taken on --resume')
  // The resumed run found the snapshot and recorded the same one.
  const after = JSON.parse(await readFile(file, 'utf8')) as {status: string; data: Record<string, unknown>}
  assert.deepEqual(after.data.etcdSnapshot, recorded)
  assert.equal(after.status, 'succeeded')
}

test('killed between the etcd snapshot and its journal record, --resume takes no second snapshot: k3s', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 1, releases: [TARGETS[0]]})
  await killBetweenSnapshotAndJournal(t, homelab, TARGETS[0], async () => listSnapshots(homelab.node('server-1').fixture))
})

test('killed between the etcd snapshot and its journal record, --resume takes no second snapshot: kubeadm', async (t) => {
  const homelab = await kubeadmLab(t, {servers: 1, agents: 2, config: {upgrade: {agentConcurrency: 1}}})
  const dir = path.join(kubeadmFixture(homelab.node('server-1').fixture).kubeDir, 'tmp')
  await killBetweenSnapshotAndJournal(t, homelab, KTO, async () => (await readdir(dir).catch(() => [] as string[])).filter((f) => f.startsWith('homelab-etcd-snapshot-') && f.endsWith('.db')))
})
