/**
 * What a kubeadm run leaves when something fails: a failing `kubeadm upgrade apply` is undone
 * completely (exit 4); a worker whose new kubelet never comes up goes back alone (exit 4); a
 * control plane failing after the first one was upgraded stops with the manual way back (exit 5);
 * a killed run resumes with the backup it had.
 */
import assert from 'node:assert/strict'
import {readdir} from 'node:fs/promises'
import path from 'node:path'
import {test} from 'node:test'

import {renderResult} from '../../commands/_cli/upgrade-output.js'
import type {UpgradeResult} from '../../src/upgrade/run-upgrade.js'
import {kubeadmFixture, setKubeadmFailure, setKubeletCrashVersions} from '../sim/kubeadm-node.js'
import {journals, parseJson, spawnCli} from './helpers.js'
import {CONTROL_PLANES, KFROM, KTO, WORKERS, changes, installs, kubeadmLab, kubeadmNodeStates, nodeLog, packageVersions, repository} from './kubeadm-helpers.js'

interface Result {
  outcome: string
  exitCode: number
  error?: {message: string}
  manualSteps: string[]
  nodes: Array<{name: string; after: string; end?: {healthy: boolean; cordoned: boolean}}>
  backups: Array<{velero?: string; etcdSnapshot?: {node: string; name: string}}>
}

const OLD = {kubeadm: '1.31.4-1.1', kubelet: '1.31.4-1.1', kubectl: '1.31.4-1.1'}
const NEW = {kubeadm: '1.32.4-1.1', kubelet: '1.32.4-1.1', kubectl: '1.32.4-1.1'}

test('a failing kubeadm upgrade apply: packages and repository back, nobody cordoned, Velero restored, exit 4', async (t) => {
  const homelab = await kubeadmLab(t)
  const repos = new Map(await Promise.all([...CONTROL_PLANES, ...WORKERS].map(async (n) => [n, await repository(homelab, n)] as const)))
  await setKubeadmFailure(kubeadmFixture(homelab.node('server-1').fixture), 'apply', 'static pod hash for component kube-apiserver on Node server-1 did not change after 5m0s: timed out waiting for the condition')
  const run = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--yes', '--json'])
  assert.equal(run.exitCode, 4, run.stdout + run.stderr)
  const result = parseJson<Result>(run.stdout)
  assert.equal(result.outcome, 'compensated')
  assert.match(result.error?.message ?? '', /kubeadm upgrade apply v1\.32\.4 failed: .*did not change after 5m0s/)

  assert.deepEqual(await packageVersions(homelab, 'server-1'), OLD)
  assert.equal(await repository(homelab, 'server-1'), repos.get('server-1'), 'the repository definition is back')
  const log = await nodeLog(homelab, 'server-1')
  assert.ok(log.some(installs('kubeadm')) && !log.some(installs('kubelet')), 'kubeadm was installed and put back; the kubelet package was never touched')
  for (const name of [...CONTROL_PLANES.slice(1), ...WORKERS]) {
    assert.deepEqual(changes(await nodeLog(homelab, name)), [], `${name} was not touched`)
    assert.equal(await repository(homelab, name), repos.get(name))
  }
  for (const [name, state] of kubeadmNodeStates(homelab)) assert.deepEqual([state.kubelet, state.ready, state.cordoned], [KFROM, true, false], name)
  assert.equal(homelab.api.kubeadm.kubernetesVersion(), KFROM)
  assert.equal(homelab.api.store.list('restores.velero.io').length, 1, 'the Velero backup was restored')
})

