/**
 * The simulated homelab, air-gapped (`images: 'archive'`): what the nodes hold, and that a node
 * started without its release's images archive stays NotReady in the API, as issue 13 needs.
 * Only the simulation is driven here (no CLI): the product's side has its own tests.
 */
import assert from 'node:assert/strict'
import {createHash} from 'node:crypto'
import {existsSync} from 'node:fs'
import {readFile, readdir} from 'node:fs/promises'
import {join} from 'node:path'
import {after, before, describe, test} from 'node:test'
import {parse} from 'yaml'

import {imagesArchiveName} from './airgap-images.js'
import {startHomelab, type Homelab} from './homelab.js'
import {missingImagesMessage} from './kube-api/index.js'
import {agentImagesDir, execOnNode, installBinary, readImagesLog, seedImagesArchive} from './node-fixture.js'

const V1 = 'v1.31.4+k3s1'
const V2 = 'v1.32.0+k3s1'
const R1 = 'v1.31.3+rke2r1'
const R2 = 'v1.31.4+rke2r1'
const SMALL = 256 * 1024

type Condition = {type: string; status: string; reason: string; message: string}

function readyCondition(lab: Homelab, name: string): Condition | undefined {
  return (lab.api.nodes.get(name)?.status?.conditions as Condition[] | undefined)?.find((c) => c.type === 'Ready')
}

async function restart(lab: Homelab, name: string): Promise<void> {
  const {fixture} = lab.node(name)
  const r = await execOnNode(fixture, ['sudo', '-n', 'systemctl', 'restart', fixture.serviceName])
  assert.equal(r.exitCode, 0, r.stderr)
}

/** Waits for the node to report `version` as its kubelet, then a little longer than the ready delay. */
async function settled(lab: Homelab, name: string, version: string): Promise<Condition> {
  await lab.api.waitFor(() => lab.api.nodes.get(name)?.status?.nodeInfo?.kubeletVersion === version, {timeoutMs: 10_000, message: `${name} at ${version}`})
  await new Promise((r) => setTimeout(r, 100))
  return readyCondition(lab, name)!
}

/** The shape of a config: its keys all the way down, values dropped. */
function shape(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(shape)
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, shape(v)]))
  return typeof value
}

describe('air-gapped k3s homelab', () => {
  let lab: Homelab

  before(async () => {
    lab = await startHomelab({images: 'archive', servers: 1, agents: 2, releases: [V2], archiveBytes: SMALL, ssh: 'inproc', readyDelayMs: 30})
  })
  after(() => lab.stop())

  test('every node holds the archive of its version and arch, with the release server\'s sha256', async () => {
    for (const n of lab.nodes) {
      const file = imagesArchiveName('k3s', n.spec.arch)
      assert.deepEqual(await readdir(agentImagesDir(n.fixture)), [file], n.spec.name)
      const bytes = await readFile(join(agentImagesDir(n.fixture), file))
      assert.equal(createHash('sha256').update(bytes).digest('hex'), lab.release.sha256(V1, file), n.spec.name)
      const sums = (lab.release.asset(V1, 'sha256sum-amd64.txt') ?? Buffer.alloc(0)).toString()
      assert.ok(sums.includes(`${lab.release.sha256(V1, file)}  ${file}\n`))
    }
  })

  test('homelab.yaml is the one a pull homelab gets', async () => {
    const pull = await startHomelab({servers: 1, agents: 2, releases: [V2], ssh: 'inproc'})
    try {
      const [airgapped, pulled] = await Promise.all([readFile(lab.configPath, 'utf8'), readFile(pull.configPath, 'utf8')])
      assert.deepEqual(shape(parse(airgapped)), shape(parse(pulled)))
      assert.doesNotMatch(airgapped, /images|archive/)
      assert.equal(existsSync(agentImagesDir(pull.node('agent-1').fixture)), false, 'pull nodes have no images dir')
      await installBinary(pull.node('agent-1').fixture, {version: V2})
      await restart(pull, 'agent-1')
      const c = await settled(pull, 'agent-1', V2)
      assert.equal(c.status, 'True', 'a pull node is Ready at the new version as before')
    } finally {
      await pull.stop()
    }
  })

  test('restarted at its version it imports its archive and turns Ready', async () => {
    await restart(lab, 'server-1')
    assert.equal((await settled(lab, 'server-1', V1)).status, 'True')
    assert.deepEqual((await readImagesLog(lab.node('server-1').fixture)).at(-1)!.args, ['result', 'archive', 'ready', V1, 'amd64'])
    assert.deepEqual(lab.api.k3sLog.at(-1)?.images, {mode: 'archive', imported: ['k3s-airgap-images-amd64.tar.zst'], ready: true})
  })

  test('a new binary with only the old archive: kubelet at the new version, NotReady on the pause image; its archive makes it Ready', async () => {
    const {fixture} = lab.node('agent-2')
    await installBinary(fixture, {version: V2})
    await restart(lab, 'agent-2')
    const c = await settled(lab, 'agent-2', V2)
    assert.equal(c.status, 'False')
    assert.equal(c.reason, 'KubeletNotReady')
    assert.equal(c.message, missingImagesMessage(V2, 'amd64'))
    assert.ok(c.message.includes('failed to pull image "docker.io/rancher/mirrored-pause:3.6"'), c.message)
    await new Promise((r) => setTimeout(r, 150))
    assert.equal(readyCondition(lab, 'agent-2')?.status, 'False', 'it stays NotReady')

    await seedImagesArchive(fixture, {version: V2, archiveBytes: SMALL})
    await restart(lab, 'agent-2')
    await lab.api.waitFor(() => readyCondition(lab, 'agent-2')?.status === 'True', {timeoutMs: 10_000, message: 'agent-2 Ready'})
    assert.deepEqual(lab.api.k3sLog.at(-1)?.images?.imported.sort(), ['k3s-airgap-images-amd64.tar.zst'])
    assert.equal(readyCondition(lab, 'agent-1')?.status, 'True', 'the other nodes are untouched')
  })
})

test('air-gapped rke2 homelab: rke2-images.linux-<arch>.tar.zst in place; a new rke2 without it stays NotReady', async () => {
  const lab = await startHomelab({version: R1, images: 'archive', nodes: [{name: 'server-1', role: 'server'}, {name: 'agent-1', role: 'agent', arch: 'arm64'}], releases: [R2], archiveBytes: SMALL, ssh: 'inproc', readyDelayMs: 30})
  try {
    const agent = lab.node('agent-1').fixture
    assert.deepEqual(await readdir(agentImagesDir(agent)), ['rke2-images.linux-arm64.tar.zst'])
    assert.equal(createHash('sha256').update(await readFile(join(agentImagesDir(agent), 'rke2-images.linux-arm64.tar.zst'))).digest('hex'), lab.release.sha256(R1, 'rke2-images.linux-arm64.tar.zst'))
    await installBinary(agent, {version: R2})
    await restart(lab, 'agent-1')
    const c = await settled(lab, 'agent-1', R2)
    assert.equal(c.status, 'False')
    assert.match(c.message, /air-gapped: no images archive for v1\.31\.4\+rke2r1 linux\/arm64/)
  } finally {
    await lab.stop()
  }
})
