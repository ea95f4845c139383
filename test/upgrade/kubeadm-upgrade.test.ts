/**
 * `homelab k8s upgrade` on a simulated kubeadm homelab: the full minor upgrade in kubeadm's
 * documented order, a patch that leaves the repository alone, and the refusals that change nothing.
 */
import assert from 'node:assert/strict'
import {stat} from 'node:fs/promises'
import {test} from 'node:test'

import {heldPackages, kubeadmFixture, manifestVersions, setKubeadmFailure} from '../sim/kubeadm-node.js'
import {cordonPatches, journals, parseJson, writes} from './helpers.js'
import {CONTROL_PLANES, KFROM, KTO, WORKERS, changes, indexOf, installs, kubeadmLab, kubeadmNodeStates, kubeadmUpgrade, nodeLog, packageVersions, repository} from './kubeadm-helpers.js'

interface Result {
  outcome: string
  nodes: Array<{name: string; before: string; after: string; end?: {healthy: boolean}}>
  backups: Array<{velero?: string; etcdSnapshot?: {node: string; name: string}}>
}

test('a minor upgrade of 3 control planes + 3 workers follows kubeadm\'s order on every node', async (t) => {
  const homelab = await kubeadmLab(t, {
    nodes: [
      {name: 'server-1', role: 'server'}, {name: 'server-2', role: 'server'}, {name: 'server-3', role: 'server', packageManager: 'dnf'},
      {name: 'agent-1', role: 'agent'}, {name: 'agent-2', role: 'agent', aptSourceFormat: 'deb822'}, {name: 'agent-3', role: 'agent', packageManager: 'dnf'},
    ],
  })
  const before = new Map(await Promise.all([...CONTROL_PLANES, ...WORKERS].map(async (n) => [n, await repository(homelab, n)] as const)))
  const heldBefore = new Map(await Promise.all([...CONTROL_PLANES, ...WORKERS].map(async (n) => [n, await heldPackages(kubeadmFixture(homelab.node(n).fixture))] as const)))

  const run = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.32', '--yes', '--json', '--concurrency', '2'])
  assert.equal(run.exitCode, 0, run.stdout + run.stderr)
  const result = parseJson<Result>(run.stdout)
  assert.equal(result.outcome, 'succeeded')
  assert.deepEqual(result.nodes.map((n) => [n.name, n.before, n.after, n.end?.healthy]), [...CONTROL_PLANES, ...WORKERS].map((n) => [n, KFROM, KTO, true]))
  assert.equal(result.backups.length, 1)
  assert.ok(result.backups[0].velero, 'a Velero backup was taken')
  assert.equal(result.backups[0].etcdSnapshot?.node, 'server-1')
  assert.match(result.backups[0].etcdSnapshot?.name ?? '', /etc\/kubernetes\/tmp\/homelab-etcd-snapshot-v1\.32\.4-.*\.db$/)
  assert.ok((await stat(result.backups[0].etcdSnapshot?.name as string)).size > 0, 'the snapshot file exists on the node')

  const logs = new Map(await Promise.all([...CONTROL_PLANES, ...WORKERS].map(async (n) => [n, await nodeLog(homelab, n)] as const)))
  const patches = cordonPatches(homelab)
  for (const [name, log] of logs) {
    const kubeadmRuns = log.filter(kubeadmUpgrade).map((e) => e.argv.slice(0, e.argv[1] === 'apply' ? 3 : 2).join(' '))
    assert.deepEqual(kubeadmRuns, [name === 'server-1' ? `upgrade apply ${KTO}` : 'upgrade node'], `${name}: apply on the first control plane only, upgrade node elsewhere`)
    const kubeadmPkg = indexOf(log, installs('kubeadm'))
    const kubeadmStep = indexOf(log, kubeadmUpgrade)
    const kubeletPkg = indexOf(log, installs('kubelet'))
    const restart = indexOf(log, (e) => e.tool === 'systemctl' && e.argv[0] === 'restart' && e.argv[1] === 'kubelet')
    assert.ok(kubeadmPkg >= 0 && kubeadmPkg < kubeadmStep && kubeadmStep < kubeletPkg && kubeletPkg < restart, `${name}: kubeadm package, kubeadm upgrade, kubelet package, restart (${kubeadmPkg}, ${kubeadmStep}, ${kubeletPkg}, ${restart})`)
    assert.ok(log.slice(0, restart).some((e) => e.tool === 'systemctl' && e.argv[0] === 'daemon-reload'), `${name}: daemon-reload before the restart`)
    // Drained before the kubelet package: the cordon came first, and the node was uncordoned after the restart.
    const cordon = patches.find((p) => p.node === name && p.cordon)
    const uncordon = patches.find((p) => p.node === name && !p.cordon)
    assert.ok(cordon && uncordon, `${name} was cordoned and uncordoned`)
    const cordonAt = homelab.api.audit.since(0).find((e) => e.seq === cordon.seq)?.at as number
    assert.ok(cordonAt < log[kubeletPkg].time.getTime(), `${name}: cordoned (and drained) before the kubelet package`)
    assert.ok(homelab.api.audit.since(0).find((e) => e.seq === uncordon.seq)!.at > log[restart].time.getTime(), `${name}: uncordoned after the restart`)

    const build = ['server-3', 'agent-3'].includes(name) ? '150500.1.1' : '1.1'
    assert.deepEqual(await packageVersions(homelab, name), {kubeadm: `1.32.4-${build}`, kubelet: `1.32.4-${build}`, kubectl: `1.32.4-${build}`}, name)
    const repo = await repository(homelab, name)
    assert.equal(repo, before.get(name)?.replaceAll('/v1.31/', '/v1.32/'), `${name}: only the minor of the repository changed`)
    assert.notEqual(repo, before.get(name))
    assert.deepEqual(await heldPackages(kubeadmFixture(homelab.node(name).fixture)), heldBefore.get(name), `${name}: holds kept`)
  }
  for (const name of CONTROL_PLANES) {
    const versions = await manifestVersions(kubeadmFixture(homelab.node(name).fixture))
    for (const c of ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler']) assert.equal(versions[c], KTO, `${name} ${c}`)
  }
  assert.equal(homelab.api.kubeadm.kubernetesVersion(), KTO)

  // One control plane at a time: each one's changes start after the previous one's restart.
  const span = (name: string) => {
    const log = changes(logs.get(name) ?? [])
    return [log[0].time.getTime(), log.at(-1)!.time.getTime()]
  }
  for (let i = 1; i < CONTROL_PLANES.length; i++) {
    assert.ok(span(CONTROL_PLANES[i])[0] > span(CONTROL_PLANES[i - 1])[1], `${CONTROL_PLANES[i]} started after ${CONTROL_PLANES[i - 1]} was done`)
  }
  assert.ok(Math.min(...WORKERS.map((w) => span(w)[0])) > span('server-3')[1], 'workers after every control plane')
  // Workers under --concurrency 2: never more than two cordoned at once.
  let cordoned = 0
  let most = 0
  for (const p of patches.filter((x) => WORKERS.includes(x.node))) {
    cordoned += p.cordon ? 1 : -1
    most = Math.max(most, cordoned)
  }
  assert.ok(most >= 1 && most <= 2, `at most 2 workers at once (saw ${most})`)

  for (const [name, state] of await kubeadmNodeStates(homelab)) assert.deepEqual([state.kubelet, state.ready, state.cordoned], [KTO, true, false], name)
  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'succeeded')
  assert.deepEqual(journal.compensations.filter((c) => c.state !== 'compensated').map((c) => c.id), [], 'nothing left to undo or warn about')

  // Run again: every node is at the target, nothing is changed.
  const since = (homelab.api.audit.at(-1)?.seq ?? 0)
  const again = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--yes', '--json'])
  assert.equal(again.exitCode, 0, again.stdout + again.stderr)
  assert.equal(parseJson<Result>(again.stdout).outcome, 'nothing-to-do')
  assert.deepEqual(writes(homelab, since).filter((e) => e.resource !== 'leases'), [])
})

