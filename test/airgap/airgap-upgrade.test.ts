/**
 * Issue 13, end to end on the simulated homelab: air-gapped nodes (their images come from the
 * archive in the agent's image dir, and the simulated node refuses Ready without the archive of
 * the version it runs) and nodes behind a registry mirror (a loopback registry).
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {chmod, mkdir, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import path from 'node:path'
import {test, type TestContext} from 'node:test'

import {imageListFor, imagesArchiveName} from '../sim/airgap-images.js'
import type {Homelab} from '../sim/homelab.js'
import {agentImagesDir, readImagesLog, seedImagesArchive, setStartFailure} from '../sim/node-fixture.js'
import {startRegistryServer} from '../sim/registry-server.js'
import {FROM, TO, journals, lab, nodeStates, parseJson, spawnCli, writes} from '../upgrade/helpers.js'

const ARCHIVE = imagesArchiveName('k3s', 'amd64')
const SMALL = {servers: 1, agents: 2}

interface RunJson {
  error?: {message: string; hint?: string}
}

async function upgrade(homelab: Homelab, extra: string[] = []) {
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes', '--json', ...extra])
  return {...run, result: parseJson<RunJson>(run.stdout), all: `${run.stdout}\n${run.stderr}`}
}

/** The image dir of every node: file → sha256 (hidden staged / kept files included). */
async function imageDirs(homelab: Homelab): Promise<Map<string, Record<string, string>>> {
  const out = new Map<string, Record<string, string>>()
  for (const node of homelab.nodes) {
    const dir = agentImagesDir(node.fixture)
    const files: Record<string, string> = {}
    for (const file of (await readdir(dir).catch(() => [])).sort()) {
      files[file] = createHash('sha256').update(await readFile(path.join(dir, file))).digest('hex')
    }
    out.set(node.spec.name, files)
  }
  return out
}

function assertArchivesAt(homelab: Homelab, dirs: Map<string, Record<string, string>>, version: string): void {
  const expected = {[ARCHIVE]: homelab.release.sha256(version, ARCHIVE)}
  for (const [name, files] of dirs) assert.deepEqual(files, expected, `${name}: the image dir holds ${version}'s archive and nothing else`)
}

test('air-gapped 3+3: every node gets the verified archive before its restart, the old ones are gone after, nothing else downloads', async (t) => {
  const homelab = await lab(t, {images: 'archive'})
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 0, run.all)
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
  assertArchivesAt(homelab, await imageDirs(homelab), TO)
  assert.equal((await journals(homelab)).at(-1)?.steps.find((s) => s.name === 'retire-archives')?.state, 'done')
  for (const node of homelab.nodes) {
    // The start at the target found its own archive: it was in place before the restart.
    const results = (await readImagesLog(node.fixture)).filter((e) => e.args[0] === 'result')
    assert.deepEqual(results.at(-1)?.args, ['result', 'archive', 'ready', TO, 'amd64'], `${node.spec.name}: ${JSON.stringify(results)}`)
  }
  // Downloaded once for all six nodes (one arch): by the CLI, no node fetched its own.
  assert.equal(homelab.release.requests.filter((r) => r.file === ARCHIVE && r.hop === 'download').length, 1)
})

test('--dry-run shows each node\'s images mode and what would be sent', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive'})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const lines = run.stdout.split('\n').filter((line) => line.includes('images: archive'))
  assert.equal(lines.length, 3, run.stdout)
  for (const line of lines) assert.match(line, /images: archive \(k3s-airgap-images-amd64\.tar\.zst in .*agent\/images\); sends k3s-airgap-images-amd64\.tar\.zst \(2\.0 MiB\)/)
  assertArchivesAt(homelab, await imageDirs(homelab), FROM)
})

test('a failing agent: every node\'s archives are put back as they were, from the kept files', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive', config: {upgrade: {agentConcurrency: 1}}})
  await setStartFailure(homelab.node('agent-2').fixture, 'level=fatal msg="flag provided but not defined: -some-removed-flag"', {version: TO})
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 4, run.all)
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  assertArchivesAt(homelab, await imageDirs(homelab), FROM)
  assert.equal(homelab.release.downloads({version: FROM, file: ARCHIVE}), 0, 'the old archives were kept on the nodes, not fetched again')
})

test('a corrupted archive on the release server: exit 3 before any change', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive'})
  homelab.release.corrupt(TO, ARCHIVE)
  const mark = homelab.api.audit.at(-1)?.seq ?? 0
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 3, run.all)
  assert.match(run.result.error?.message ?? run.stderr, /k3s-airgap-images-amd64\.tar\.zst.*sha256 does not match|sha256 does not match.*k3s-airgap-images-amd64\.tar\.zst/)
  assert.deepEqual(writes(homelab, mark), [], 'nothing was written to the cluster')
  assertArchivesAt(homelab, await imageDirs(homelab), FROM)
})

