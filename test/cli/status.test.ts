import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'

import {startHomelab, type Homelab} from '../sim/homelab.js'
import {requireSshdInCi} from '../sim/require-sshd.js'

describe('homelab k8s status against the simulated homelab', () => {
  let lab: Homelab
  before(async () => {
    requireSshdInCi()
    lab = await startHomelab({
      nodes: [
        {name: 'server-1', role: 'server'},
        {name: 'agent-1', role: 'agent', arch: 'arm64'},
        {name: 'agent-2', role: 'agent', cordoned: true},
      ],
    })
  })
  after(() => lab?.stop())

  test('prints one row per node with versions from the API and from disk', async () => {
    const result = await lab.cli(['k8s', 'status'])
    assert.equal(result.exitCode, 0, result.stderr)
    const lines = result.stdout.split('\n')
    const header = lines.find((line) => line.startsWith('NODE'))
    assert.ok(header, result.stdout)
    for (const column of ['ROLE', 'ADDRESS', 'KUBELET', 'ON DISK', 'READY', 'CORDONED', 'SSH']) assert.match(header, new RegExp(column))
    const row = (name: string) => lines.find((line) => line.startsWith(`${name} `)) ?? ''
    assert.match(row('server-1'), /server\s+127\.\S+\s+v1\.31\.4\+k3s1\s+v1\.31\.4\+k3s1\s+yes\s+no\s+ok/)
    assert.match(row('agent-2'), /agent .* yes\s+yes\s+ok/)
    assert.match(result.stdout, /Skew: all 3 nodes on v1\.31\.4\+k3s1/)
  })

  test('--json gives the same facts as data, and the CLI wrote nothing', async () => {
    const writesBefore = lab.api.audit.writes().length
    const result = await lab.cli(['k8s', 'status', '--json'])
    assert.equal(result.exitCode, 0, result.stderr)
    const status = JSON.parse(result.stdout)
    const byName = Object.fromEntries(status.nodes.map((n: {name: string}) => [n.name, n]))
    assert.deepEqual(Object.keys(byName).sort(), ['agent-1', 'agent-2', 'server-1'])
    assert.equal(byName['server-1'].role, 'server')
    assert.equal(byName['agent-1'].installedVersion, 'v1.31.4+k3s1')
    assert.equal(byName['agent-1'].ssh.reachable, true)
    assert.equal(byName['agent-2'].cordoned, true)
    assert.equal(byName['agent-2'].cordonedBy, undefined)
    assert.equal(status.skew.ok, true)
    assert.equal(lab.api.audit.writes().length, writesBefore)
  })

  test('a node whose SSH is down is reported, the others still are', async () => {
    await lab.node('agent-1').ssh.stop()
    const result = await lab.cli(['k8s', 'status', '--json'])
    assert.equal(result.exitCode, 0, result.stderr)
    const status = JSON.parse(result.stdout)
    const agent = status.nodes.find((n: {name: string}) => n.name === 'agent-1')
    assert.equal(agent.ssh.reachable, false)
    assert.match(agent.ssh.error, /agent-1|connect|refused/i)
    assert.equal(status.nodes.find((n: {name: string}) => n.name === 'server-1').ssh.reachable, true)
  })
})

describe('discovery and host keys', () => {
  let lab: Homelab
  before(async () => {
    requireSshdInCi()
    lab = await startHomelab({servers: 1, agents: 2, trustHostKeys: false})
  })
  after(() => lab?.stop())

  test('discover: true takes nodes from the API and reports a file node the cluster lacks', async () => {
    const ports = Object.fromEntries(lab.nodes.map((n) => [n.spec.name, n.ssh.port]))
    await lab.writeConfig({
      discover: true,
      nodes: [
        ...lab.nodes.map((n) => ({name: n.spec.name, ssh: {port: ports[n.spec.name]}, install: {binDir: n.fixture.binDir, dataDir: n.fixture.dataDir}})),
        {name: 'ghost', host: '127.0.0.9', role: 'agent'},
      ],
    })
    const result = await lab.cli(['k8s', 'status', '--json', '--accept-new-host-keys'])
    assert.equal(result.exitCode, 0, result.stderr)
    const status = JSON.parse(result.stdout)
    assert.deepEqual(status.nodes.map((n: {name: string}) => n.name).sort(), ['agent-1', 'agent-2', 'server-1'])
    // Addresses and roles came from the API (InternalIP, the control-plane label), not the file.
    for (const node of status.nodes) {
      assert.equal(node.address, lab.node(node.name).address)
      assert.equal(node.role, lab.node(node.name).spec.role)
      assert.equal(node.ssh.reachable, true, JSON.stringify(node))
    }
    assert.deepEqual(status.onlyInFile, ['ghost'])
  })

  test('an unknown host key is refused with its fingerprint and the fix', async () => {
    // A fresh known_hosts: nothing trusted.
    const {writeFile} = await import('node:fs/promises')
    await writeFile(lab.knownHostsPath, '')
    const result = await lab.cli(['k8s', 'status', '--json'])
    const status = JSON.parse(result.stdout)
    const server = status.nodes.find((n: {name: string}) => n.name === 'server-1')
    assert.equal(server.ssh.reachable, false)
    assert.match(server.ssh.error, /not in known_hosts \(SHA256:[A-Za-z0-9+/]+\)/)
    assert.match(server.ssh.error, /fix: .*(ssh-keyscan|--accept-new-host-keys)/)
  })
})