test('a patch upgrade keeps the repository definition as it is, restarts each kubelet once, and snapshots etcd from inside its pod when the host has no etcdctl', async (t) => {
  const homelab = await kubeadmLab(t, {nodes: [{name: 'server-1', role: 'server', hostEtcdctl: false}, {name: 'agent-1', role: 'agent'}, {name: 'agent-2', role: 'agent'}]})
  const names = ['server-1', 'agent-1', 'agent-2']
  const files = new Map(await Promise.all(names.map(async (n) => [n, {text: await repository(homelab, n), mtime: (await stat(kubeadmFixture(homelab.node(n).fixture).repoFile)).mtimeMs}] as const)))
  const run = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.31.5', '--yes', '--json'])
  assert.equal(run.exitCode, 0, run.stdout + run.stderr)
  const result = parseJson<Result>(run.stdout)
  assert.equal(result.outcome, 'succeeded')
  const snapshot = result.backups[0]?.etcdSnapshot?.name as string
  assert.ok((await stat(snapshot)).size > 0, 'the snapshot was moved out of the etcd data dir into kubeadm\'s backup dir')
  assert.ok((await nodeLog(homelab, 'server-1')).some((e) => e.tool === 'crictl' && e.argv[0] === 'exec' && e.argv.includes('etcdctl') && e.privileged), 'taken with crictl exec … etcdctl')
  for (const name of names) {
    assert.equal(await repository(homelab, name), files.get(name)?.text, `${name}: repository unchanged`)
    assert.equal((await stat(kubeadmFixture(homelab.node(name).fixture).repoFile)).mtimeMs, files.get(name)?.mtime, `${name}: repository not rewritten`)
    assert.deepEqual(await packageVersions(homelab, name), {kubeadm: '1.31.5-1.1', kubelet: '1.31.5-1.1', kubectl: '1.31.5-1.1'})
    const log = await nodeLog(homelab, name)
    assert.equal(log.filter((e) => e.tool === 'systemctl' && e.argv[0] === 'restart').length, 1, `${name}: one kubelet restart`)
  }
  for (const [name, state] of await kubeadmNodeStates(homelab)) assert.deepEqual([state.kubelet, state.ready, state.cordoned], ['v1.31.5', true, false], name)
})

