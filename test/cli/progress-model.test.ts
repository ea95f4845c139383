/**
 * The terminal view's state (commands/_cli/progress-model.ts), from sequences of the events an
 * upgrade emits, against a clock the test moves: pre-flight lines per node, done/total and the
 * time left of the agent stages. listr2 itself is not involved.
 */
import assert from 'node:assert/strict'
import {test} from 'node:test'

import {estimateLeft, formatDuration, ProgressModel, stageTitle} from '../../commands/_cli/progress-model.js'
import type {UpgradeEvent} from '../../src/upgrade/run-upgrade.js'
import type {PlannedNodeBase, UpgradePlan} from '../../src/upgrade/types.js'

const RUN = {runId: 'r1', time: '2026-12-02T21:00:00.000Z'}

function node(name: string, role: 'server' | 'agent', extra: Partial<PlannedNodeBase> & {serviceManager?: string} = {}): PlannedNodeBase {
  return {name, role, host: '127.0.0.1', arch: 'amd64', fromVersion: 'v1.31.4+k3s1', preCordoned: false, ...extra} as PlannedNodeBase
}

function plan(over: Partial<UpgradePlan> = {}): UpgradePlan {
  return {
    target: 'v1.31.5+k3s1',
    servers: [node('server-1', 'server', {serviceManager: 'systemd'})],
    agents: ['agent-1', 'agent-2', 'agent-3', 'agent-4'].map((n) => node(n, 'agent', {serviceManager: 'systemd'})),
    skipped: [],
    backup: {velero: false},
    skippedComponents: [],
    drain: [],
    warnings: [],
    ...over,
  }
}

const lines = (model: ProgressModel) => model.preflight?.lines.map((l) => `${l.state} ${l.text}`)

test('pre-flight: a line per node, running while checked, then what the plan says about it', () => {
  const model = new ProgressModel(2)
  assert.equal(model.apply({type: 'hop-started', hop: 0, target: 'v1.31.5+k3s1'}, 0).preflightStarted?.target, 'v1.31.5+k3s1')
  const added = model.apply({type: 'progress', message: 'checking server-1 over SSH'}, 1).added
  assert.deepEqual(added.map((l) => [l.node, l.state, l.text]), [['server-1', 'running', 'server-1: checking over SSH']])
  for (const name of ['agent-1', 'agent-2', 'agent-3', 'agent-4', 'agent-5']) assert.equal(model.apply({type: 'progress', message: `checking ${name} over SSH`}, 2).consumed, true)
  const download = model.apply({type: 'progress', message: 'fetching and verifying k3s v1.31.5+k3s1 for amd64'}, 3)
  assert.deepEqual(download.added.map((l) => [l.node, l.text]), [[undefined, 'fetching and verifying k3s v1.31.5+k3s1 for amd64']])
  // The same message again (a second hop's wording, a retry) adds nothing.
  assert.deepEqual(model.apply({type: 'progress', message: 'checking agent-1 over SSH'}, 4).added, [])
  assert.ok(model.preflight?.lines.every((l) => l.state === 'running'))

  const ended = model.apply({type: 'plan', hop: 0, plan: plan({skipped: [{node: 'agent-5', reason: 'already at v1.31.5+k3s1'}]})}, 5)
  assert.equal(ended.consumed, true)
  assert.equal(ended.preflightEnded?.state, 'done')
  assert.equal(ended.preflightEnded?.summary, '6 nodes: 5 to upgrade, 1 skipped (agent-5)')
  assert.equal(ended.settled.length, 7)
  assert.deepEqual(lines(model), [
    'done server-1: v1.31.4+k3s1 → v1.31.5+k3s1 (amd64, systemd)',
    'done agent-1: v1.31.4+k3s1 → v1.31.5+k3s1 (amd64, systemd)',
    'done agent-2: v1.31.4+k3s1 → v1.31.5+k3s1 (amd64, systemd)',
    'done agent-3: v1.31.4+k3s1 → v1.31.5+k3s1 (amd64, systemd)',
    'done agent-4: v1.31.4+k3s1 → v1.31.5+k3s1 (amd64, systemd)',
    'skipped agent-5: skip: already at v1.31.5+k3s1',
    'done fetching and verifying k3s v1.31.5+k3s1 for amd64',
  ])
  // After the plan, progress is no longer pre-flight's: the view prints it as a line.
  assert.equal(model.apply({type: 'progress', message: 'postRun hook: done'}, 6).consumed, false)
})