test('not enough disk for the archive on one node: exit 3 naming it, nothing changed', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive'})
  // agent-2's image dir lives on a nearly full filesystem (its df says so).
  const df = path.join(homelab.node('agent-2').fixture.fakebinDir, 'df')
  await writeFile(df, '#!/bin/sh\nfor d; do :; done\necho "Filesystem 1024-blocks Used Available Capacity Mounted on"\ncase "$d" in *agent/images*) echo "/dev/sim 9000000 8999000 1000 99% /var";; *) echo "/dev/sim 90000000 1000 89999000 1% /";; esac\n')
  await chmod(df, 0o755)
  const mark = homelab.api.audit.at(-1)?.seq ?? 0
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 3, run.all)
  assert.match(run.result.error?.message ?? run.stderr, /node agent-2: not enough free disk for the images archives \(1 MiB free in .*agent\/images/)
  assert.doesNotMatch(run.result.error?.message ?? '', /node (server-1|agent-1): not enough/)
  assert.deepEqual(writes(homelab, mark), [])
  assertArchivesAt(homelab, await imageDirs(homelab), FROM)
})

async function mirrorLab(t: TestContext, missing: readonly string[]) {
  const homelab = await lab(t, SMALL)
  const images = imageListFor(TO).map((image) => image.replace(/^docker\.io\//, ''))
  const registry = await startRegistryServer({images: images.filter((image) => !missing.some((m) => image.startsWith(m)))})
  t.after(() => registry.stop())
  for (const node of homelab.nodes) {
    const etc = path.join(node.fixture.dir, 'etc')
    await mkdir(etc, {recursive: true})
    await writeFile(path.join(etc, 'registries.yaml'), `mirrors:\n  docker.io:\n    endpoint:\n      - "${registry.url}"\n`)
  }
  return {homelab, registry, images}
}

test('registry mode, two images missing from the mirror: exit 3 listing both with the copy command, no writes', async (t) => {
  const {homelab, registry, images} = await mirrorLab(t, ['rancher/mirrored-pause', 'rancher/mirrored-coredns-coredns'])
  const mark = homelab.api.audit.at(-1)?.seq ?? 0
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 3, run.all)
  const message = run.result.error?.message ?? ''
  assert.match(message, /2 images of the target release are missing from the registry mirror/)
  assert.match(message, /docker\.io\/rancher\/mirrored-pause:/)
  assert.match(message, /docker\.io\/rancher\/mirrored-coredns-coredns:/)
  assert.match(run.result.error?.hint ?? '', /skopeo copy --all (?:--dest-tls-verify=false )?docker:\/\/docker\.io\/rancher\/mirrored-pause:\S+ docker:\/\/127\.0\.0\.1:\d+\/rancher\/mirrored-pause:/)
  assert.deepEqual(writes(homelab, mark), [])
  // Asked once per image for the three nodes, from this machine.
  assert.equal(registry.manifestRequests().length, images.length)
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
})

test('registry mode, every image in the mirror: the plan says so and the upgrade runs', async (t) => {
  const {homelab} = await mirrorLab(t, [])
  const dry = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
  assert.equal(dry.exitCode, 0, `${dry.stdout}\n${dry.stderr}`)
  assert.equal(dry.stdout.split('\n').filter((line) => /images: registry \(mirrors in .*registries\.yaml\)/.test(line)).length, 3, dry.stdout)
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 0, run.all)
})

