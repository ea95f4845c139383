/**
 * The simulated kubeadm homelab, over real sshd as the product sees it: the API's objects
 * (Nodes, kubeadm-config, static pods), homelab.yaml, the package repository and release files,
 * and every fake tool on the nodes (apt, dpkg, dnf, rpm, kubeadm, kubelet and its unit, etcdctl,
 * swapon) with its failure knobs and the command log.
 */
import assert from 'node:assert/strict'
import {execFile} from 'node:child_process'
import {readFile, readdir, writeFile} from 'node:fs/promises'
import {userInfo} from 'node:os'
import {join} from 'node:path'
import {test} from 'node:test'

import {parse} from 'yaml'

import {startHomelab, type Homelab, type HomelabOptions} from './homelab.js'
import {
  heldPackages,
  installedPackages,
  kubeadmBackups,
  kubeadmFixture,
  manifestVersions,
  readKubeletConfig,
  repositoryFile,
  setKubeadmFailure,
  setKubeletCrashVersions,
  setPackageInstallFailure,
  setSwap,
  type KubeadmNodeFixture,
} from './kubeadm-node.js'
import type {StoredObject} from './kube-api/index.js'
import {readCommandLog, serviceState} from './node-fixture.js'
import {requireSshdInCi} from './require-sshd.js'

const V = 'v1.31.4'
const RELEASES = ['v1.31.5', 'v1.32.0', 'v1.32.4']

interface Shell {
  code: number
  stdout: string
  stderr: string
}

/** Runs a shell command line on a node over its SSH server, as the product would; never throws. */
function sshTo(lab: Homelab, node: string) {
  const n = lab.node(node)
  return (command: string, input = ''): Promise<Shell> =>
    new Promise((resolve) => {
      const child = execFile('ssh', [
        '-i', lab.identityPath, '-o', `UserKnownHostsFile=${lab.knownHostsPath}`, '-o', 'StrictHostKeyChecking=yes', '-o', 'BatchMode=yes',
        '-p', String(n.ssh.port), `${userInfo().username}@${n.address}`, '--', command,
      ], {env: lab.env, timeout: 30_000}, (error, stdout, stderr) => {
        const code = error ? (typeof (error as {code?: unknown}).code === 'number' ? (error as {code: number}).code : -1) : 0
        resolve({code, stdout, stderr})
      })
      child.stdin?.end(input)
    })
}

async function withLab(options: HomelabOptions, body: (lab: Homelab) => Promise<void>): Promise<void> {
  requireSshdInCi()
  const lab = await startHomelab({distribution: 'kubeadm', version: V, releases: RELEASES, ...options})
  try {
    await body(lab)
    assert.deepEqual(lab.api.internalErrors, [])
  } finally {
    await lab.stop()
  }
}

const fx = (lab: Homelab, node: string): KubeadmNodeFixture => kubeadmFixture(lab.node(node).fixture)
const ready = (node: StoredObject | undefined) => node?.status?.conditions?.find((c: {type: string}) => c.type === 'Ready')?.status
const kubeletVersion = (lab: Homelab, node: string) => lab.api.nodes.get(node)?.status?.nodeInfo?.kubeletVersion
/** kube-system/kubeadm-config's ClusterConfiguration, parsed. */
const clusterConfiguration = (lab: Homelab) => parse(String((lab.api.store.get('configmaps', 'kube-system', 'kubeadm-config') as {data?: Record<string, string>} | undefined)?.data?.ClusterConfiguration))

