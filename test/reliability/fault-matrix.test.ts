/**
 * Issue 9, fault matrix (the faults met before or at the first change; the ones met later, in
 * the middle of a stage, are in test/upgrade/: compensate-*, ctrl-c, kill-*, lock, kubeadm-*).
 * Each: the exit code, no API write to nodes, nothing cordoned, every node where it was.
 */
import assert from 'node:assert/strict'
import {mkdir, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {after, before, test} from 'node:test'

import type {Homelab} from '../sim/homelab.js'
import {readServiceLog, setSudoPasswordRequired} from '../sim/node-fixture.js'
import {FROM, TO, journals, lab, nodeStates} from '../upgrade/helpers.js'

let homelab: Homelab
let stop: (() => Promise<void>) | undefined
before(async () => {
  homelab = await lab((fn) => (stop = fn), {channels: {stable: TO}})
})
after(() => stop?.())

/** A restart, stop or start of the service (pre-flight only asks the service manager questions). */
const changedService = (e: {source: string; args: string[]}) => e.source === 'service' || (e.source === 'systemctl' && ['restart', 'stop', 'start'].includes(e.args[0] ?? '')) || (e.source === 'rc-service' && ['restart', 'stop', 'start'].includes(e.args[1] ?? ''))

/** Runs the upgrade with the fault in place, and checks that nothing on the nodes moved. */
async function refused(args: string[], expected: {exitCode: number; stderr: RegExp; writes?: 'none' | 'lock-only'}) {
  const since = homelab.api.audit.at(-1)?.seq ?? 0
  const restarts = await Promise.all(homelab.nodes.map(async (n) => (await readServiceLog(n.fixture)).filter(changedService).length))
  const result = await homelab.cli(['k8s', 'upgrade', ...args, '--yes'])
  assert.equal(result.exitCode, expected.exitCode, result.stdout + result.stderr)
  assert.match(result.stdout + result.stderr, expected.stderr)
  const writes = homelab.api.audit.since(since).filter((e) => ['create', 'update', 'patch', 'delete'].includes(e.verb))
  const allowed = expected.writes === 'lock-only' ? writes.filter((e) => e.resource !== 'leases' && e.resource !== 'backups') : writes
  assert.deepEqual(allowed.map((e) => `${e.verb} ${e.resource} ${e.name ?? ''}`), [], 'no write that touches the cluster')
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  const after = await Promise.all(homelab.nodes.map(async (n) => (await readServiceLog(n.fixture)).filter(changedService).length))
  assert.deepEqual(after, restarts, 'no service was restarted')
}

test('the k3s binary does not match its sha256: exit 3, nothing installed', async () => {
  homelab.release.corrupt(TO, 'k3s')
  try {
    await refused(['--to', TO], {exitCode: 3, stderr: /download sha256 does not match .* nothing was installed/})
  } finally {
    homelab.release.clearFaults()
  }
})

test('the release server is unreachable: exit 3', async () => {
  homelab.release.failNext(1000, 'reset')
  try {
    await refused(['--to', TO], {exitCode: 3, stderr: /cannot download http:\/\/127\.0\.0\.1:\d+\/download\/.*sha256sum-amd64\.txt.*\(fix: check the network and install\.releaseUrl/})
  } finally {
    homelab.release.clearFaults()
  }
})

test('the Velero BackupStorageLocation is Unavailable: exit 3', async () => {
  homelab.api.velero?.setLocationPhase('Unavailable')
  try {
    await refused(['--to', TO], {exitCode: 3, stderr: /BackupStorageLocation default is Unavailable, not Available \(fix: .*--skip-backup\)/})
  } finally {
    homelab.api.velero?.setLocationPhase('Available')
  }
})

test('sudo asks for a password on one node: exit 3, named', async () => {
  const agent = homelab.node('agent-2').fixture
  await setSudoPasswordRequired(agent, true)
  try {
    await refused(['--to', TO], {exitCode: 3, stderr: /node agent-2: .*sudo: a password is required.*\(fix: give the SSH user passwordless sudo/})
  } finally {
    await setSudoPasswordRequired(agent, false)
  }
})

test('the run journals cannot be written: exit 2 before the lock or any pre-flight', async () => {
  const runs = path.join(homelab.env.XDG_STATE_HOME, 'homelab', 'runs')
  await rm(runs, {recursive: true, force: true})
  await mkdir(path.dirname(runs), {recursive: true})
  await writeFile(runs, 'a file where the runs directory goes')
  try {
    await refused(['--to', TO], {exitCode: 2, stderr: /cannot write run journals to .*runs \(fix: check that the directory is writable, or set XDG_STATE_HOME/})
    assert.equal(homelab.api.audit.matching({resource: 'leases', verb: 'create'}).length, 0, 'the lock was not even taken')
  } finally {
    await rm(runs, {force: true})
  }
})

test('the Velero backup fails: the run stops before any node is touched, exit 1, the journal says so', async () => {
  homelab.api.velero?.failNextBackup('Failed', 'object storage upload failed')
  await refused(['--to', TO], {exitCode: 1, stderr: /Failed before anything was changed\.\n  cause: .*object storage upload failed/, writes: 'lock-only'})
  const [journal] = (await journals(homelab)).slice(-1)
  assert.equal(journal.status, 'failed')
  assert.deepEqual(journal.compensations, [], 'nothing to undo')
})

// Last: it stops the channel server for good.
test('the channel server is unreachable: exit 3, nothing changed', async () => {
  await homelab.channels.stop()
  await refused(['--to', 'stable'], {exitCode: 3, stderr: /cannot reach the channel server at http:\/\/127\.0\.0\.1:\d+\/.*stable.*; nothing was changed \(fix: /})
})
