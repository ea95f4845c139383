/**
 * kubeadm on the distribution layer: plain versions, dl.k8s.io-style release files, detection
 * from the kubeadm-config ConfigMap, `status` with the kubeadm package and control-plane
 * versions, and the pre-flight behind `--dry-run`. The saga itself: test/upgrade/kubeadm-*.test.ts.
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'

import {resolveChannel} from '../src/channels.js'
import {compareVersions, parseVersion} from '../src/versions/release-version.js'
import {classifyUpgrade} from '../src/versions/skew.js'
import {startHomelab, type Homelab} from './sim/homelab.js'
import {readCommandLog} from './sim/node-fixture.js'
import {requireSshdInCi} from './sim/require-sshd.js'

describe('kubeadm versions', () => {
  test('plain versions are kubeadm releases, and each distribution refuses the other form', () => {
    const v = parseVersion('v1.32.4', 'kubeadm')
    assert.equal(v.distribution, 'kubeadm')
    assert.equal(v.format(), 'v1.32.4')
    assert.equal(v.tag(), 'v1.32.4')
    assert.equal(parseVersion('v1.33.0-rc.1', 'kubeadm').format(), 'v1.33.0-rc.1')
    assert.throws(() => parseVersion('v1.32.4', 'k3s'), /not a k3s version: the release number is missing/)
    assert.throws(() => parseVersion('v1.32.4+k3s1', 'kubeadm'), /is a k3s version, but this cluster runs kubeadm/)
    assert.throws(() => parseVersion('1.32.4', 'kubeadm'), /lacks the leading "v".*|use v1\.32\.4/)
    assert.throws(() => parseVersion('v1.32', 'kubeadm'), /not a kubeadm version/)
  })

  test('order, rc before release, and the upgrade kinds work on plain versions', () => {
    assert.ok(compareVersions(parseVersion('v1.32.0-rc.2', 'kubeadm'), 'v1.32.0-rc.10') < 0)
    assert.ok(compareVersions(parseVersion('v1.32.0', 'kubeadm'), 'v1.32.0-rc.10') > 0)
    assert.equal(classifyUpgrade('v1.31.4', parseVersion('v1.32.4', 'kubeadm')), 'minor')
    assert.equal(classifyUpgrade('v1.31.4', parseVersion('v1.33.0', 'kubeadm')), 'skip')
    assert.equal(classifyUpgrade('v1.31.5', parseVersion('v1.31.4', 'kubeadm')), 'downgrade')
  })
})

describe('kubeadm on the simulated homelab', () => {
  let lab: Homelab
  before(async () => {
    requireSshdInCi()
    lab = await startHomelab({distribution: 'kubeadm', version: 'v1.31.4', releases: ['v1.31.5', 'v1.32.0', 'v1.32.4'], servers: 1, agents: 1, writeDistribution: false})
  })
  after(() => lab?.stop())

  test('channels resolve from the release files under install.channelUrl; an unknown minor says so', async () => {
    const options = {baseUrl: lab.packages.releaseUrl, distribution: 'kubeadm' as const}
    assert.equal((await resolveChannel('stable', options)).format(), 'v1.32.4')
    assert.equal((await resolveChannel('v1.31', options)).format(), 'v1.31.5')
    assert.equal((await resolveChannel('1.32', options)).format(), 'v1.32.4')
    await assert.rejects(resolveChannel('v1.40', options), /stable-1\.40\.txt does not exist: there is no release for channel v1\.40/)
    await assert.rejects(resolveChannel('testing', options), /"testing" is not a Kubernetes release channel/)
  })

  test('status detects kubeadm from kubeadm-config and shows the kubeadm package and control-plane versions', async () => {
    const writes = lab.api.audit.writes().length
    const result = await lab.cli(['k8s', 'status'])
    assert.equal(result.exitCode, 0, result.stderr)
    assert.match(result.stdout, /\(kubeadm\)/)
    const lines = result.stdout.split('\n')
    const header = lines.find((line) => line.startsWith('NODE')) ?? ''
    assert.match(header, /KUBELET\s+KUBEADM\s+CONTROL PLANE\s+READY/)
    const server = lab.nodes.find((n) => n.spec.role === 'server')!
    const agent = lab.nodes.find((n) => n.spec.role === 'agent')!
    assert.match(lines.find((l) => l.startsWith(`${server.spec.name} `)) ?? '', /v1\.31\.4\s+v1\.31\.4\s+v1\.31\.4\s+yes/)
    assert.match(lines.find((l) => l.startsWith(`${agent.spec.name} `)) ?? '', /v1\.31\.4\s+v1\.31\.4\s+-\s+yes/)
    assert.match(result.stdout, /Skew: all 2 nodes on v1\.31\.4/)
    assert.equal(lab.api.audit.writes().length, writes)
  })

  test('--dry-run runs the kubeadm pre-flight and prints the plan: repository switch, package manager, the etcd snapshot, no change', async () => {
    const writes = lab.api.audit.writes().length
    const result = await lab.cli(['k8s', 'upgrade', '--to', 'v1.32', '--dry-run', '--json'])
    assert.equal(result.exitCode, 0, result.stdout + result.stderr)
    const out = JSON.parse(result.stdout)
    assert.equal(out.outcome, 'dry-run')
    assert.deepEqual(out.hops, ['v1.32.4'])
    const [plan] = out.plans
    const server = lab.nodes.find((n) => n.spec.role === 'server')!
    assert.deepEqual(plan.servers.map((n: {name: string; applies: boolean}) => [n.name, n.applies]), [[server.spec.name, true]])
    assert.equal(plan.agents.length, 1)
    for (const node of [...plan.servers, ...plan.agents]) {
      assert.equal(node.packageManager, 'apt')
      assert.match(node.repositoryBefore, /\/v1\.31\/deb\//)
      assert.match(node.repositoryAfter, /\/v1\.32\/deb\//)
      assert.match(node.packagesTarget.kubeadm, /^1\.32\.4-/)
      assert.match(node.packagesBefore.kubelet, /^1\.31\.4-/)
    }
    assert.equal(plan.backup.etcdSnapshotNode, server.spec.name)
    assert.equal(lab.api.audit.writes().length, writes)

    const text = await lab.cli(['k8s', 'upgrade', '--to', 'v1.32.4', '--dry-run'])
    assert.equal(text.exitCode, 0, text.stdout + text.stderr)
    assert.match(text.stdout, /\(control-plane, amd64, apt, repository → v1\.32\): v1\.31\.4 → v1\.32\.4/)
  })

  test('a target the repository does not carry is refused by pre-flight: exit 3, named, nothing changed', async () => {
    const result = await lab.cli(['k8s', 'upgrade', '--to', 'v1.32.9', '--dry-run'])
    assert.equal(result.exitCode, 3, result.stdout + result.stderr)
    assert.match(result.stderr, /has no kubeadm v1\.32\.9 \(it offers 1\.32\.4-/)
  })

  test('SUC plans are refused for kubeadm with what to use instead', async () => {
    const flag = await lab.cli(['k8s', 'plan', 'generate', '--to', 'v1.32.4', '--distribution', 'kubeadm', '--offline'])
    assert.equal(flag.exitCode, 2, flag.stdout + flag.stderr)
    assert.match(flag.stderr, /--distribution=kubeadm to be one of: k3s, rke2/)
    await lab.writeConfig({distribution: 'kubeadm'})
    const result = await lab.cli(['k8s', 'plan', 'generate', '--to', 'v1.32.4', '--offline'])
    assert.equal(result.exitCode, 2, result.stdout + result.stderr)
    assert.match(result.stderr, /system-upgrade-controller plans works on k3s and rke2 clusters, not kubeadm \(fix: for a kubeadm cluster use homelab k8s upgrade\)/)
  })
})