test('a kubeadm homelab: kubeadm Nodes, kubeadm-config, static pods, kube-proxy and CoreDNS, homelab.yaml', async () => {
  await withLab({nodes: [{name: 'cp-1', role: 'server'}, {name: 'cp-2', role: 'server'}, {name: 'w-1', role: 'agent'}, {name: 'w-2', role: 'agent', packageManager: 'dnf'}]}, async (lab) => {
    assert.equal(lab.distribution, 'kubeadm')
    const cp = lab.api.nodes.get('cp-1')!
    assert.equal(cp.status?.nodeInfo?.kubeletVersion, V)
    assert.equal(cp.metadata.labels?.['node-role.kubernetes.io/control-plane'], '')
    assert.deepEqual(cp.spec?.taints, [{key: 'node-role.kubernetes.io/control-plane', effect: 'NoSchedule'}])
    assert.equal(cp.spec?.providerID, undefined)
    assert.ok(!Object.keys({...cp.metadata.annotations, ...cp.metadata.labels}).some((k) => k.startsWith('k3s.io/') || k.includes('instance-type')))
    assert.equal(lab.api.nodes.get('w-1')!.metadata.labels?.['node-role.kubernetes.io/control-plane'], undefined)
    assert.equal(lab.api.nodes.get('w-1')!.spec?.taints, undefined)
    assert.equal(lab.api.nodes.get('w-2')!.status?.nodeInfo?.osImage, 'Rocky Linux 9.5 (Blue Onyx)')

    const config = clusterConfiguration(lab)
    assert.equal(config.apiVersion, 'kubeadm.k8s.io/v1beta4')
    assert.equal(config.kind, 'ClusterConfiguration')
    assert.equal(config.kubernetesVersion, V)
    assert.deepEqual(config.etcd, {local: {dataDir: '/var/lib/etcd'}})

    for (const node of ['cp-1', 'cp-2']) {
      for (const [component, tag] of [['kube-apiserver', V], ['kube-controller-manager', V], ['kube-scheduler', V], ['etcd', '3.5.15-0']]) {
        const pod = lab.api.pods.get('kube-system', `${component}-${node}`)!
        assert.ok(pod, `${component}-${node}`)
        assert.equal(pod.spec?.containers[0].image, `registry.k8s.io/${component}:${tag}`)
        assert.deepEqual(pod.metadata.labels, {component, tier: 'control-plane'})
        assert.equal(pod.spec?.nodeName, node)
        assert.equal(pod.status?.phase, 'Running')
        assert.equal(pod.metadata.ownerReferences?.[0]?.kind, 'Node')
        assert.ok(pod.metadata.annotations?.['kubernetes.io/config.mirror'])
      }
    }
    assert.equal(lab.api.pods.list({namespace: 'kube-system', node: 'w-1'}).filter((p) => p.metadata.labels?.tier === 'control-plane').length, 0)
    assert.equal((lab.api.store.get('daemonsets.apps', 'kube-system', 'kube-proxy') as StoredObject).spec?.template.spec.containers[0].image, `registry.k8s.io/kube-proxy:${V}`)
    assert.equal((lab.api.store.get('deployments.apps', 'kube-system', 'coredns') as StoredObject).spec?.template.spec.containers[0].image, 'registry.k8s.io/coredns/coredns:v1.11.3')

    // A mirror pod deleted through the API comes back, as the kubelet re-creates it.
    lab.api.store.delete('pods', 'kube-system', 'kube-scheduler-cp-2')
    await lab.api.waitFor(() => lab.api.pods.get('kube-system', 'kube-scheduler-cp-2'), {message: 'mirror pod re-created'})

    const yaml = parse(await readFile(lab.configPath, 'utf8'))
    assert.equal(yaml.distribution, 'kubeadm')
    assert.equal(yaml.install.channelUrl, lab.packages.releaseUrl)
    assert.equal(yaml.install.releaseUrl, lab.packages.releaseUrl)
    assert.deepEqual(yaml.nodes.find((n: {name: string}) => n.name === 'cp-1').install, {
      binDir: join(fx(lab, 'cp-1').dir, 'usr/bin'),
      dataDir: join(fx(lab, 'cp-1').dir, 'var/lib/kubelet'),
      configDir: join(fx(lab, 'cp-1').dir, 'etc/kubernetes'),
    })

    // On the nodes, over SSH.
    const cp1 = sshTo(lab, 'cp-1')
    assert.equal((await cp1('kubeadm version -o short')).stdout, `${V}\n`)
    assert.match((await cp1('kubeadm version')).stdout, /^kubeadm version: &version\.Info\{Major:"1", Minor:"31", GitVersion:"v1\.31\.4", GitCommit:"[0-9a-f]{40}", GitTreeState:"clean", BuildDate:"[^"]+", GoVersion:"go1\.22\.\d+", Compiler:"gc", Platform:"linux\/amd64"\}\n$/)
    assert.equal((await cp1('kubelet --version')).stdout, `Kubernetes ${V}\n`)
    assert.match((await cp1('kubectl version --client')).stdout, /^Client Version: v1\.31\.4\nKustomize Version: v5\.4\.2\n$/)
    assert.equal((await cp1('systemctl is-active kubelet')).stdout, 'active\n')
    const kdir = fx(lab, 'cp-1').kubeDir
    assert.equal((await cp1(`ls ${kdir}/manifests`)).stdout, 'etcd.yaml\nkube-apiserver.yaml\nkube-controller-manager.yaml\nkube-scheduler.yaml\n')
    assert.equal((await cp1(`ls ${kdir}/pki/etcd`)).stdout.split('\n').filter((f) => /^(ca|server)\.(crt|key)$/.test(f)).length, 4)
    assert.match((await cp1(`systemctl cat kubelet`)).stdout, /^# .*\/usr\/lib\/systemd\/system\/kubelet\.service\n\[Unit\]\nDescription=kubelet: The Kubernetes Node Agent[\s\S]*# .*10-kubeadm\.conf\n# Note: This dropin only works with kubeadm/)
    const w1 = sshTo(lab, 'w-1')
    assert.equal((await w1(`ls ${fx(lab, 'w-1').kubeDir}`)).stdout, 'kubelet.conf\nmanifests\npki\n')
    // An EL node has no apt, a Debian node no dnf, whatever the host has.
    assert.equal((await sshTo(lab, 'w-2')('command -v apt-get dpkg-query; command -v dnf rpm >/dev/null && echo dnf')).stdout, 'dnf\n')
    assert.equal((await w1('command -v dnf rpm; command -v apt-get >/dev/null && echo apt')).stdout, 'apt\n')
  })
})

test('apt: unhold, update, install =version (exact or glob), hold; held, missing and downgrade refusals; dpkg-query', async () => {
  await withLab({nodes: [{name: 'cp-1', role: 'server'}, {name: 'w-1', role: 'agent'}]}, async (lab) => {
    const w1 = sshTo(lab, 'w-1')
    const f = fx(lab, 'w-1')
    const repo = lab.packages.repoUrl(V, 'deb')
    assert.equal(await repositoryFile(f), `deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] ${repo} /\n`)
    assert.equal((await w1('apt-config shell SP Dir::Etc::sourceparts/d SL Dir::Etc::sourcelist/f')).stdout, `SP='${f.dir}/etc/apt/sources.list.d/'\nSL='${f.dir}/etc/apt/sources.list'\n`)
    assert.deepEqual(await heldPackages(f), ['kubeadm', 'kubectl', 'kubelet'])
    assert.equal((await w1('apt-mark showhold')).stdout, 'kubeadm\nkubectl\nkubelet\n')

    // Without root: apt's lock errors.
    const noRoot = await w1('apt-get update')
    assert.equal(noRoot.code, 100)
    assert.match(noRoot.stderr, /^E: Could not open lock file .*\/var\/lib\/apt\/lists\/lock - open \(13: Permission denied\)\nE: Unable to lock directory /)
    assert.equal((await w1('apt-mark unhold kubeadm')).code, 100)
    assert.equal((await w1('apt-get install -y kubeadm=1.31.5-1.1')).code, 100)

    // Held: refused with -y, unless --allow-change-held-packages.
    const held = await w1('sudo apt-get install -y kubeadm=1.31.5-1.1')
    assert.equal(held.code, 100)
    assert.match(held.stdout, /The following held packages will be changed:\n {2}kubeadm\nThe following packages will be upgraded:\n {2}kubeadm\n1 upgraded, 0 newly installed, 0 to remove and \d+ not upgraded\.\n$/)
    assert.equal(held.stderr, 'E: Held packages were changed and -y was used without --allow-change-held-packages.\n')
    assert.equal((await installedPackages(f)).kubeadm!.version, '1.31.4-1.1')

    // The documented flow.
    assert.equal((await w1('sudo apt-mark unhold kubeadm')).stdout, 'Canceled hold on kubeadm.\n')
    const update = await w1('sudo apt-get update')
    assert.equal(update.code, 0, update.stderr)
    assert.match(update.stdout, /^(Hit|Get):1 http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.31\/deb {2}InRelease/)
    const install = await w1("sudo apt-get install -y kubeadm='1.31.5-*'")
    assert.equal(install.code, 0, install.stderr)
    assert.match(install.stdout, /Unpacking kubeadm \(1\.31\.5-1\.1\) over \(1\.31\.4-1\.1\) \.\.\.\nSetting up kubeadm \(1\.31\.5-1\.1\) \.\.\.\n$/)
    assert.equal((await w1('sudo apt-mark hold kubeadm')).stdout, 'kubeadm set on hold.\n')
    assert.equal((await w1('sudo apt-mark hold kubeadm')).stdout, 'kubeadm was already set on hold.\n')
    assert.equal((await w1('kubeadm version -o short')).stdout, 'v1.31.5\n')
    assert.equal((await w1("dpkg-query -W -f='${Version}\\n' kubeadm kubelet")).stdout, '1.31.5-1.1\n1.31.4-1.1\n')
    assert.equal((await w1('dpkg-query -W kubeadm')).stdout, 'kubeadm\t1.31.5-1.1\n')
    const unknown = await w1("dpkg-query -W -f='${Version}\\n' kubeadm nosuchpkg")
    assert.deepEqual([unknown.code, unknown.stdout, unknown.stderr], [1, '1.31.5-1.1\n', 'dpkg-query: no packages found matching nosuchpkg\n'])
    assert.deepEqual(await installedPackages(f).then((db) => db.kubeadm), {version: '1.31.5-1.1', arch: 'amd64', hold: true, status: 'installed'})
    assert.match((await w1('sudo apt-get install -y --allow-change-held-packages kubeadm=1.31.5-1.1')).stdout, /\nkubeadm is already the newest version \(1\.31\.5-1\.1\)\.\n0 upgraded, 0 newly installed, 0 to remove/)

    // A version the lists do not have, a package nobody has, a downgrade without --allow-downgrades.
    const missing = await w1('sudo apt-get install -y --allow-change-held-packages kubeadm=1.32.4-1.1')
    assert.deepEqual([missing.code, missing.stderr], [100, "E: Version '1.32.4-1.1' for 'kubeadm' was not found\n"])
    assert.equal((await w1('sudo apt-get install -y nosuchpkg')).stderr, 'E: Unable to locate package nosuchpkg\n')
    const down = await w1('sudo apt-get install -y --allow-change-held-packages kubeadm=1.31.4-1.1')
    assert.equal(down.code, 100)
    assert.match(down.stdout, /The following packages will be DOWNGRADED:\n {2}kubeadm\n0 upgraded, 0 newly installed, 1 downgraded, 0 to remove/)
    assert.equal(down.stderr, 'E: Packages were downgraded and -y was used without --allow-downgrades.\n')
    const downOk = await w1('sudo apt-get install -y --allow-downgrades --allow-change-held-packages kubeadm=1.31.4-1.1')
    assert.equal(downOk.code, 0, downOk.stderr)
    assert.match(downOk.stderr, /dpkg: warning: downgrading kubeadm from 1\.31\.5-1\.1 to 1\.31\.4-1\.1/)

    // -s changes nothing and needs no root; without -y no install happens.
    const sim = await w1('apt-get install -s kubelet=1.31.5-1.1')
    assert.equal(sim.code, 0, sim.stderr)
    assert.match(sim.stdout, /^NOTE: This is only a simulation!/)
    assert.match(sim.stdout, /\nInst kubelet \[1\.31\.4-1\.1\] \(1\.31\.5-1\.1 isv:kubernetes:core:stable:v1\.31:127\.0\.0\.1 \[amd64\]\)\nConf kubelet \(1\.31\.5-1\.1 /)
    const noYes = await w1('sudo apt-get install --allow-change-held-packages kubelet=1.31.5-1.1')
    assert.deepEqual([noYes.code, noYes.stdout.endsWith('Do you want to continue? [Y/n] Abort.\n')], [1, true])
    assert.equal((await installedPackages(f)).kubelet!.version, '1.31.4-1.1')
    assert.equal((await w1('kubelet --version')).stdout, `Kubernetes ${V}\n`)
  })
})

test('apt: madison from a temporary sources list without root; switching the repository minor; a missing or unreachable minor', async () => {
  await withLab({nodes: [{name: 'w-1', role: 'agent'}]}, async (lab) => {
    const w1 = sshTo(lab, 'w-1')
    const f = fx(lab, 'w-1')
    const madisonLine = (v: string, minor: string) => `   kubeadm | ${v} | ${lab.packages.origin}/core:/stable:/${minor}/deb  Packages\n`
    assert.equal((await w1('apt-cache madison kubeadm')).stdout, madisonLine('1.31.5-1.1', 'v1.31') + madisonLine('1.31.4-1.1', 'v1.31'))
    assert.equal((await w1('apt-cache madison nosuchpkg')).stdout, '')

    // The candidate repository in a temp dir, as a user: the node's own apt state stays as it was.
    const tmp = `${f.dir}/tmp-candidate`
    const opts = `-o Dir::Etc::sourcelist=${tmp}/kubernetes.list -o Dir::Etc::sourceparts=${tmp}/none -o Dir::State::Lists=${tmp}/lists`
    const prepared = await w1(`mkdir -p ${tmp}/lists && echo 'deb ${lab.packages.repoUrl('v1.32', 'deb')} /' > ${tmp}/kubernetes.list && apt-get ${opts} update`)
    assert.equal(prepared.code, 0, prepared.stderr)
    assert.match(prepared.stdout, /Get:\d+ http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.32\/deb {2}Packages \[\d+ B\]/)
    assert.equal((await w1(`apt-cache ${opts} madison kubeadm`)).stdout, madisonLine('1.32.4-1.1', 'v1.32') + madisonLine('1.32.0-1.1', 'v1.32'))
    assert.equal((await w1('apt-cache madison kubeadm')).stdout, madisonLine('1.31.5-1.1', 'v1.31') + madisonLine('1.31.4-1.1', 'v1.31'), 'the node still sees v1.31 only')
    assert.equal((await w1(`apt-get -o Dir::Etc::sourcelist=${tmp}/kubernetes.list update`)).code, 100, 'the default lists dir still needs root')

    // A minor upgrade edits the minor in the file, then update: madison sees the new minor only.
    const text = await repositoryFile(f)
    await writeFile(f.repoFile, text.replace('/v1.31/', '/v1.32/'))
    const update = await w1('sudo apt-get update')
    assert.equal(update.code, 0, update.stderr)
    assert.equal((await w1('apt-cache madison kubeadm')).stdout, madisonLine('1.32.4-1.1', 'v1.32') + madisonLine('1.32.0-1.1', 'v1.32'))
    assert.deepEqual((await readdir(f.aptListsDir)).filter((n) => n.includes('v1.31')), [], 'apt cleaned the old minor lists')
    const policy = await w1('apt-cache policy kubeadm')
    assert.match(policy.stdout, /^kubeadm:\n {2}Installed: 1\.31\.4-1\.1\n {2}Candidate: 1\.32\.4-1\.1\n/)

    // A minor nobody released: no Release file, exit 100 (apt's own words).
    await writeFile(f.repoFile, text.replace('/v1.31/', '/v1.33/'))
    const none = await w1('sudo apt-get update')
    assert.equal(none.code, 100)
    assert.match(none.stdout, /Ign:1 .*\/v1\.33\/deb {2}InRelease\nErr:2 .*\/v1\.33\/deb {2}Release\n {2}404 {2}Not Found \[IP: 127\.0\.0\.1 \d+\]\n/)
    assert.match(none.stderr, /^E: The repository 'http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.33\/deb  Release' does not have a Release file\.\n/)

    // The knobs on the repository: not-found for an existing minor, unreachable (apt warns, exits 0).
    await writeFile(f.repoFile, text.replace('/v1.31/', '/v1.32/'))
    lab.packages.breakMinor('v1.32', 'not-found')
    assert.equal((await w1('sudo apt-get update')).code, 100)
    lab.packages.breakMinor('v1.32', 'unreachable')
    const unreachable = await w1('sudo apt-get update')
    assert.equal(unreachable.code, 0)
    assert.match(unreachable.stderr, /^W: Failed to fetch http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.32\/deb\/InRelease  Connection failed \[IP: 127\.0\.0\.1 \d+\]\nW: Some index files failed to download\. They have been ignored, or old ones used instead\.\n$/)
    assert.equal((await w1('apt-cache madison kubeadm')).stdout.split('\n')[0], madisonLine('1.32.4-1.1', 'v1.32').trimEnd(), 'old lists used')
    lab.packages.repairMinor('v1.32')
    // Bytes that do not match the index: apt's hash check refuses them, nothing changes.
    lab.packages.breakMinor('v1.32', 'corrupt')
    const corrupt = await w1('sudo apt-get install -y --allow-change-held-packages kubeadm=1.32.4-1.1')
    assert.equal(corrupt.code, 100)
    assert.match(corrupt.stderr, /^E: Failed to fetch http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.32\/deb\/amd64\/kubeadm_1\.32\.4-1\.1_amd64\.deb {2}Hash Sum mismatch\n {3}Hashes of expected file:\n {4}- SHA256:[0-9a-f]{64}\n/)
    assert.equal((await installedPackages(f)).kubeadm!.version, '1.31.4-1.1')
    lab.packages.repairMinor('v1.32')

    // deb822 sources parse too.
    await writeFile(f.repoFile.replace(/kubernetes\.list$/, 'kubernetes.sources'), `Types: deb\nURIs: ${lab.packages.repoUrl('v1.32', 'deb')}\nSuites: /\nSigned-By: /etc/apt/keyrings/kubernetes-apt-keyring.gpg\n`)
    await writeFile(f.repoFile, '')
    assert.equal((await w1('sudo apt-get update')).code, 0)
    assert.match((await w1('apt-cache madison kubeadm')).stdout, /1\.32\.4-1\.1/)
  })
})

test('dnf: excludes hide the packages until --disableexcludes; install and downgrade; repolist -v; rpm -q; a baseurl switched to the next minor', async () => {
  await withLab({nodes: [{name: 'w-1', role: 'agent', packageManager: 'dnf'}]}, async (lab) => {
    const w1 = sshTo(lab, 'w-1')
    const f = fx(lab, 'w-1')
    const base = lab.packages.repoUrl(V, 'rpm')
    assert.equal(await repositoryFile(f), `[kubernetes]\nname=Kubernetes\nbaseurl=${base}\nenabled=1\ngpgcheck=1\ngpgkey=${base}repodata/repomd.xml.key\nexclude=kubelet kubeadm kubectl cri-tools kubernetes-cni\n`)
    assert.deepEqual(await heldPackages(f), ['cri-tools', 'kubeadm', 'kubectl', 'kubelet', 'kubernetes-cni'])
    assert.equal((await w1("rpm -q --qf '%{VERSION}-%{RELEASE}\\n' kubeadm")).stdout, '1.31.4-150500.1.1\n')
    assert.equal((await w1('rpm -q kubeadm')).stdout, 'kubeadm-1.31.4-150500.1.1.x86_64\n')
    assert.deepEqual(await w1('rpm -q nosuchpkg').then((r) => [r.code, r.stdout]), [1, 'package nosuchpkg is not installed\n'])

    const repolist = await w1('dnf -v repolist --enabled')
    assert.equal(repolist.code, 0, repolist.stderr)
    assert.match(repolist.stdout, /\nRepo-id {12}: kubernetes\nRepo-name {10}: Kubernetes\n/)
    assert.match(repolist.stdout, new RegExp(`\\nRepo-baseurl {7}: ${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`))
    assert.match(repolist.stdout, new RegExp(`\\nRepo-filename {6}: ${f.repoFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`))

    const hidden = await w1('dnf list --showduplicates kubeadm')
    assert.equal(hidden.code, 0, hidden.stderr)
    assert.match(hidden.stdout, /Installed Packages\nkubeadm\.x86_64 +1\.31\.4-150500\.1\.1 +@kubernetes\n$/)
    const all = await w1('dnf list --showduplicates --disableexcludes=kubernetes kubeadm')
    assert.match(all.stdout, /Available Packages\nkubeadm\.x86_64 +1\.31\.5-150500\.1\.1 +kubernetes\n$/)

    const excluded = await w1('sudo dnf install -y kubeadm-1.31.5-150500.1.1')
    assert.equal(excluded.code, 1)
    assert.match(excluded.stdout, /All matches were filtered out by exclude filtering for argument: kubeadm-1\.31\.5-150500\.1\.1\n/)
    assert.equal(excluded.stderr, 'Error: Unable to find a match: kubeadm-1.31.5-150500.1.1\n')
    assert.match((await w1('dnf install -y --disableexcludes=kubernetes kubeadm-1.31.5-150500.1.1')).stderr, /^Error: This command has to be run with superuser privileges/)
    const installed = await w1("sudo dnf install -y --disableexcludes=kubernetes 'kubeadm-1.31.5-*'")
    assert.equal(installed.code, 0, installed.stderr)
    assert.match(installed.stdout, /Upgrading:\n kubeadm +x86_64 +1\.31\.5-150500\.1\.1 +kubernetes/)
    assert.match(installed.stdout, /\nUpgraded:\n {2}kubeadm-1\.31\.5-150500\.1\.1\.x86_64\n\nComplete!\n$/)
    assert.equal((await w1('kubeadm version -o short')).stdout, 'v1.31.5\n')
    const down = await w1('sudo dnf downgrade -y --disableexcludes=kubernetes kubeadm-1.31.4-150500.1.1')
    assert.equal(down.code, 0, down.stderr)
    assert.match(down.stdout, /\nDowngraded:\n {2}kubeadm-1\.31\.4-150500\.1\.1\.x86_64\n/)
    assert.match((await w1('sudo dnf install -y --disableexcludes=kubernetes kubeadm-1.99.0')).stderr, /^Error: Unable to find a match: kubeadm-1\.99\.0\n$/)

    // The next minor: edit the baseurl; dnf sees the new repository (another cache) at once.
    await writeFile(f.repoFile, (await repositoryFile(f)).replaceAll('/v1.31/', '/v1.32/'))
    assert.match((await w1('dnf list --showduplicates --disableexcludes=kubernetes kubeadm')).stdout, /Available Packages\nkubeadm\.x86_64 +1\.32\.0-150500\.1\.1 +kubernetes\nkubeadm\.x86_64 +1\.32\.4-150500\.1\.1 +kubernetes\n$/)
    // A minor without releases: dnf's metadata error, exit 1.
    await writeFile(f.repoFile, (await repositoryFile(f)).replaceAll('/v1.32/', '/v1.34/'))
    const none = await w1('dnf list --disableexcludes=kubernetes kubeadm')
    assert.equal(none.code, 1)
    assert.match(none.stderr, /^Errors during downloading metadata for repository 'kubernetes':\n {2}- Status code: 404 for http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.34\/rpm\/repodata\/repomd\.xml \(IP: 127\.0\.0\.1\)\nError: Failed to download metadata for repo 'kubernetes'/)
    assert.match((await w1('yum --version')).stdout, /^4\.14\.0\n/)
  })
})

test('kubeadm: plan and apply on the first control plane, upgrade node on the others and a worker, then kubelet restarts to the installed version', async () => {
  await withLab({nodes: [{name: 'cp-1', role: 'server'}, {name: 'cp-2', role: 'server'}, {name: 'w-1', role: 'agent'}]}, async (lab) => {
    const cp1 = sshTo(lab, 'cp-1')
    const cp2 = sshTo(lab, 'cp-2')
    const w1 = sshTo(lab, 'w-1')

    // kubeadm 1.31 plans the newest 1.31 patch: stable.txt names 1.32, a newer minor than kubeadm's.
    const plan31 = await cp1('sudo kubeadm upgrade plan')
    assert.equal(plan31.code, 0, plan31.stderr)
    assert.match(plan31.stderr, /remote version is much newer: v1\.32\.4; falling back to: stable-1\.31/)
    assert.match(plan31.stdout, /\[upgrade\/versions\] Cluster version: 1\.31\.4\n\[upgrade\/versions\] kubeadm version: v1\.31\.4\n\[upgrade\/versions\] Target version: v1\.31\.5\n/)
    assert.match(plan31.stdout, /You can now apply the upgrade by executing the following command:\n\n\tkubeadm upgrade apply v1\.31\.5\n\nNote: Before you can perform this upgrade, you have to update kubeadm to v1\.31\.5\./)
    assert.match((await cp1('kubeadm upgrade plan')).stderr, /\[ERROR IsPrivilegedUser\]: user is not running as root/)
    assert.match((await w1('sudo kubeadm upgrade plan')).stderr, /^couldn't create a Kubernetes client from file ".*\/etc\/kubernetes\/admin\.conf": failed to load admin kubeconfig: open .*: no such file or directory\n/)

    // kubeadm's version rules: not beyond kubeadm's own minor, one minor at a time.
    const tooNew = await cp1('sudo kubeadm upgrade apply v1.32.4 --yes')
    assert.equal(tooNew.code, 1)
    assert.match(tooNew.stderr, /^\[upgrade\/version\] FATAL: the --version argument is invalid due to these fatal errors:\n\n\t- Specified version to upgrade to "v1\.32\.4" is at least one minor release higher than the kubeadm minor release \(32 > 31\)\. Such an upgrade is not supported\n\nPlease fix the misalignments/)

    // Upgrade kubeadm to 1.32 on cp-1 (repository switch + packages), then plan and apply.
    const switchMinor = (node: string) =>
      `sudo sed -i 's#/v1.31/#/v1.32/#' ${fx(lab, node).repoFile} && sudo apt-mark unhold kubeadm && sudo apt-get update && sudo apt-get install -y kubeadm='1.32.4-*' && sudo apt-mark hold kubeadm`
    const kubeadm132 = await cp1(switchMinor('cp-1'))
    assert.equal(kubeadm132.code, 0, kubeadm132.stderr)
    const plan = await cp1('sudo kubeadm upgrade plan v1.32.4')
    assert.equal(plan.code, 0, plan.stderr)
    assert.match(plan.stdout, /COMPONENT {17}NODE {6}CURRENT {4}TARGET\nkube-apiserver {12}cp-1 {6}v1\.31\.4 {4}v1\.32\.4\nkube-apiserver {12}cp-2 {6}v1\.31\.4 {4}v1\.32\.4\n/)
    assert.match(plan.stdout, /\n\tkubeadm upgrade apply v1\.32\.4\n/)
    assert.match(plan.stdout, /etcd {22}cp-1 {6}3\.5\.15-0 {3}3\.5\.16-0\n/)
    const skip = await cp1('sudo kubeadm upgrade apply v1.33.0 --yes --force')
    assert.match(skip.stderr, /Specified version to upgrade to "v1\.33\.0" is too high; kubeadm can upgrade only 1 minor version at a time/)
    const interactive = await cp1('sudo kubeadm upgrade apply v1.32.4')
    assert.equal(interactive.code, 1)
    assert.match(interactive.stderr, /won't proceed; the user didn't answer \(Y\|y\) in order to continue/)
    assert.equal(lab.api.kubeadm.kubernetesVersion(), V)

    const apply = await cp1('sudo kubeadm upgrade apply v1.32.4 --yes')
    assert.equal(apply.code, 0, apply.stderr)
    assert.match(apply.stdout, /\[upgrade\] SUCCESS! A control plane node of your cluster was upgraded to "v1\.32\.4"\.\n/)
    assert.equal(lab.api.kubeadm.kubernetesVersion(), 'v1.32.4')
    assert.equal(clusterConfiguration(lab).kubernetesVersion, 'v1.32.4')
    assert.deepEqual(lab.api.kubeadm.componentVersions('cp-1'), {etcd: '3.5.16-0', 'kube-apiserver': 'v1.32.4', 'kube-controller-manager': 'v1.32.4', 'kube-scheduler': 'v1.32.4'})
    assert.equal(lab.api.kubeadm.componentVersions('cp-2')['kube-apiserver'], V, 'apply touches only its own node')
    assert.deepEqual(await manifestVersions(fx(lab, 'cp-1')), {etcd: '3.5.16-0', 'kube-apiserver': 'v1.32.4', 'kube-controller-manager': 'v1.32.4', 'kube-scheduler': 'v1.32.4'})
    const backups = await kubeadmBackups(fx(lab, 'cp-1'))
    assert.equal(backups.length, 2)
    assert.match(backups[0]!, /^kubeadm-backup-etcd-\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$/)
    assert.match(backups[1]!, /^kubeadm-backup-manifests-\d{4}(-\d\d){5}$/)
    assert.deepEqual((await readdir(join(fx(lab, 'cp-1').kubeDir, 'tmp', backups[1]!))).sort(), ['etcd.yaml', 'kube-apiserver.yaml', 'kube-controller-manager.yaml', 'kube-scheduler.yaml'])
    assert.match(await readFile(join(fx(lab, 'cp-1').kubeDir, 'tmp', backups[1]!, 'kube-apiserver.yaml'), 'utf8'), /kube-apiserver:v1\.31\.4/)
    assert.match(await readKubeletConfig(fx(lab, 'cp-1')), /Kubernetes v1\.32\.4/)
    assert.equal((lab.api.store.get('daemonsets.apps', 'kube-system', 'kube-proxy') as StoredObject).spec?.template.spec.containers[0].image, 'registry.k8s.io/kube-proxy:v1.32.4')
    // The Node still runs the old kubelet: only a restart of a newer kubelet package changes it.
    assert.equal(kubeletVersion(lab, 'cp-1'), V)

    // upgrade node on the second control plane: its static pods follow kubeadm-config.
    assert.equal((await cp2(switchMinor('cp-2'))).code, 0)
    const node = await cp2('sudo kubeadm upgrade node')
    assert.equal(node.code, 0, node.stderr)
    assert.match(node.stdout, /\[upgrade\/control-plane\] Upgrading your Static Pod-hosted control plane instance to version "v1\.32\.4"\.\.\.\n/)
    assert.match(node.stdout, /\[upgrade\] The configuration for this node was successfully updated!\n/)
    assert.equal(lab.api.kubeadm.componentVersions('cp-2')['kube-apiserver'], 'v1.32.4')
    assert.equal(lab.api.pods.get('kube-system', 'kube-apiserver-cp-2')!.spec?.containers[0].image, 'registry.k8s.io/kube-apiserver:v1.32.4')

    // A worker: only its kubelet configuration.
    assert.equal((await w1(switchMinor('w-1'))).code, 0)
    const worker = await w1('sudo kubeadm upgrade node')
    assert.equal(worker.code, 0, worker.stderr)
    assert.match(worker.stdout, /\[upgrade\/control-plane\] Skipping phase\. Not a control plane node\.\n/)
    assert.match(worker.stdout, /\[upgrade\] The configuration for this node was successfully updated!\n\[upgrade\] Now you should go ahead and upgrade the kubelet package using your package manager\.\n$/)
    assert.match(await readKubeletConfig(fx(lab, 'w-1')), /Kubernetes v1\.32\.4/)

    // kubelet package, daemon-reload, restart: NotReady, then Ready at the installed version.
    lab.api.nodes.behave('w-1', {readyDelayMs: 300})
    const kubelet = await w1("sudo apt-mark unhold kubelet kubectl && sudo apt-get install -y kubelet='1.32.4-*' kubectl='1.32.4-*' && sudo apt-mark hold kubelet kubectl")
    assert.equal(kubelet.code, 0, kubelet.stderr)
    assert.equal((await w1('kubelet --version')).stdout, 'Kubernetes v1.32.4\n')
    assert.equal(kubeletVersion(lab, 'w-1'), V, 'installing the package does not restart the kubelet')
    const restart = await w1('sudo systemctl daemon-reload && sudo systemctl restart kubelet')
    assert.deepEqual([restart.code, restart.stderr], [0, ''])
    assert.equal(ready(lab.api.nodes.get('w-1')), 'False')
    await lab.api.waitFor(() => ready(lab.api.nodes.get('w-1')) === 'True' && kubeletVersion(lab, 'w-1') === 'v1.32.4', {message: 'w-1 Ready at v1.32.4'})
    assert.deepEqual(lab.api.k3sLog.filter((e) => e.node === 'w-1').map((e) => [e.event, e.version]), [['kubelet-stopped', undefined], ['kubelet-started', 'v1.32.4']])
    assert.deepEqual(lab.api.kubeadm.skewViolations, [])
  })
})

test('knobs: kubeadm apply and node failures roll back, a kubelet version that crashes, install failures, swap, plan failure', async () => {
  await withLab({nodes: [{name: 'cp-1', role: 'server'}, {name: 'w-1', role: 'agent'}], readyDelayMs: 50}, async (lab) => {
    const cp1 = sshTo(lab, 'cp-1')
    const w1 = sshTo(lab, 'w-1')
    const cp = fx(lab, 'cp-1')
    const w = fx(lab, 'w-1')
    assert.equal((await cp1('sudo apt-mark unhold kubeadm kubelet && sudo apt-get install -y kubeadm=1.31.5-1.1')).code, 0)

    await setKubeadmFailure(cp, 'apply', 'failed to obtain static Pod hash for component kube-apiserver on Node cp-1: timed out waiting for the condition')
    const failed = await cp1('sudo kubeadm upgrade apply v1.31.5 --yes')
    assert.equal(failed.code, 1)
    assert.match(failed.stderr, /^\[upgrade\/apply\] FATAL: couldn't upgrade control plane\. kubeadm has tried to recover everything into the earlier state\. Errors faced: failed to obtain static Pod hash/)
    assert.equal(lab.api.kubeadm.kubernetesVersion(), V)
    assert.deepEqual(await manifestVersions(cp), {etcd: '3.5.15-0', 'kube-apiserver': V, 'kube-controller-manager': V, 'kube-scheduler': V})
    assert.equal(lab.api.kubeadm.componentVersions('cp-1')['kube-apiserver'], V)
    await setKubeadmFailure(cp, 'apply', null)

    await setKubeadmFailure(cp, 'plan', 'unable to fetch the kubeadm-config ConfigMap')
    assert.match((await cp1('sudo kubeadm upgrade plan')).stderr, /^\[upgrade\/versions\] FATAL: unable to fetch the kubeadm-config ConfigMap\n/)
    await setKubeadmFailure(cp, 'plan', null)

    // A kubelet whose node is down cannot restart static pods: apply times out and rolls back.
    await cp1('sudo systemctl stop kubelet')
    const down = await cp1('sudo kubeadm upgrade apply v1.31.5 --yes --ignore-preflight-errors=ControlPlaneNodesReady')
    assert.equal(down.code, 1)
    assert.match(down.stderr, /Errors faced: static Pod hash for component kube-apiserver on Node cp-1 did not change after 5m0s: timed out waiting for the condition/)
    assert.equal((await manifestVersions(cp))['kube-apiserver'], V)
    await cp1('sudo systemctl start kubelet')
    await lab.api.waitFor(() => ready(lab.api.nodes.get('cp-1')) === 'True')
    assert.equal((await cp1('sudo kubeadm upgrade apply v1.31.5 --yes')).code, 0)

    await setKubeadmFailure(w, 'node', 'failed to write kubelet configuration: no space left on device')
    const nodeFail = await w1('sudo kubeadm upgrade node')
    assert.equal(nodeFail.code, 1)
    assert.match(nodeFail.stderr, /^error execution phase kubelet-config: failed to write kubelet configuration: no space left on device\n/)
    assert.doesNotMatch(await readKubeletConfig(w), /v1\.31\.5/)
    await setKubeadmFailure(w, 'node', null)

    // A kubelet that crashes at 1.31.5: the unit keeps restarting, the Node stays NotReady; back at 1.31.4 it comes up.
    await setKubeletCrashVersions(cp, ['v1.31.5'])
    assert.equal((await cp1('sudo apt-get install -y kubelet=1.31.5-1.1 && sudo systemctl daemon-reload && sudo systemctl restart kubelet')).code, 0)
    assert.equal((await cp1('systemctl is-active kubelet')).stdout, 'activating\n')
    assert.equal(await serviceState(cp), 'activating')
    await new Promise((r) => setTimeout(r, 200))
    assert.notEqual(ready(lab.api.nodes.get('cp-1')), 'True')
    assert.match((await cp1('sudo kubeadm upgrade plan')).stderr, /\[ERROR ControlPlaneNodesReady\]: there are NotReady control-planes in the cluster: \[cp-1\]/)
    assert.equal((await cp1('sudo apt-get install -y --allow-downgrades kubelet=1.31.4-1.1 && sudo systemctl daemon-reload && sudo systemctl restart kubelet')).code, 0)
    await lab.api.waitFor(() => ready(lab.api.nodes.get('cp-1')) === 'True' && kubeletVersion(lab, 'cp-1') === V, {message: 'cp-1 back at v1.31.4'})
    await setKubeletCrashVersions(cp, [])

    // Install failures: a download that fails changes nothing; a failing post-install leaves it half-configured.
    await setPackageInstallFailure(w, 'kubelet', 'download')
    const dl = await w1('sudo apt-get install -y --allow-change-held-packages kubelet=1.31.5-1.1')
    assert.equal(dl.code, 100)
    assert.match(dl.stderr, /^E: Failed to fetch http:\/\/127\.0\.0\.1:\d+\/core:\/stable:\/v1\.31\/deb\/amd64\/kubelet_1\.31\.5-1\.1_amd64\.deb {2}404 {2}Not Found \[IP: 127\.0\.0\.1 \d+\]\nE: Unable to fetch some archives, maybe run apt-get update or try with --fix-missing\?\n$/)
    assert.equal((await installedPackages(w)).kubelet!.version, '1.31.4-1.1')
    await setPackageInstallFailure(w, 'kubelet', 'configure')
    const conf = await w1('sudo apt-get install -y --allow-change-held-packages kubelet=1.31.5-1.1')
    assert.equal(conf.code, 100)
    assert.match(conf.stderr, /dpkg: error processing package kubelet \(--configure\):\n installed kubelet package post-installation script subprocess returned error exit status 1\nErrors were encountered while processing:\n kubelet\nE: Sub-process \/usr\/bin\/dpkg returned an error code \(1\)\n$/)
    assert.deepEqual(await installedPackages(w).then((db) => db.kubelet), {version: '1.31.5-1.1', arch: 'amd64', hold: true, status: 'half-configured'})
    assert.equal((await w1("dpkg-query -W -f='${db:Status-Abbrev}${Version}\\n' kubelet")).stdout, 'hF 1.31.5-1.1\n')
    await setPackageInstallFailure(w, 'kubelet', null)
    assert.match((await w1('sudo apt-get install -y --allow-change-held-packages kubelet=1.31.5-1.1')).stdout, /Setting up kubelet \(1\.31\.5-1\.1\) \.\.\.\n$/)

    // Swap.
    assert.equal((await w1('swapon --show --noheadings')).stdout, '')
    await setSwap(w, true)
    assert.equal((await w1('swapon --show --noheadings')).stdout, '/swapfile file   2G   0B   -2\n')
  })
})

test('etcdctl on a stacked control plane; external etcd has no etcd pods or manifest; release files', async () => {
  await withLab({nodes: [{name: 'cp-1', role: 'server'}]}, async (lab) => {
    const cp1 = sshTo(lab, 'cp-1')
    const k = fx(lab, 'cp-1').kubeDir
    const etcdctl = `etcdctl --endpoints=https://127.0.0.1:2379 --cacert=${k}/pki/etcd/ca.crt --cert=${k}/pki/etcd/server.crt --key=${k}/pki/etcd/server.key`
    const snap = `${fx(lab, 'cp-1').dir}/snapshot.db`
    const saved = await cp1(`sudo env ETCDCTL_API=3 ${etcdctl} snapshot save ${snap}`)
    assert.equal(saved.code, 0, saved.stderr)
    assert.equal(saved.stdout, `Snapshot saved at ${snap}\n`)
    assert.ok((await readFile(snap)).length > 100)
    assert.match((await cp1(`ETCDCTL_API=3 ${etcdctl} snapshot save ${snap}`)).stderr, /^Error: open .*server\.key: permission denied\n$/)
    // sudo refuses environment assignments the sudoers policy does not allow, as real sudo does.
    assert.equal((await cp1(`sudo ETCDCTL_API=3 ${etcdctl} snapshot save ${snap}`)).stderr, 'sudo: sorry, you are not allowed to set the following environment variables: ETCDCTL_API\n')
    assert.match((await cp1(`sudo ${etcdctl.replace('server.crt', 'nope.crt')} snapshot save ${snap}`)).stderr, /^Error: open .*nope\.crt: no such file or directory\n$/)
    assert.equal((await cp1('etcdctl version')).stdout, 'etcdctl version: 3.5.15\nAPI version: 3.5\n')

    // Release files, as dl.k8s.io serves them (302 to its CDN, one line, 404 with GCS's body).
    const get = async (name: string) => {
      const res = await fetch(`${lab.packages.releaseUrl}/${name}.txt`, {signal: AbortSignal.timeout(5000)})
      return [res.status, await res.text()]
    }
    assert.deepEqual(await get('stable'), [200, 'v1.32.4\n'])
    assert.deepEqual(await get('latest'), [200, 'v1.32.4\n'])
    assert.deepEqual(await get('stable-1.31'), [200, 'v1.31.5\n'])
    assert.deepEqual(await get('stable-1.32'), [200, 'v1.32.4\n'])
    const unknown = await get('stable-1.99')
    assert.equal(unknown[0], 404)
    assert.match(String(unknown[1]), /NoSuchKey/)
    const redirect = await fetch(`${lab.packages.releaseUrl}/stable.txt`, {redirect: 'manual', signal: AbortSignal.timeout(5000)})
    assert.equal(redirect.status, 302)
    lab.packages.addRelease('v1.33.0-rc.1')
    assert.deepEqual(await get('latest'), [200, 'v1.33.0-rc.1\n'])
    assert.deepEqual(await get('stable'), [200, 'v1.32.4\n'])
    assert.deepEqual(lab.packages.packages('v1.33', 'deb'), [], 'pre-releases have no packages')
    const repo = await fetch(lab.packages.repoUrl('v1.33', 'deb') + 'InRelease', {signal: AbortSignal.timeout(5000)})
    assert.equal(repo.status, 404)
  })
  await withLab({nodes: [{name: 'cp-1', role: 'server'}, {name: 'w-1', role: 'agent'}], embeddedEtcd: false}, async (lab) => {
    assert.ok(clusterConfiguration(lab).etcd.external, 'etcd.external')
    assert.equal(lab.api.pods.get('kube-system', 'etcd-cp-1'), undefined)
    assert.deepEqual(Object.keys(await manifestVersions(fx(lab, 'cp-1'))).sort(), ['kube-apiserver', 'kube-controller-manager', 'kube-scheduler'])
    const cp1 = sshTo(lab, 'cp-1')
    assert.equal((await cp1('command -v etcdctl')).code, 1)
    const plan = await cp1('sudo kubeadm upgrade plan')
    assert.equal(plan.code, 0, plan.stderr)
    assert.doesNotMatch(plan.stdout, /^etcd /m)
  })
})

test('the command log records every fake tool call, in order, with root or not', async () => {
  await withLab({nodes: [{name: 'w-1', role: 'agent'}]}, async (lab) => {
    const w1 = sshTo(lab, 'w-1')
    await w1('apt-mark showhold >/dev/null; sudo -n apt-mark unhold kubeadm >/dev/null; sudo systemctl daemon-reload; kubeadm version -o short >/dev/null')
    const log = await readCommandLog(fx(lab, 'w-1'))
    assert.deepEqual(log.map((e) => [e.tool, e.privileged, e.argv.join(' ')]), [
      ['apt-mark', false, 'showhold'],
      ['sudo', false, '-n apt-mark unhold kubeadm'],
      ['apt-mark', true, 'unhold kubeadm'],
      ['sudo', false, 'systemctl daemon-reload'],
      ['systemctl', true, 'daemon-reload'],
      ['kubeadm', false, 'version -o short'],
    ])
    assert.ok(log.every((e) => e.time instanceof Date && !Number.isNaN(e.time.getTime())))
  })
})
