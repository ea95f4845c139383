/**
 * rke2 behind the same verb: the scenarios the k3s suite proves, on a simulated rke2 homelab
 * (fake `rke2` binaries, rke2-server / rke2-agent units, rke2 release assets and channels).
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {readFile} from 'node:fs/promises'
import {after, before, describe, test} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {listSnapshots, readSudoLog} from '../sim/node-fixture.js'
import {AGENTS, SERVERS, breakUntilCompensated, cordonPatches, describeWrites, journals, lab, mostCordonedAtOnce, nodeStates, parseJson, readyAtSeq, spawnCli, writes} from './helpers.js'

const FROM = 'v1.31.3+rke2r1'
const TO = 'v1.31.4+rke2r1'
const RKE2 = {distribution: 'rke2' as const, version: FROM, releases: [TO]}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex')

describe('full rke2 upgrade of 3 servers and 3 agents over OpenSSH', () => {
  let homelab: Homelab
  let result: {outcome: string; distribution: string; backups: Array<{velero?: string; etcdSnapshot?: {node: string; name: string}}>; plans: Array<{drain: Array<{evict: string[]}>}>}
  const oldSha = new Map<string, string>()
  const cleanups: Array<() => Promise<void>> = []
  after(async () => {
    for (const cleanup of cleanups) await cleanup()
  })

  before(async () => {
    homelab = await lab((stop) => cleanups.push(stop), {...RKE2, ssh: 'openssh'})
    for (const node of homelab.nodes) oldSha.set(node.spec.name, sha256(await readFile(node.fixture.binaryPath)))
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--concurrency', '2', '--json'])
    assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
    result = parseJson(run.stdout)
  })

  test('succeeds: every node Ready and uncordoned at the target, on the API and on disk', async () => {
    assert.equal(result.outcome, 'succeeded')
    assert.equal(result.distribution, 'rke2')
    for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
  })

  test('the Velero backup completed and rke2 etcd-snapshot saved on the first server before any node changed', async () => {
    const completed = homelab.api.changes.of('backups').find((c) => c.diff.phase?.[1] === 'Completed')
    assert.ok(completed, 'the backup never completed')
    const firstNodeWrite = writes(homelab).find((w) => w.resource === 'nodes' || w.resource === 'pods')
    assert.ok(firstNodeWrite && firstNodeWrite.seq > completed.seq, 'a node was written before the backup completed')
    assert.ok((homelab.api.k3sLog[0]?.seq ?? 0) > completed.seq, 'rke2 restarted before the backup completed')
    assert.equal(result.backups[0].etcdSnapshot?.node, 'server-1')
    assert.deepEqual(await listSnapshots(homelab.node('server-1').fixture), [result.backups[0].etcdSnapshot?.name])
    const sudo = await readSudoLog(homelab.node('server-1').fixture)
    assert.ok(sudo.some((e) => e.command[0].endsWith('/rke2') && e.command[1] === 'etcd-snapshot' && e.command[2] === 'save'), 'no rke2 etcd-snapshot save ran')
  })

  test('servers strictly one at a time, agents two at a time, after every server', () => {
    for (const [i, server] of SERVERS.entries()) {
      const started = cordonPatches(homelab).find((p) => p.node === server && p.cordon)?.seq ?? Infinity
      assert.ok(Number.isFinite(started), `${server} was never upgraded`)
      if (i === 0) continue
      const previousReady = readyAtSeq(homelab, SERVERS[i - 1], TO)
      assert.ok(previousReady !== undefined && started > previousReady, `${server} started before ${SERVERS[i - 1]} was Ready at ${TO}`)
    }
    const serversDone = Math.max(...SERVERS.map((s) => cordonPatches(homelab).findLast((p) => p.node === s && !p.cordon)?.seq ?? Infinity))
    const early = writes(homelab).filter((w) => ((w.resource === 'nodes' && AGENTS.includes(w.name ?? '')) || w.resource === 'pods') && w.seq < serversDone)
    assert.deepEqual(early, [], describeWrites(early))
    assert.deepEqual(mostCordonedAtOnce(homelab, AGENTS), {most: 2, left: 0})
  })

  test('pods evicted through pods/eviction only; the CLI deleted no pod', () => {
    const evictions = homelab.api.audit.matching({verb: 'create', resource: 'pods', subresource: 'eviction'})
    const planned = result.plans[0].drain.flatMap((d) => d.evict)
    assert.ok(planned.length >= 3)
    for (const pod of planned) assert.ok(evictions.some((e) => `${e.namespace}/${e.name}` === pod && e.code === 201), `${pod} was not evicted`)
    assert.deepEqual(homelab.api.audit.matching({verb: ['delete', 'deletecollection'], resource: 'pods'}), [])
  })

  test('node side: rke2.prev is the old binary, the services were restarted with systemctl, no installer ran', async () => {
    for (const node of homelab.nodes) {
      const prev = await readFile(`${node.fixture.binaryPath}.prev`)
      assert.equal(sha256(prev), oldSha.get(node.spec.name), `${node.spec.name}: rke2.prev is not the previous binary`)
      const commands = (await readSudoLog(node.fixture)).map((e) => e.command.join(' '))
      const unit = node.spec.role === 'server' ? 'rke2-server' : 'rke2-agent'
      assert.ok(commands.includes(`systemctl restart ${unit}`), `${node.spec.name}: no systemctl restart ${unit} in ${commands.join('; ')}`)
      assert.deepEqual(commands.filter((c) => /install\.sh|get\.rke2\.io|INSTALL_RKE2/.test(c)), [], `${node.spec.name} ran an installer`)
    }
  })
})

describe('rke2 pre-flight', () => {
  test('without distribution: in homelab.yaml it is detected from the kubelet versions and said so; dry run writes nothing', async (t) => {
    const homelab = await lab(t, {...RKE2, servers: 1, agents: 1, writeDistribution: false})
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
    assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
    assert.match(run.stdout + run.stderr, /distribution rke2, detected from kubelet v1\.31\.3\+rke2r1 on every node/)
    assert.match(run.stdout, /Upgrade to v1\.31\.4\+rke2r1:/)
    assert.deepEqual(writes(homelab), [], describeWrites(writes(homelab)))
  })

  test('servers disagreeing about a .skip manifest: exit 3, each server named, the fix printed, nothing written', async (t) => {
    const homelab = await lab(t, {
      ...RKE2,
      nodes: [
        {name: 'server-1', role: 'server', skipManifests: ['rke2-ingress-nginx.yaml']},
        {name: 'server-2', role: 'server'},
        {name: 'server-3', role: 'server', skipManifests: ['rke2-ingress-nginx.yaml']},
        {name: 'agent-1', role: 'agent'},
      ],
    })
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(run.exitCode, 3, `${run.stdout}\n${run.stderr}`)
    assert.match(run.stderr, /the servers disagree about rke2-ingress-nginx\.yaml\.skip: present on server-1, server-3, missing on server-2/)
    assert.match(run.stderr, /create rke2-ingress-nginx\.yaml\.skip on server-2, or remove it from server-1, server-3/)
    assert.deepEqual(writes(homelab), [], describeWrites(writes(homelab)))
    assert.deepEqual(homelab.api.k3sLog, [])
  })

  test('a .skip manifest on every server: the plan names the component left alone', async (t) => {
    const homelab = await lab(t, {
      ...RKE2,
      nodes: [
        {name: 'server-1', role: 'server', skipManifests: ['rke2-ingress-nginx.yaml']},
        {name: 'agent-1', role: 'agent'},
      ],
    })
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
    assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
    assert.match(run.stdout, /packaged components left alone \(\.skip on every server\): rke2-ingress-nginx\.yaml/)
  })

  test('a binary owned by an RPM: exit 3 with the fix; install.allowPackageOwnedBinary lets it pass', async (t) => {
    const homelab = await lab(t, {...RKE2, nodes: [{name: 'server-1', role: 'server', packageOwned: 'rpm'}, {name: 'agent-1', role: 'agent'}]})
    const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
    assert.equal(run.exitCode, 3, `${run.stdout}\n${run.stderr}`)
    assert.match(run.stderr, /server-1: .*\/rke2 belongs to the rpm package rke2-common-\S+; replacing it would leave the package database wrong/)
    assert.match(run.stderr, /upgrade rke2 through the package manager \(dnf\/yum\), or set install\.allowPackageOwnedBinary: true/)
    assert.deepEqual(writes(homelab), [], describeWrites(writes(homelab)))

    await homelab.writeConfig({install: {allowPackageOwnedBinary: true}})
    const allowed = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
    assert.equal(allowed.exitCode, 0, `${allowed.stdout}\n${allowed.stderr}`)
  })
})

test('split roles: the etcd-only server first, then the control-plane servers one at a time, then the agents', async (t) => {
  const homelab = await lab(t, {
    ...RKE2,
    nodes: [
      {name: 'cp-1', role: 'server', serverKind: 'control-plane'},
      {name: 'cp-2', role: 'server', serverKind: 'control-plane'},
      {name: 'etcd-1', role: 'server', serverKind: 'etcd'},
      ...AGENTS.map((name) => ({name, role: 'agent' as const})),
    ],
  })
  const dry = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
  assert.equal(dry.exitCode, 0, `${dry.stdout}\n${dry.stderr}`)
  assert.match(dry.stdout, /servers, one at a time:\n {4}etcd-1 \(etcd, .*(?:\n {6}images: .*)?\n {4}cp-1 \(control-plane, .*(?:\n {6}images: .*)?\n {4}cp-2 \(control-plane, /)

  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const started = homelab.api.k3sLog.filter((e) => e.event === 'k3s-started' && e.version === TO).map((e) => e.node)
  assert.deepEqual(started.slice(0, 3), ['etcd-1', 'cp-1', 'cp-2'])
  assert.deepEqual([...started.slice(3)].sort(), AGENTS)
  const status = parseJson<{nodes: Array<{name: string; serverKind?: string}>}>((await homelab.cli(['k8s', 'status', '--json'])).stdout)
  assert.deepEqual(Object.fromEntries(status.nodes.filter((n) => n.serverKind).map((n) => [n.name, n.serverKind])), {'etcd-1': 'etcd', 'cp-1': 'control-plane', 'cp-2': 'control-plane'})
})

test('rke2 across two minors: through the newest v1.30 from rke2 channels, then v1.31', async (t) => {
  const start = 'v1.29.12+rke2r1'
  const v130 = 'v1.30.8+rke2r1'
  const homelab = await lab(t, {distribution: 'rke2', version: start, releases: [v130, TO], channels: {stable: TO, latest: TO, 'v1.30': v130, 'v1.31': TO}, servers: 1, agents: 1})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', 'stable', '--yes', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const result = parseJson<{hops: string[]; backups: unknown[]}>(run.stdout)
  assert.deepEqual(result.hops, [v130, TO])
  assert.equal(result.backups.length, 2)
  for (const node of ['server-1', 'agent-1']) {
    assert.deepEqual(homelab.api.k3sLog.filter((e) => e.node === node && e.event === 'k3s-started').map((e) => e.version), [v130, TO], node)
  }
})

test('an rke2 server that never becomes Ready: rke2.prev put back and restarted, exit 4, recovery names rke2', async (t) => {
  const homelab = await lab(t, {...RKE2, config: {upgrade: {timeouts: {nodeReady: '4s'}}}})
  const {api} = homelab
  const healed = breakUntilCompensated(homelab, 'server-2', TO)
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json'])
  await healed
  assert.equal(run.exitCode, 4, `${run.stdout}\n${run.stderr}`)
  assert.equal(parseJson<{outcome: string}>(run.stdout).outcome, 'compensated')
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  assert.deepEqual(api.k3sLog.filter((e) => e.node === 'server-2' && e.event === 'k3s-started').map((e) => e.version), [TO, FROM])
  const [journal] = await journals(homelab)
  assert.equal(journal.status, 'compensated')
  const restore = (journal as unknown as {compensations: Array<{id: string; description: string; manual?: string[]}>}).compensations.find((c) => c.id === 'restore-binary:server-1')
  assert.match(restore?.description ?? '', /put rke2 v1\.31\.3\+rke2r1 back on server-1/)
  assert.ok(restore?.manual?.some((line) => /sudo cp -p \S+\/rke2\.prev \S+\/rke2$/.test(line)), restore?.manual?.join('\n'))
  assert.ok(restore?.manual?.some((line) => / sudo systemctl restart rke2-server$/.test(line)), restore?.manual?.join('\n'))
})

test('SIGKILL in the rke2 agent stage, then --resume: finishes the same run with one backup and one snapshot', async (t) => {
  const homelab = await lab(t, RKE2)
  const {api} = homelab
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => e.type === 'log' && e.step === 'agents' && /binary swapped \(previous kept as rke2\.prev\)/.test(e.message ?? ''))
  cli.child.kill('SIGKILL')
  assert.equal((await cli.exited).signal, 'SIGKILL')
  const [crashed] = await journals(homelab)
  assert.equal(crashed.status, 'running')

  const resumed = await homelab.cli(['k8s', 'upgrade', '--resume', '--yes', '--json'])
  assert.equal(resumed.exitCode, 0, `${resumed.stdout}\n${resumed.stderr}`)
  assert.deepEqual(parseJson<{runIds: string[]}>(resumed.stdout).runIds, [crashed.id])
  assert.equal(api.audit.matching({verb: 'create', resource: 'backups', code: 201}).length, 1)
  assert.equal((await listSnapshots(homelab.node('server-1').fixture)).length, 1)
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
})
