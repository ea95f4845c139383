/**
 * The package side of a kubeadm node, over SSH against simulated apt and dnf nodes: detection,
 * installed and held versions, the repository definition, the minor switch, and the versions a
 * switched repository offers, asked without changing the node's own package state.
 */
import assert from 'node:assert/strict'
import {after, before, describe, test} from 'node:test'

import {findRepositoryFile, heldPackages, installPackages, installedVersions, detectPackageManager, offeredVersions, packageVersionFor, readRepositoryFile, switchRepositoryMinor, writeRepositoryFile} from '../src/node/packages.js'
import {openSession, type Session} from '../src/session.js'
import type {Transport} from '../src/transport/types.js'
import {startHomelab, type Homelab} from './sim/homelab.js'
import {readCommandLog} from './sim/node-fixture.js'
import {heldPackages as simHeld, installedPackages, kubeadmFixture, repositoryFile} from './sim/kubeadm-node.js'
import {requireSshdInCi} from './sim/require-sshd.js'

test('the minor switch rewrites every /vX.Y/ of the old minor and nothing else', () => {
  const apt = 'deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] https://pkgs.k8s.io/core:/stable:/v1.31/deb/ /\n'
  assert.equal(switchRepositoryMinor(apt, 'v1.31', 'v1.32'), apt.replace('/v1.31/', '/v1.32/'))
  const rpm = '[kubernetes]\nname=Kubernetes\nbaseurl=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/\nenabled=1\ngpgkey=https://pkgs.k8s.io/core:/stable:/v1.31/rpm/repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl\n'
  assert.equal(switchRepositoryMinor(rpm, '1.31', '1.32'), rpm.replaceAll('/v1.31/', '/v1.32/'))
  assert.equal(switchRepositoryMinor('deb https://mirror.lan/k8s/v1.311/deb/ /', 'v1.31', 'v1.32'), undefined)
  assert.equal(switchRepositoryMinor('deb https://apt.example/debian stable main', 'v1.31', 'v1.32'), undefined)
  assert.equal(packageVersionFor('v1.32.4', ['1.32.10-1.1', '1.32.4-1.1']), '1.32.4-1.1')
  assert.equal(packageVersionFor('v1.32.4', ['1.32.40-1.1']), undefined)
})

describe('packages on simulated kubeadm nodes', () => {
  let lab: Homelab
  let session: Session
  const transports = new Map<string, Transport>()
  before(async () => {
    requireSshdInCi()
    lab = await startHomelab({
      distribution: 'kubeadm',
      version: 'v1.31.4',
      releases: ['v1.31.5', 'v1.32.4'],
      nodes: [
        {name: 'cp-1', role: 'server'},
        {name: 'el-1', role: 'agent', packageManager: 'dnf'},
      ],
    })
    session = await openSession({configPath: lab.configPath, env: lab.env, home: lab.env.HOME})
    for (const node of (await session.loadInventory()).nodes) transports.set(node.name, await session.connect(node))
  })
  after(async () => {
    await session?.close()
    await lab?.stop()
  })

  for (const [name, manager, file] of [['cp-1', 'apt', 'etc/apt/sources.list.d/kubernetes.list'], ['el-1', 'dnf', 'etc/yum.repos.d/kubernetes.repo']] as const) {
    test(`${name} (${manager}): versions, holds, the repository file, and what the next minor offers, with no change on the node`, async () => {
      const t = transports.get(name) as Transport
      const fixture = kubeadmFixture(lab.node(name).fixture)
      const before = await installedPackages(fixture)
      assert.equal(await detectPackageManager(t), manager)
      const versions = await installedVersions(t, manager, ['kubeadm', 'kubelet', 'kubectl', 'not-a-package'])
      assert.equal(versions.kubeadm, before.kubeadm?.version)
      assert.match(versions.kubelet ?? '', /^1\.31\.4-/)
      assert.equal(versions['not-a-package'], undefined)
      assert.deepEqual((await heldPackages(t, manager)).sort(), manager === 'apt' ? ['kubeadm', 'kubectl', 'kubelet'] : [])

      const found = await findRepositoryFile(t, manager, ['kubernetes.list', 'kubernetes.sources'], undefined)
      assert.equal(found, `${fixture.dir}/${file}`)
      const text = await repositoryFile(fixture)
      const next = switchRepositoryMinor(text, 'v1.31', 'v1.32')
      assert.ok(next, text)
      const offered = await offeredVersions(t, manager, next, found, 'kubeadm')
      assert.ok(packageVersionFor('v1.32.4', offered), `${offered}`)
      assert.equal(packageVersionFor('v1.31.5', offered), undefined)
      // The current minor's repository still offers the patch release.
      assert.ok(packageVersionFor('v1.31.5', await offeredVersions(t, manager, text, found, 'kubeadm')))
      await assert.rejects(offeredVersions(t, manager, switchRepositoryMinor(text, 'v1.31', 'v1.40') as string, found, 'kubeadm'), /cannot be read/)

      // Nothing on the node changed: packages, repository file, and no privileged package command.
      assert.deepEqual(await installedPackages(fixture), before)
      assert.equal(await repositoryFile(fixture), text)
      const log = await readCommandLog(fixture)
      assert.deepEqual(log.filter((e) => e.privileged && ['apt-get', 'apt-mark', 'dnf', 'dpkg'].includes(e.tool)), [])
    })
  }

  for (const [name, manager] of [['cp-1', 'apt'], ['el-1', 'dnf']] as const) {
    test(`${name} (${manager}): switch the repository, install kubeadm at the target, then put both back exactly`, async () => {
      const t = transports.get(name) as Transport
      const fixture = kubeadmFixture(lab.node(name).fixture)
      const file = await findRepositoryFile(t, manager, ['kubernetes.list'], undefined)
      const original = await readRepositoryFile(t, file)
      const held = await heldPackages(t, manager)
      // apt's holds, or dnf's exclude= line: either way what the node says must survive the round trip.
      const pinned = (await simHeld(fixture)).sort()
      const before = await installedVersions(t, manager, ['kubeadm'])
      const next = switchRepositoryMinor(original, 'v1.31', 'v1.32') as string
      const target = packageVersionFor('v1.32.4', await offeredVersions(t, manager, next, file, 'kubeadm')) as string

      await writeRepositoryFile(t, file, next)
      await installPackages(t, manager, {kubeadm: target}, {held})
      assert.equal((await installedVersions(t, manager, ['kubeadm'])).kubeadm, target)
      assert.equal(await repositoryFile(fixture), next)
      assert.deepEqual((await simHeld(fixture)).sort(), pinned)
      // Again: nothing to do, no package command.
      const packageCommands = async () => (await readCommandLog(fixture)).filter((e) => ['apt-get', 'apt-mark', 'dnf'].includes(e.tool)).length
      const count = await packageCommands()
      await installPackages(t, manager, {kubeadm: target}, {held})
      assert.equal(await packageCommands(), count)

      // The compensation's way back: the old file, then the old version (a downgrade).
      await writeRepositoryFile(t, file, original)
      await installPackages(t, manager, {kubeadm: before.kubeadm as string}, {held})
      assert.equal((await installedVersions(t, manager, ['kubeadm'])).kubeadm, before.kubeadm)
      assert.equal(await repositoryFile(fixture), original)
      assert.deepEqual((await simHeld(fixture)).sort(), pinned)
    })
  }
})
