/**
 * The simulation's rke2 side as a whole: an rke2 homelab (nodes over real sshd, the API's Node
 * objects, homelab.yaml), split-role labels for both distributions, and the channel server's
 * 302s. The fake binary, fixtures and release assets have their own tests beside them.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFile} from 'node:fs/promises'
import {userInfo} from 'node:os'
import {test} from 'node:test'
import {promisify} from 'node:util'

import {parse} from 'yaml'

import {startChannelServer} from './channel-server.js'
import {startHomelab, type Homelab} from './homelab.js'
import {fakeCommit} from './k3s-fake.js'
import {SimKubeApi, type StoredObject} from './kube-api/index.js'
import {requireSshdInCi} from './require-sshd.js'

const run = promisify(execFile)
const R1 = 'v1.31.3+rke2r1'
const R2 = 'v1.31.4+rke2r1'
const ROLE = 'node-role.kubernetes.io/'

/** The node-role labels of a Node, e.g. `['control-plane', 'etcd', 'master']`. */
function roles(node: StoredObject | undefined): string[] {
  assert.ok(node, 'node exists')
  return Object.entries(node.metadata.labels ?? {})
    .filter(([k, v]) => k.startsWith(ROLE) && v === 'true')
    .map(([k]) => k.slice(ROLE.length))
    .sort()
}

/** Runs argv on a node over its SSH server, as the product would. */
async function overSsh(lab: Homelab, node: string, argv: string[]): Promise<string> {
  const n = lab.node(node)
  const {stdout} = await run('ssh', [
    '-i', lab.identityPath, '-o', `UserKnownHostsFile=${lab.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
    '-p', String(n.ssh.port), `${userInfo().username}@${n.address}`, '--', ...argv,
  ], {env: lab.env, timeout: 20_000})
  return stdout
}

test('an rke2 homelab: rke2 on every node, rke2 labels and annotations, split roles, homelab.yaml says rke2', async () => {
  requireSshdInCi()
  const lab = await startHomelab({
    distribution: 'rke2',
    version: R1,
    releases: [R2],
    channels: {stable: R2, 'v1.31': R2},
    nodes: [
      {name: 'server-1', role: 'server', skipManifests: ['rke2-ingress-nginx.yaml']},
      {name: 'etcd-1', role: 'server', serverKind: 'etcd'},
      {name: 'cp-1', role: 'server', serverKind: 'control-plane', skipManifests: ['rke2-ingress-nginx.yaml']},
      {name: 'agent-1', role: 'agent', packageOwned: 'rpm'},
    ],
  })
  try {
    assert.equal(lab.distribution, 'rke2')
    const config = parse(await readFile(lab.configPath, 'utf8'))
    assert.equal(config.distribution, 'rke2')
    assert.deepEqual(config.nodes.map((n: {install: {binDir: string}}) => n.install.binDir), lab.nodes.map((n) => n.fixture.binDir))

    assert.deepEqual(roles(lab.api.nodes.get('server-1')), ['control-plane', 'etcd', 'master'])
    assert.deepEqual(roles(lab.api.nodes.get('etcd-1')), ['etcd'])
    assert.deepEqual(roles(lab.api.nodes.get('cp-1')), ['control-plane', 'master'])
    assert.deepEqual(roles(lab.api.nodes.get('agent-1')), [])
    const server = lab.api.nodes.get('server-1')!
    assert.equal(server.status?.nodeInfo?.kubeletVersion, R1)
    assert.equal(server.spec?.providerID, 'rke2://server-1')
    assert.equal(server.metadata.labels?.['node.kubernetes.io/instance-type'], 'rke2')
    const annotations = Object.keys(server.metadata.annotations ?? {})
    assert.ok(annotations.includes('rke2.io/node-args') && annotations.includes('rke2.io/internal-ip'), annotations.join(' '))
    assert.ok(!annotations.some((a) => a.startsWith('k3s.io/')), annotations.join(' '))
    assert.match(lab.api.nodes.get('etcd-1')!.metadata.annotations!['rke2.io/node-args']!, /--disable-apiserver/)

    // Over real SSH, as the product sees the nodes.
    const server1 = lab.node('server-1').fixture
    assert.equal(await overSsh(lab, 'server-1', [server1.binaryPath, '--version']), `rke2 version ${R1} (${fakeCommit(R1)})\ngo version go1.22.4 X:boringcrypto\n`)
    assert.equal(await overSsh(lab, 'server-1', ['systemctl', 'is-active', 'rke2-server']), 'active\n')
    assert.equal(await overSsh(lab, 'agent-1', ['systemctl', 'is-active', 'rke2-agent']), 'active\n')
    assert.equal(await overSsh(lab, 'agent-1', ['rpm', '-qf', lab.node('agent-1').fixture.binaryPath]), 'rke2-common-1.31.3~rke2r1-0.el9.x86_64\n')
    const skips = await overSsh(lab, 'cp-1', ['ls', lab.node('cp-1').fixture.manifestsDir])
    assert.match(skips, /^rke2-ingress-nginx\.yaml\.skip$/m)
    assert.doesNotMatch(await overSsh(lab, 'etcd-1', ['ls', lab.node('etcd-1').fixture.manifestsDir]), /\.skip/)

    // The servers on the other side of the wire speak rke2 too.
    const tag = await fetch(`${lab.channels.url}/stable`, {redirect: 'manual', signal: AbortSignal.timeout(5000)})
    assert.equal(tag.status, 302)
    assert.equal(tag.headers.get('location'), `https://github.com/rancher/rke2/releases/tag/${R2}`)
    assert.ok(lab.release.asset(R2, 'rke2.linux-amd64') && lab.release.asset(R2, 'rke2.linux-amd64.tar.gz'))
    assert.ok(lab.release.asset(R1, 'rke2.linux-amd64'), 'the start version is published too')

    // A restart over SSH brings the node up Ready at the version of the binary in place.
    await overSsh(lab, 'agent-1', ['sudo', '-n', 'systemctl', 'restart', 'rke2-agent'])
    assert.deepEqual(lab.api.k3sLog.filter((e) => e.node === 'agent-1').map((e) => [e.event, e.version]), [
      ['k3s-stopped', undefined],
      ['k3s-started', R1],
    ])
  } finally {
    await lab.stop()
  }
})