test('a downgrade, a skipped minor, a version the repository lacks, kubeadm upgrade plan refusing: exit 3, no package change, no API write', async (t) => {
  const homelab = await kubeadmLab(t, {servers: 1, agents: 1, releases: ['v1.31.5', KTO, 'v1.33.1']})
  const cases: Array<[string[], RegExp]> = [
    [['--to', 'v1.31.3'], /runs v1\.31\.4; v1\.31\.3 would be a downgrade/],
    [['--to', 'v1.33.1', '--no-hops'], /v1\.33\.1 is more than one minor version ahead of v1\.31\.4; nothing was changed/],
    [['--to', 'v1.32.9'], /has no kubeadm v1\.32\.9/],
    [['--to', KTO, '--only-plan-fails'], /node server-1: kubeadm upgrade plan v1\.32\.4 failed: \[upgrade\/versions\] FATAL: the API server is not healthy/],
  ]
  for (const [flags, message] of cases) {
    const planFails = flags.includes('--only-plan-fails')
    const args = flags.filter((f) => f !== '--only-plan-fails')
    await setKubeadmFailure(kubeadmFixture(homelab.node('server-1').fixture), 'plan', planFails ? 'the API server is not healthy' : null)
    const since = (homelab.api.audit.at(-1)?.seq ?? 0)
    const run = await homelab.cli(['k8s', 'upgrade', ...args, '--yes'])
    assert.equal(run.exitCode, 3, `${args.join(' ')}: ${run.stdout}${run.stderr}`)
    assert.match(run.stderr, message, args.join(' '))
    assert.deepEqual(writes(homelab, since), [], `${args.join(' ')}: no API write`)
  }
  for (const node of homelab.nodes) {
    assert.deepEqual(changes(await nodeLog(homelab, node.spec.name)), [], `${node.spec.name}: no package, kubeadm or kubelet change`)
    assert.deepEqual(await packageVersions(homelab, node.spec.name), {kubeadm: '1.31.4-1.1', kubelet: '1.31.4-1.1', kubectl: '1.31.4-1.1'})
  }
  assert.deepEqual(await journals(homelab), [], 'no run was started')
})

test('--dry-run of a kubeadm minor upgrade writes nothing and changes no package', async (t) => {
  const homelab = await kubeadmLab(t, {servers: 1, agents: 1})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', KTO, '--dry-run'])
  assert.equal(run.exitCode, 0, run.stdout + run.stderr)
  assert.match(run.stdout, /server-1 \(control-plane, amd64, apt, repository → v1\.32\): v1\.31\.4 → v1\.32\.4/)
  assert.deepEqual(writes(homelab), [])
  for (const node of homelab.nodes) assert.deepEqual(changes(await nodeLog(homelab, node.spec.name)), [], node.spec.name)
})

test('two minors ahead: one hop per minor, each switching the repository one minor on', async (t) => {
  const homelab = await kubeadmLab(t, {servers: 1, agents: 1, releases: [KTO, 'v1.33.1'], workloads: false})
  const before = await repository(homelab, 'agent-1')
  const run = await homelab.cli(['k8s', 'upgrade', '--to', 'v1.33.1', '--yes', '--json'])
  assert.equal(run.exitCode, 0, run.stdout + run.stderr)
  const result = parseJson<Result & {hops: string[]; runIds: string[]}>(run.stdout)
  assert.deepEqual(result.hops, [KTO, 'v1.33.1'])
  assert.equal(result.runIds.length, 2)
  for (const name of ['server-1', 'agent-1']) {
    assert.deepEqual(await packageVersions(homelab, name), {kubeadm: '1.33.1-1.1', kubelet: '1.33.1-1.1', kubectl: '1.33.1-1.1'}, name)
    const applies = (await nodeLog(homelab, name)).filter((e) => e.tool === 'kubeadm' && e.argv[1] === 'apply').map((e) => e.argv[2])
    assert.deepEqual(applies, name === 'server-1' ? [KTO, 'v1.33.1'] : [])
  }
  assert.equal(await repository(homelab, 'agent-1'), before.replaceAll('/v1.31/', '/v1.33/'))
  assert.equal(homelab.api.kubeadm.kubernetesVersion(), 'v1.33.1')
})