test('a worker whose new kubelet never becomes Ready goes back to its old packages alone; the control planes stay upgraded; exit 4', async (t) => {
  const homelab = await kubeadmLab(t, {config: {upgrade: {agentConcurrency: 1, timeouts: {nodeReady: '4s'}}}})
  const repo = await repository(homelab, 'agent-2')
  await setKubeletCrashVersions(kubeadmFixture(homelab.node('agent-2').fixture), [KTO])
  const run = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--yes', '--json'])
  assert.equal(run.exitCode, 4, run.stdout + run.stderr)
  const result = parseJson<Result>(run.stdout)
  assert.equal(result.outcome, 'compensated')
  assert.match(result.error?.message ?? '', /node agent-2 to be Ready at v1\.32\.4/)

  assert.deepEqual(await packageVersions(homelab, 'agent-2'), OLD)
  assert.equal(await repository(homelab, 'agent-2'), repo)
  const states = kubeadmNodeStates(homelab)
  assert.deepEqual(states.get('agent-2'), {kubelet: KFROM, ready: true, cordoned: false})
  for (const name of [...CONTROL_PLANES, 'agent-1']) {
    assert.deepEqual(await packageVersions(homelab, name), NEW, name)
    assert.deepEqual(states.get(name), {kubelet: KTO, ready: true, cordoned: false}, name)
  }
  // agent-3 was not started after agent-2 failed (concurrency 1).
  assert.deepEqual(changes(await nodeLog(homelab, 'agent-3')), [])
  assert.equal(homelab.api.kubeadm.kubernetesVersion(), KTO)
  assert.equal(homelab.api.store.list('restores.velero.io').length, 0, 'no Velero restore into an upgraded control plane')
  assert.deepEqual(result.nodes.map((n) => [n.name, n.after, n.end?.healthy]), [...CONTROL_PLANES.map((n) => [n, KTO, true]), ['agent-1', KTO, true], ['agent-2', KFROM, true], ['agent-3', KFROM, true]])
  // A person is not told that everything was undone.
  const text = renderResult(parseJson<UpgradeResult>(run.stdout))
  assert.match(text, /^The upgrade failed; the changes in flight were undone\. Newer than before, and kept: server-1 \(v1\.32\.4\), server-2 \(v1\.32\.4\), server-3 \(v1\.32\.4\), agent-1 \(v1\.32\.4\)\.$/m)
  assert.doesNotMatch(text, /every change was undone/)
})

test('a control plane failing after the first one was upgraded: exit 5, every node uncordoned, kubeadm\'s way back printed', async (t) => {
  const homelab = await kubeadmLab(t)
  await setKubeadmFailure(kubeadmFixture(homelab.node('server-2').fixture), 'node', 'static Pod hash for component etcd on Node server-2 did not change after 5m0s')
  const run = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--yes', '--json'])
  assert.equal(run.exitCode, 5, run.stdout + run.stderr)
  const result = parseJson<Result>(run.stdout)
  assert.equal(result.outcome, 'compensation-incomplete')
  const steps = result.manualSteps.join('\n')
  assert.match(steps, /the control plane on server-1 runs v1\.32\.4; kubeadm does not downgrade it \(failed: .*kubeadm has no downgrade\)/)
  assert.match(steps, /sudo ls \S*server-1\/etc\/kubernetes\/tmp$/m)
  assert.match(steps, /fix the cause, then homelab k8s upgrade --to v1\.32\.4 again/)
  assert.match(steps, /last resort: restore etcd from the snapshot .*homelab-etcd-snapshot-v1\.32\.4-.*\.db taken on server-1/)
  assert.deepEqual(await packageVersions(homelab, 'server-2'), OLD, 'server-2, whose kubeadm upgrade node failed, is back at its packages')
  assert.deepEqual(await packageVersions(homelab, 'server-1'), NEW, 'server-1 stays upgraded')
  for (const [name, state] of kubeadmNodeStates(homelab)) assert.equal(state.cordoned, false, `${name} left cordoned`)
  for (const name of WORKERS) assert.deepEqual(changes(await nodeLog(homelab, name)), [], name)
  // The text report says it too.
  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'compensation-incomplete')
  const backups = await readdir(path.join(kubeadmFixture(homelab.node('server-1').fixture).kubeDir, 'tmp'))
  assert.ok(backups.some((b) => b.startsWith('kubeadm-backup-manifests-')), 'the backup the steps name exists')

  // The way forward the steps give: fix the cause, run the same upgrade again.
  await setKubeadmFailure(kubeadmFixture(homelab.node('server-2').fixture), 'node', null)
  const again = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--yes', '--json'])
  assert.equal(again.exitCode, 0, again.stdout + again.stderr)
  for (const name of [...CONTROL_PLANES, ...WORKERS]) assert.deepEqual(await packageVersions(homelab, name), NEW, name)
  assert.equal((await nodeLog(homelab, 'server-1')).filter((e) => e.tool === 'kubeadm' && e.argv[1] === 'apply').length, 1, 'apply ran once, in the first run')
})