test('writeDistribution: false leaves the distribution to the kubeletVersion; k3s homelabs write none', async () => {
  requireSshdInCi()
  const rke2 = await startHomelab({version: R1, writeDistribution: false, nodes: [{name: 'server-1', role: 'server'}]})
  try {
    assert.equal(rke2.distribution, 'rke2', 'the version says rke2')
    assert.equal(parse(await readFile(rke2.configPath, 'utf8')).distribution, undefined)
    assert.equal(rke2.api.nodes.get('server-1')!.status?.nodeInfo?.kubeletVersion, R1)
    assert.equal(rke2.node('server-1').fixture.serviceName, 'rke2-server')
  } finally {
    await rke2.stop()
  }
  const k3s = await startHomelab({nodes: [{name: 'server-1', role: 'server'}]})
  try {
    assert.equal(k3s.distribution, 'k3s')
    assert.equal(parse(await readFile(k3s.configPath, 'utf8')).distribution, undefined)
    assert.deepEqual(roles(k3s.api.nodes.get('server-1')), ['control-plane', 'etcd', 'master'])
    assert.equal(k3s.node('server-1').fixture.binaryPath.endsWith('/bin/k3s'), true)
  } finally {
    await k3s.stop()
  }
  await assert.rejects(startHomelab({distribution: 'rke2', version: 'v1.31.4+k3s1', nodes: []}), /not a rke2 version/)
})

test('split roles as the API lists them, for k3s and rke2: role labels and node-args', async () => {
  const api = await SimKubeApi.start({crds: {velero: false, suc: false}})
  try {
    for (const [distribution, version] of [['k3s', 'v1.31.4+k3s1'], ['rke2', R1]] as const) {
      api.nodes.add({name: `${distribution}-all`, role: 'server', version})
      api.nodes.add({name: `${distribution}-etcd`, role: 'server', version, serverKind: 'etcd'})
      api.nodes.add({name: `${distribution}-cp`, role: 'server', version, serverKind: 'control-plane'})
      api.nodes.add({name: `${distribution}-agent`, role: 'agent', version})
      assert.deepEqual(roles(api.nodes.get(`${distribution}-all`)), ['control-plane', 'etcd', 'master'])
      assert.deepEqual(roles(api.nodes.get(`${distribution}-etcd`)), ['etcd'])
      assert.deepEqual(roles(api.nodes.get(`${distribution}-cp`)), ['control-plane', 'master'])
      assert.deepEqual(roles(api.nodes.get(`${distribution}-agent`)), [])
      const args = (name: string) => JSON.parse(api.nodes.get(name)!.metadata.annotations![`${distribution}.io/node-args`]!)
      assert.deepEqual(args(`${distribution}-cp`), ['server', '--disable-etcd'])
      assert.ok(args(`${distribution}-etcd`).includes('--disable-apiserver'))
    }
    api.nodes.add({name: 'k3s-sqlite', role: 'server', etcd: false})
    assert.deepEqual(roles(api.nodes.get('k3s-sqlite')), ['control-plane', 'master'])
    assert.throws(() => api.nodes.add({name: 'bad', role: 'agent', serverKind: 'etcd'}), /serverKind is for servers/)
    // An rke2 node that registers itself (never added) is an rke2 node by its version.
    api.nodes.k3sStarted('late-agent', {version: R2, arch: 'arm64', role: 'agent'})
    assert.equal(api.nodes.get('late-agent')!.spec?.providerID, 'rke2://late-agent')
  } finally {
    await api.stop()
  }
})

test('channel server: 302 to rancher/rke2 for rke2 versions, to k3s-io/k3s for k3s ones, same JSON', async () => {
  const channels = await startChannelServer({channels: {stable: R2, 'v1.31': R1, k3s: 'v1.31.4+k3s1'}})
  try {
    const location = async (id: string) => {
      const r = await fetch(`${channels.url}/${id}`, {redirect: 'manual', signal: AbortSignal.timeout(5000)})
      assert.equal(r.status, 302)
      return r.headers.get('location')
    }
    assert.equal(await location('stable'), `https://github.com/rancher/rke2/releases/tag/${R2}`)
    assert.equal(await location('v1.31'), `https://github.com/rancher/rke2/releases/tag/${R1}`)
    assert.equal(await location('k3s'), 'https://github.com/k3s-io/k3s/releases/tag/v1.31.4+k3s1')
    const list = (await (await fetch(channels.url, {signal: AbortSignal.timeout(5000)})).json()) as {data: Array<{id: string; latest: string}>}
    assert.deepEqual(list.data.map((c) => [c.id, c.latest]), [['stable', R2], ['v1.31', R1], ['k3s', 'v1.31.4+k3s1']])
  } finally {
    await channels.stop()
  }
})