test('pre-flight: plan traits, server kinds and pre-cordoned nodes; nodes only the plan names get a line', () => {
  const model = new ProgressModel(1)
  model.apply({type: 'hop-started', hop: 0, target: 'v1.32.4'}, 0)
  model.apply({type: 'progress', message: 'checking cp-1 over SSH'}, 0)
  model.apply(
    {
      type: 'plan',
      hop: 0,
      plan: plan({
        target: 'v1.32.4',
        servers: [node('cp-1', 'server', {fromVersion: 'v1.31.4', serverKind: 'etcd-only' as PlannedNodeBase['serverKind'], arch: 'arm64', traits: ['apt']})],
        agents: [node('worker-1', 'agent', {fromVersion: 'v1.31.4', traits: ['dnf'], preCordoned: true})],
        skipped: [{node: 'worker-2', reason: 'not selected by --nodes'}],
      }),
    },
    1,
  )
  assert.deepEqual(lines(model), [
    'done cp-1: v1.31.4 → v1.32.4 (etcd-only, arm64, apt)',
    'done worker-1: v1.31.4 → v1.32.4 (amd64, dnf), cordoned before (stays cordoned)',
    'skipped worker-2: skip: not selected by --nodes',
  ])
})

test('pre-flight: node-checked settles a line at once, with what was found or the problem, and the plan leaves it be', () => {
  const model = new ProgressModel(1)
  model.apply({type: 'hop-started', hop: 0, target: 'v1.31.5+k3s1'}, 0)
  model.apply({type: 'progress', message: 'checking agent-1 over SSH'}, 0)
  model.apply({type: 'progress', message: 'checking agent-2 over SSH'}, 0)
  const checked = model.apply({type: 'node-checked', node: 'agent-1', version: 'v1.31.4+k3s1', traits: ['amd64', 'systemd']}, 1)
  assert.deepEqual(checked.settled.map((l) => `${l.state} ${l.text}`), ['done agent-1: v1.31.4+k3s1 (amd64, systemd)'])
  const refused = model.apply({type: 'node-checked', node: 'agent-2', problem: 'sudo asks for a password'}, 2)
  assert.deepEqual(refused.settled.map((l) => `${l.state} ${l.text}`), ['failed agent-2: sudo asks for a password'])
  // A second word about a settled line changes nothing.
  assert.deepEqual(model.apply({type: 'node-checked', node: 'agent-2', version: 'v1'}, 3).settled, [])
  // An event for a node without a "checking" line adds one.
  assert.equal(model.apply({type: 'node-checked', node: 'agent-3'}, 3).added[0]?.text, 'agent-3: checked')
  const ended = model.apply({type: 'plan', hop: 0, plan: plan({servers: [], agents: [node('agent-1', 'agent')]})}, 4)
  assert.deepEqual(ended.settled, [], 'every line was settled already')
  assert.deepEqual(lines(model), ['done agent-1: v1.31.4+k3s1 (amd64, systemd)', 'failed agent-2: sudo asks for a password', 'done agent-3: checked'])
})

