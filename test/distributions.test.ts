import assert from 'node:assert/strict'
import {mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {after, describe, test} from 'node:test'

import {detectDistribution} from '../src/distributions/detect.js'
import {BINARY_DISTRIBUTIONS, DISTRIBUTIONS} from '../src/distributions/index.js'
import {K3S} from '../src/distributions/k3s.js'
import {RKE2} from '../src/distributions/rke2.js'
import {sshDestination} from '../sagas/ssh-destination.js'
import {detectServiceManager} from '../src/node/node-ops.js'
import type {ClusterNode} from '../src/kube/nodes.js'
import {serverKindOf, roleOf} from '../src/kube/nodes.js'
import {findBinDir, packageOwner, skippedManifests} from '../src/node/node-facts.js'
import {artifactName} from '../src/release/release-source.js'
import {LocalTransport} from '../src/transport/local-transport.js'
import {parseVersion} from '../src/versions/release-version.js'

const node = (name: string, kubeletVersion: string): ClusterNode => ({name, role: 'agent', kubeletVersion, ready: true, unschedulable: false, labels: {}})

describe('detecting the distribution from kubelet versions', () => {
  test('+rke2rN and +k3sN name their distribution; plain versions name none', () => {
    assert.equal(detectDistribution([node('a', 'v1.31.3+rke2r1'), node('b', 'v1.31.3+rke2r1')])?.name, 'rke2')
    assert.equal(detectDistribution([node('a', 'v1.31.4+k3s1')])?.name, 'k3s')
    assert.match(detectDistribution([node('a', 'v1.31.4+k3s1')])?.evidence ?? '', /kubelet v1\.31\.4\+k3s1 on every node/)
    assert.equal(detectDistribution([node('a', 'v1.31.4')]), undefined)
  })

  test('a cluster mixing k3s and rke2 is refused, naming the nodes of each', () => {
    assert.throws(() => detectDistribution([node('s1', 'v1.31.4+k3s1'), node('s2', 'v1.31.3+rke2r1')]), /mixes distributions \(k3s on s1; rke2 on s2\)/)
  })
})

describe('descriptors', () => {
  test('each version suffix parses to its own distribution, and every published arch has an asset', () => {
    for (const d of Object.values(DISTRIBUTIONS)) assert.equal(parseVersion(d.exampleVersion, d.name).distribution, d.name)
    for (const d of BINARY_DISTRIBUTIONS) {
      for (const arch of Object.keys(d.binaryArtifacts) as Array<keyof typeof d.binaryArtifacts>) assert.ok(artifactName(d, arch))
    }
    assert.equal(artifactName(RKE2, 'amd64'), 'rke2.linux-amd64')
    assert.throws(() => artifactName(RKE2, 'arm'), /rke2 publishes no binary for arm/)
  })

  test('a server is any node labelled control-plane, master or etcd; an etcd-only one is its own kind', () => {
    const labelled = (labels: Record<string, string>) => ({metadata: {labels}})
    assert.equal(roleOf(labelled({'node-role.kubernetes.io/etcd': 'true'})), 'server')
    assert.equal(serverKindOf(labelled({'node-role.kubernetes.io/etcd': 'true'})), 'etcd')
    assert.equal(serverKindOf(labelled({'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/master': 'true'})), 'control-plane')
    assert.equal(serverKindOf(labelled({'node-role.kubernetes.io/control-plane': 'true', 'node-role.kubernetes.io/etcd': 'true'})), 'etcd+control-plane')
    assert.equal(roleOf(labelled({'kubernetes.io/os': 'linux'})), 'agent')
  })
})

describe('node facts, on this machine through the local transport', () => {
  const dir = mkdtempSync(join(tmpdir(), 'homelab-facts-'))
  after(() => rmSync(dir, {recursive: true, force: true}))
  const transport = new LocalTransport({node: 'here', become: 'none', env: {PATH: '/usr/bin:/bin', HOME: dir}})

  test('the bin dir is the first of the installer dirs that holds an executable binary', async () => {
    const [first, second, third] = ['usr-local-bin', 'opt-rke2-bin', 'usr-bin'].map((d) => join(dir, d))
    for (const d of [first, second, third]) mkdirSync(d)
    writeFileSync(join(second, 'rke2'), '#!/bin/sh\n', {mode: 0o755})
    writeFileSync(join(third, 'rke2'), '#!/bin/sh\n', {mode: 0o755})
    writeFileSync(join(first, 'rke2'), 'not executable', {mode: 0o644})
    const here = {...RKE2, binDirs: [first, second, third]}
    assert.equal(await findBinDir(transport, here), second)
    assert.equal(await findBinDir(transport, {...here, binDirs: [first]}), undefined)
  })

  test('a file no package owns has no owner (the real dpkg answers here)', async () => {
    const file = join(dir, 'loose')
    writeFileSync(file, 'x')
    assert.equal(await packageOwner(transport, file), undefined)
  })

  test('.skip files are listed relative to the manifests dir, sorted, subdirectories included', async () => {
    const manifests = join(dir, 'manifests')
    mkdirSync(join(manifests, 'metrics-server'), {recursive: true})
    for (const f of ['rke2-ingress-nginx.yaml.skip', 'rke2-coredns.yaml', 'metrics-server/aggregated.yaml.skip']) writeFileSync(join(manifests, f), '')
    assert.deepEqual(await skippedManifests(transport, manifests), ['metrics-server/aggregated.yaml.skip', 'rke2-ingress-nginx.yaml.skip'])
    assert.deepEqual(await skippedManifests(transport, join(dir, 'absent')), [])
  })
})

describe('service manager detection (issue 9 defect 2)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'homelab-svc-'))
  after(() => rmSync(dir, {recursive: true, force: true}))
  // A node with both tools, as Alpine with a stray systemctl or Debian with openrc installed beside systemd.
  const node = (name: string, defines: {openrc?: string; systemd?: string}) => {
    const bin = join(dir, name)
    mkdirSync(bin)
    writeFileSync(join(bin, 'rc-service'), `#!/bin/sh\n[ "$1" = --exists ] && [ "$2" = "${defines.openrc ?? ''}" ] && exit 0\nexit 1\n`, {mode: 0o755})
    writeFileSync(join(bin, 'systemctl'), `#!/bin/sh\ncase "$*" in --version) echo 'systemd 252' ;; "show -p FragmentPath --value ${defines.systemd ?? '-'}") echo /etc/systemd/system/${defines.systemd}.service ;; "show -p FragmentPath --value "*) echo ;; esac\n`, {mode: 0o755})
    return new LocalTransport({node: name, become: 'none', env: {PATH: `${bin}:/usr/bin:/bin`, HOME: dir}})
  }

  test('the manager that defines the service wins over the order of the tools', async () => {
    assert.equal(await detectServiceManager(node('unit', {systemd: 'k3s'}), K3S, 'auto', 'k3s'), 'systemd')
    assert.equal(await detectServiceManager(node('init', {openrc: 'k3s-agent'}), K3S, 'auto', 'k3s-agent'), 'openrc')
    // Defined nowhere yet: the descriptor's order of the tools decides (k3s: OpenRC first).
    assert.equal(await detectServiceManager(node('none', {}), K3S, 'auto', 'k3s'), 'openrc')
    assert.equal(await detectServiceManager(node('rke2', {openrc: 'rke2-server'}), RKE2, 'auto', 'rke2-server'), 'systemd')
  })

  test('manual steps name the SSH user homelab.yaml gives', () => {
    assert.equal(sshDestination({host: '10.0.0.5', sshUser: 'ops'}), 'ops@10.0.0.5')
    assert.equal(sshDestination({host: 'server-1'}), 'server-1')
  })
})