test('SIGKILL in the worker stage, then --resume: finishes with one backup and one etcd snapshot', async (t) => {
  const homelab = await kubeadmLab(t, {config: {upgrade: {agentConcurrency: 1}}})
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', KTO, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => e.type === 'log' && e.step === 'workers' && e.node === 'agent-2' && /^installing kubelet/.test(e.message ?? ''), 120_000)
  cli.child.kill('SIGKILL')
  assert.equal((await cli.exited).signal, 'SIGKILL')
  const [crashed] = await journals(homelab)
  assert.equal(crashed.status, 'running')

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, resumed.stdout + resumed.stderr)
  const result = parseJson<Result & {runIds: string[]}>(resumed.stdout)
  assert.equal(result.outcome, 'succeeded')
  assert.deepEqual(result.runIds, [crashed.id])
  assert.equal(homelab.api.audit.matching({verb: 'create', resource: 'backups', code: 201}).length, 1, 'one Velero backup')
  const snapshots = (await readdir(path.join(kubeadmFixture(homelab.node('server-1').fixture).kubeDir, 'tmp'))).filter((f) => f.startsWith('homelab-etcd-snapshot-'))
  assert.equal(snapshots.length, 1, 'one etcd snapshot')
  for (const name of CONTROL_PLANES) {
    const log = await nodeLog(homelab, name)
    assert.equal(log.filter((e) => e.tool === 'kubeadm' && e.argv[0] === 'upgrade' && e.argv[1] !== 'plan').length, 1, `${name}: kubeadm upgrade ran once`)
  }
  for (const name of [...CONTROL_PLANES, ...WORKERS]) assert.deepEqual(await packageVersions(homelab, name), NEW, name)
  for (const [name, state] of kubeadmNodeStates(homelab)) assert.deepEqual([state.kubelet, state.ready, state.cordoned], [KTO, true, false], name)
  const [done] = await journals(homelab)
  assert.equal(done.status, 'succeeded')
})

test('Ctrl-C while a worker drains: exit 130, that worker uncordoned with its old kubelet; --resume finishes', async (t) => {
  const homelab = await kubeadmLab(t, {config: {upgrade: {agentConcurrency: 1}}})
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', KTO, '--yes', '--log-format', 'json'])
  const draining = await cli.waitForEvent((e) => e.type === 'log' && e.step === 'workers' && e.message === 'draining', 120_000)
  cli.child.kill('SIGINT')
  const exit = await cli.exited
  assert.equal(exit.code, 130, cli.stderr().slice(-3000))
  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'interrupted')
  const states = kubeadmNodeStates(homelab)
  for (const [name, state] of states) {
    assert.equal(state.cordoned, false, `${name} left cordoned`)
    assert.equal(state.ready, true, `${name} left NotReady`)
  }
  const worker = draining.node as string
  assert.equal(states.get(worker)?.kubelet, KFROM, 'the drained worker kept its kubelet')
  assert.equal((await packageVersions(homelab, worker)).kubelet, OLD.kubelet)

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', journal.id, '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, resumed.stdout + resumed.stderr)
  for (const name of [...CONTROL_PLANES, ...WORKERS]) assert.deepEqual(await packageVersions(homelab, name), NEW, name)
  for (const [name, state] of kubeadmNodeStates(homelab)) assert.deepEqual([state.kubelet, state.ready, state.cordoned], [KTO, true, false], name)
  assert.equal(homelab.api.audit.matching({verb: 'create', resource: 'backups', code: 201}).length, 1)
})