test('pre-flight: a run that ends without a plan (refused) stops the lines still running; node-checked before hop-started is not pre-flight', () => {
  const model = new ProgressModel(1)
  assert.equal(model.apply({type: 'node-checked', node: 'agent-1'}, 0).consumed, false)
  assert.deepEqual(model.stop().settled, [], 'nothing open: nothing to stop')
  model.apply({type: 'hop-started', hop: 0, target: 'v1.31.5+k3s1'}, 0)
  model.apply({type: 'progress', message: 'checking agent-1 over SSH'}, 0)
  model.apply({type: 'progress', message: 'fetching and verifying k3s v1.31.5+k3s1 for amd64'}, 0)
  const stopped = model.stop()
  assert.equal(stopped.preflightEnded?.state, 'stopped')
  assert.deepEqual(lines(model), ['skipped agent-1: no result (see below)', 'skipped fetching and verifying k3s v1.31.5+k3s1 for amd64: not finished'])
  assert.equal(model.stop().preflightEnded, undefined, 'stopping twice does nothing')
})

test('a resumed run: the plan without a pre-flight is not consumed (printed as before), and the second hop gets its own lines', () => {
  const model = new ProgressModel(1)
  assert.equal(model.apply({type: 'plan', hop: 0, plan: plan()}, 0).consumed, false)
  assert.equal(model.plan?.target, 'v1.31.5+k3s1')
  model.apply({type: 'hop-started', hop: 1, target: 'v1.32.0+k3s1'}, 1)
  const added = model.apply({type: 'progress', message: 'checking agent-1 over SSH'}, 1).added
  assert.equal(added.length, 1)
  assert.equal(model.preflight?.hop, 1)
})

/** The saga's events for one stage, the view's clock in ms. */
function saga(model: ProgressModel, events: Array<[number, Record<string, unknown>]>): void {
  for (const [at, event] of events) model.apply({...RUN, ...event} as UpgradeEvent, at)
}

test('agent stage: done/total, "estimating…" until one node finished, then remaining / concurrency × mean, counting down', () => {
  const model = new ProgressModel(2)
  model.apply({type: 'plan', hop: 0, plan: plan()}, 0)
  saga(model, [
    [0, {type: 'step-started', step: 'agents', title: 'Drain and upgrade agents'}],
    [0, {type: 'action-started', step: 'agents', node: 'agent-1'}],
    [0, {type: 'action-started', step: 'agents', node: 'agent-2'}],
  ])
  assert.equal(model.title('agents', 10_000), 'Drain and upgrade agents — 0/4 · estimating…')
  saga(model, [
    [60_000, {type: 'action-finished', step: 'agents', node: 'agent-1'}],
    [60_000, {type: 'action-started', step: 'agents', node: 'agent-3'}],
  ])
  // Left: agent-2 (60 s in, mean 60 s: 0), agent-3 (just started: 60), agent-4 (waiting: 60) → 120 s of work, 2 at once.
  assert.equal(estimateLeft(model.stages.get('agents')!, 60_000), 60_000)
  assert.equal(model.title('agents', 60_000), 'Drain and upgrade agents — 1/4 · about 1m 00s left')
  saga(model, [
    [80_000, {type: 'action-finished', step: 'agents', node: 'agent-2'}],
    [80_000, {type: 'action-started', step: 'agents', node: 'agent-4'}],
  ])
  // Mean (60 + 80) / 2 = 70 s; agent-3 20 s in (50 left), agent-4 just started (70) → 120 / 2.
  assert.equal(model.title('agents', 80_000), 'Drain and upgrade agents — 2/4 · about 1m 00s left')
  assert.equal(model.title('agents', 100_000), 'Drain and upgrade agents — 2/4 · about 40s left', 'the estimate counts down between events')
  saga(model, [[130_000, {type: 'action-finished', step: 'agents', node: 'agent-3'}]])
  // One left, 50 s in, mean 70: alone, it takes the rest of the mean.
  assert.equal(model.title('agents', 130_000), 'Drain and upgrade agents — 3/4 · about 20s left')
  assert.equal(model.title('agents', 160_000), 'Drain and upgrade agents — 3/4 · taking longer than the others did')
  saga(model, [
    [170_000, {type: 'action-finished', step: 'agents', node: 'agent-4'}],
    [171_000, {type: 'step-finished', step: 'agents'}],
  ])
  assert.equal(model.title('agents', 200_000), 'Drain and upgrade agents — 4/4, took 2m 51s')
})

