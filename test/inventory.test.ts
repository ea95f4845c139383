import assert from 'node:assert/strict'
import {mkdtemp, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import path from 'node:path'
import {test} from 'node:test'

import {buildInventory, type InventoryConfig} from '../src/inventory.js'
import {loadKubeConfig} from '../src/kube/client.js'
import type {ClusterNode} from '../src/kube/nodes.js'

const base: InventoryConfig = {
  discover: false,
  ssh: {become: 'sudo', user: 'admin'},
  install: {binDir: '/usr/local/bin', dataDir: '/var/lib/rancher/k3s'},
  nodes: [],
}

const clusterNode = (name: string, role: 'server' | 'agent', ip: string): ClusterNode => ({
  name,
  role,
  internalIP: ip,
  kubeletVersion: 'v1.31.4+k3s1',
  ready: true,
  unschedulable: false,
  labels: {},
})

test('file nodes decide without discovery; nodes on one side only are reported', () => {
  const inventory = buildInventory(
    {...base, nodes: [{name: 's1', host: '10.0.0.1', role: 'server', ssh: {port: 2222}}, {name: 'gone', host: '10.0.0.9', role: 'agent'}]},
    [clusterNode('s1', 'server', '192.168.1.1'), clusterNode('extra', 'agent', '192.168.1.2')],
  )
  assert.deepEqual(inventory.nodes.map((n) => n.name), ['s1', 'gone'])
  assert.equal(inventory.nodes[0].host, '10.0.0.1', 'the file\'s address wins over InternalIP')
  assert.equal(inventory.nodes[0].ssh.port, 2222)
  assert.equal(inventory.nodes[0].ssh.user, 'admin')
  assert.deepEqual(inventory.onlyInFile, ['gone'])
  assert.deepEqual(inventory.onlyInCluster, ['extra'])
})

test('discovery takes role and address from the API; the file adds SSH settings only', () => {
  const inventory = buildInventory(
    {...base, discover: true, nodes: [{name: 'a1', ssh: {user: 'pi', become: 'none'}, install: {binDir: '/opt/bin'}}]},
    [clusterNode('a1', 'agent', '192.168.1.5'), clusterNode('s1', 'server', '192.168.1.4')],
  )
  assert.deepEqual(inventory.nodes.map((n) => [n.name, n.role, n.host]), [['s1', 'server', '192.168.1.4'], ['a1', 'agent', '192.168.1.5']])
  const a1 = inventory.nodes[1]
  assert.equal(a1.ssh.user, 'pi')
  assert.equal(a1.ssh.become, 'none')
  assert.equal(a1.binDir, '/opt/bin')
  assert.equal(inventory.nodes[0].binDir, '/usr/local/bin')
  assert.deepEqual(inventory.onlyInCluster, [])
})

test('a role that disagrees with the control-plane label is a warning, not silently ignored', () => {
  const inventory = buildInventory({...base, nodes: [{name: 'x', host: 'h', role: 'agent'}]}, [clusterNode('x', 'server', '1.2.3.4')])
  assert.match(inventory.warnings.join('\n'), /x: homelab.yaml says agent, the cluster says server/)
})

test('kubeconfig rules: explicit file, missing context, and TLS verification cannot be switched off', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'kc-'))
  const file = path.join(dir, 'config')
  const kubeconfig = (skip: boolean) => `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: 'https://127.0.0.1:6443'${skip ? ', insecure-skip-tls-verify: true' : ''}}
users:
- name: u
  user: {token: secret}
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
`
  await writeFile(file, kubeconfig(false))
  assert.equal(loadKubeConfig({kubeconfig: file, env: {}}).kubeConfig.getCurrentContext(), 'ctx')
  assert.throws(() => loadKubeConfig({kubeconfig: file, context: 'nope', env: {}}), /context "nope" is not in .* \(contexts: ctx\)/)
  assert.throws(() => loadKubeConfig({kubeconfig: path.join(dir, 'missing'), env: {}}), /does not exist/)
  assert.equal(loadKubeConfig({env: {KUBECONFIG: file}, home: dir}).origin, file)
  await writeFile(file, kubeconfig(true))
  assert.throws(() => loadKubeConfig({kubeconfig: file, env: {}}), /sets insecure-skip-tls-verify/)
})