test('rke2, air-gapped with the core and canal archives: each node gets both, named as it holds them', async (t) => {
  const RFROM = 'v1.31.3+rke2r1'
  const RTO = 'v1.31.4+rke2r1'
  const files = ['rke2-images-canal.linux-amd64.tar.zst', 'rke2-images-core.linux-amd64.tar.zst']
  const homelab = await lab(t, {...SMALL, distribution: 'rke2', version: RFROM, releases: [RTO], images: 'archive'})
  // Split archives instead of the all-in-one the fixture seeds.
  for (const node of homelab.nodes) {
    const dir = agentImagesDir(node.fixture)
    for (const file of await readdir(dir)) await rm(path.join(dir, file))
    for (const file of files) await seedImagesArchive(node.fixture, {version: RFROM, file})
  }
  const run = await homelab.cli(['k8s', 'upgrade', '--to', RTO, '--yes', '--json'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  for (const [name, dir] of await imageDirs(homelab)) {
    assert.deepEqual(dir, Object.fromEntries(files.map((file) => [file, homelab.release.sha256(RTO, file)])), name)
  }
})

test('a kube-system pod that does not come up on the new images: the old archives stay until the verification, which fails, and the undo uses them', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive', config: {upgrade: {healthGate: {timeout: '2s'}}}})
  homelab.api.pods.add({name: 'svclb-probe', namespace: 'kube-system', node: 'server-1', labels: {app: 'svclb-probe'}, pinned: false})
  homelab.api.controllers.kubelet!.readiness.push({namespace: 'kube-system', matchLabels: {app: 'svclb-probe'}, onVersion: TO, never: true})
  const run = await upgrade(homelab)
  assert.equal(run.exitCode, 4, run.all)
  assert.match(run.result.error?.message ?? '', /verification after the upgrade to v1\.31\.5\+k3s1 failed: kube-system pod svclb-probe/)
  const journal = (await journals(homelab)).at(-1)
  assert.notEqual(journal?.steps.find((s) => s.name === 'retire-archives')?.state, 'done', 'the old archives were removed before the verification')
  assertArchivesAt(homelab, await imageDirs(homelab), FROM)
  assert.equal(homelab.release.downloads({version: FROM, file: ARCHIVE}), 0)
})

test('install.uploadConcurrency bounds the archive pushes, whatever --concurrency is', async (t) => {
  const homelab = await lab(t, {servers: 1, agents: 4, images: 'archive', config: {install: {uploadConcurrency: 1}, upgrade: {agentConcurrency: 4}}})
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  // Each push from its "copying" line to its "staged and verified" line, by the log's times.
  const spans = new Map<string, {from?: number; to?: number}>()
  for (const line of `${run.stdout}\n${run.stderr}`.split('\n')) {
    const m = /^(\S+Z)\s+(\S+): (copying k3s-airgap-images|k3s-airgap-images-amd64\.tar\.zst staged and verified)/.exec(line)
    if (!m) continue
    const span = spans.get(m[2]!) ?? {}
    if (m[3]!.startsWith('copying')) span.from = Date.parse(m[1]!)
    else span.to = Date.parse(m[1]!)
    spans.set(m[2]!, span)
  }
  assert.equal(spans.size, 5, JSON.stringify([...spans]))
  const sorted = [...spans.values()].sort((a, b) => (a.from ?? 0) - (b.from ?? 0))
  for (let i = 1; i < sorted.length; i++) assert.ok((sorted[i]!.from ?? 0) >= (sorted[i - 1]!.to ?? Infinity), `two pushes overlapped: ${JSON.stringify(sorted)}`)
})

test('registry mode with a mirror for a private registry only: the release images are a warning (pulled upstream), not a refusal', async (t) => {
  const homelab = await lab(t, SMALL)
  const registry = await startRegistryServer({images: []})
  t.after(() => registry.stop())
  for (const node of homelab.nodes) {
    const etc = path.join(node.fixture.dir, 'etc')
    await mkdir(etc, {recursive: true})
    await writeFile(path.join(etc, 'registries.yaml'), `mirrors:\n  registry.lan:\n    endpoint:\n      - "${registry.url}"\n`)
  }
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--dry-run'])
  assert.equal(run.exitCode, 0, `${run.stdout}\n${run.stderr}`)
  const count = imageListFor(TO).length
  assert.match(`${run.stdout}\n${run.stderr}`, new RegExp(`warning: ${count} images of v1\\.31\\.5\\+k3s1 \\(docker\\.io/rancher/\\S+, docker\\.io/rancher/\\S+…\\) have no mirror in registries\\.yaml on server-1, agent-1, agent-2: containerd pulls them from their own registry`))
  assert.equal(registry.manifestRequests().length, 0)
})

test('the old archive cannot be removed on one node after a verified upgrade: a warning with the command, the run still succeeds', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive'})
  homelab.node('agent-2').ssh.faults?.dropAfterCommand(/homelab-prev"; done/, 1)
  const run = await homelab.cli(['k8s', 'upgrade', '--to', TO, '--yes'])
  const all = `${run.stdout}\n${run.stderr}`
  assert.equal(homelab.node('agent-2').ssh.faults?.dropped, 1, 'the fault never fired')
  assert.equal(run.exitCode, 0, all)
  assert.match(all, /agent-2: (?:warn: )?could not remove the previous images archives \(.*connection lost.*\); remove them with: ssh (?:\S+@)?127\.\S+ sudo rm -f \S+\/agent\/images\/\.k3s-airgap-images-amd64\.tar\.zst\.homelab-prev/)
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: TO, disk: TO, ready: true, cordoned: false}, name)
})

test('killed while removing the old archives, then rolled back: the removed ones come back from the release', async (t) => {
  const homelab = await lab(t, {...SMALL, images: 'archive', config: {upgrade: {agentConcurrency: 1}}})
  const cli = spawnCli(t, homelab, ['k8s', 'upgrade', '--to', TO, '--yes', '--log-format', 'json'])
  await cli.waitForEvent((e) => /previous images archives removed/.test(e.message ?? ''))
  cli.child.kill('SIGKILL')
  await cli.exited
  const rollback = await homelab.cli(['k8s', 'rollback', '--yes', '--json'])
  assert.equal(rollback.exitCode, 0, `${rollback.stdout}\n${rollback.stderr}`)
  assert.equal(parseJson<{outcome: string}>(rollback.stdout).outcome, 'compensated')
  for (const [name, state] of await nodeStates(homelab)) assert.deepEqual(state, {kubelet: FROM, disk: FROM, ready: true, cordoned: false}, name)
  assertArchivesAt(homelab, await imageDirs(homelab), FROM)
  assert.equal(homelab.release.downloads({version: FROM, file: ARCHIVE}), 1, 'the removed old archive was fetched once from the release')
})