test('canary, then the rest: each stage counts its own nodes; skipped (done before a resume) count as done but not in the mean', () => {
  const model = new ProgressModel(1)
  model.apply({type: 'plan', hop: 0, plan: plan({canary: {nodes: ['agent-1'], soakMs: 1000}})}, 0)
  saga(model, [
    [0, {type: 'step-started', step: 'canary', title: 'Upgrade the canary agents'}],
    [0, {type: 'action-started', step: 'canary', node: 'agent-1'}],
  ])
  assert.equal(model.title('canary', 0), 'Upgrade the canary agents — 0/1 · estimating…')
  saga(model, [
    [30_000, {type: 'action-finished', step: 'canary', node: 'agent-1'}],
    [30_000, {type: 'step-finished', step: 'canary'}],
    [40_000, {type: 'step-started', step: 'agents', title: 'Drain and upgrade agents'}],
    [40_000, {type: 'action-skipped', step: 'agents', node: 'agent-2', reason: 'done in an earlier attempt'}],
    [40_000, {type: 'action-started', step: 'agents', node: 'agent-3'}],
  ])
  assert.equal(model.title('canary', 40_000), 'Upgrade the canary agents — 1/1, took 30s')
  assert.deepEqual(model.stages.get('agents')?.nodes, ['agent-2', 'agent-3', 'agent-4'], 'the canary is not counted again')
  assert.equal(model.title('agents', 40_000), 'Drain and upgrade agents — 1/3 · estimating…', 'a skipped node says nothing about how long one takes')
})

test('kubeadm workers are counted; servers and steps without node actions are not', () => {
  const model = new ProgressModel(3)
  model.apply({type: 'plan', hop: 0, plan: plan()}, 0)
  saga(model, [
    [0, {type: 'step-started', step: 'servers', title: 'Upgrade servers, one at a time'}],
    [0, {type: 'step-started', step: 'backup', title: 'Back up'}],
    [0, {type: 'step-started', step: 'workers', title: 'Drain and upgrade workers'}],
  ])
  assert.equal(model.title('servers', 0), undefined)
  assert.equal(model.title('backup', 0), undefined)
  assert.equal(model.title('workers', 0), 'Drain and upgrade workers — 0/4 · estimating…')
})

test('after a failure no new node starts: the title says so instead of estimating', () => {
  const model = new ProgressModel(2)
  model.apply({type: 'plan', hop: 0, plan: plan()}, 0)
  const error = {name: 'Error', message: 'agent-1: not Ready'}
  saga(model, [
    [0, {type: 'step-started', step: 'agents', title: 'Drain and upgrade agents'}],
    [0, {type: 'action-started', step: 'agents', node: 'agent-1'}],
    [0, {type: 'action-started', step: 'agents', node: 'agent-2'}],
    [10_000, {type: 'action-finished', step: 'agents', node: 'agent-2'}],
    [20_000, {type: 'action-failed', step: 'agents', node: 'agent-1', error}],
  ])
  assert.equal(model.title('agents', 20_000), 'Drain and upgrade agents — 1/4, 1 failed; finishing the nodes in flight')
  saga(model, [[21_000, {type: 'step-failed', step: 'agents', error}]])
  assert.equal(model.title('agents', 30_000), 'Drain and upgrade agents — 1/4, 1 failed, took 21s')
})

test('durations read well', () => {
  assert.deepEqual([0, 999, 45_000, 59_600, 130_000, 3_600_000, 3_900_000].map(formatDuration), ['0s', '1s', '45s', '1m 00s', '2m 10s', '1h 00m', '1h 05m'])
  const stage = {step: 'agents', title: 'T', nodes: ['a'], concurrency: 1, startedAt: 0, running: new Map(), done: new Set(['a']), failed: new Set<string>(), durations: [1]}
  assert.equal(stageTitle(stage, 5), 'T — 1/1')
  assert.equal(estimateLeft(stage, 5), 0)
})
