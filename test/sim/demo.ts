/**
 * `npm run demo`: start the simulated homelab (3 servers with embedded etcd, 3 agents, a web app
 * under a PodDisruptionBudget, a DaemonSet, emptyDir pods), upgrade it with the real CLI, show
 * `homelab k8s status`, stop everything. `npm run demo -- --json` prints only the upgrade's JSON.
 * `npm run demo -- --distribution rke2` does the same with an rke2 homelab (v1.31.3+rke2r1 →
 * v1.31.4+rke2r1); the default is k3s (v1.31.4+k3s1 → v1.31.5+k3s1).
 * `npm run demo -- --distribution kubeadm`: 3 control planes with stacked etcd and 3 workers
 * (apt) at v1.31.4, packages and release files for v1.31.5, v1.32.0 and v1.32.4, upgraded with
 * `homelab k8s upgrade --to v1.32.4` (one minor: repository switch, kubeadm upgrade apply|node,
 * kubelet packages and restarts).
 * `npm run demo -- --airgap` (k3s or rke2): every node air-gapped, its images from the archive in
 * its agent image dir, which the upgrade replaces with the target's beside the binary.
 */
import {spawn} from 'node:child_process'
import path from 'node:path'

import {REPO_ROOT, startHomelab, type Homelab} from './homelab.js'
import type {SimDistribution} from './kubeadm-fake.js'

const UPGRADES: Record<SimDistribution, {from: string; to: string; releases: string[]}> = {
  k3s: {from: 'v1.31.4+k3s1', to: 'v1.31.5+k3s1', releases: ['v1.31.5+k3s1']},
  rke2: {from: 'v1.31.3+rke2r1', to: 'v1.31.4+rke2r1', releases: ['v1.31.4+rke2r1']},
  kubeadm: {from: 'v1.31.4', to: 'v1.32.4', releases: ['v1.31.5', 'v1.32.0', 'v1.32.4']},
}

/** `--distribution rke2` or `--distribution=rke2`; default k3s. */
function distributionArg(argv: readonly string[]): SimDistribution {
  const at = argv.findIndex((a) => a === '--distribution' || a.startsWith('--distribution='))
  if (at === -1) return 'k3s'
  const value = argv[at]!.includes('=') ? argv[at]!.slice(argv[at]!.indexOf('=') + 1) : argv[at + 1]
  if (value !== 'k3s' && value !== 'rke2' && value !== 'kubeadm') throw new Error(`--distribution must be k3s, rke2 or kubeadm, not ${JSON.stringify(value ?? '')}`)
  return value
}

function runCli(lab: Homelab, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'run.js'), ...args], {env: {...lab.env, TERM: process.env.TERM ?? 'xterm'}, stdio: 'inherit'})
    child.on('error', reject)
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
}

async function main(): Promise<number> {
  const json = process.argv.includes('--json')
  const distribution = distributionArg(process.argv.slice(2))
  const airgap = process.argv.includes('--airgap')
  if (airgap && distribution === 'kubeadm') throw new Error('--airgap: kubeadm nodes pull their images; use it with k3s or rke2')
  const {from: FROM, to: TO, releases} = UPGRADES[distribution]
  const say = (line: string) => {
    if (!json) process.stdout.write(`${line}\n`)
  }
  say(`Starting the simulated ${airgap ? 'air-gapped ' : ''}${distribution} homelab (3 ${distribution === 'kubeadm' ? 'control planes, 3 workers' : 'servers, 3 agents'}) at ${FROM}…`)
  const started = Date.now()
  const lab = await startHomelab({distribution, workloads: true, version: FROM, releases, ...(airgap ? {images: 'archive' as const} : {}), ...(distribution === 'kubeadm' ? {} : {channels: {stable: TO, latest: TO, 'v1.31': TO}})})
  let exitCode = 1
  const stop = async () => {
    await lab.stop()
  }
  process.once('SIGINT', () => void stop().then(() => process.exit(130)))
  try {
    say(`Homelab up in ${((Date.now() - started) / 1000).toFixed(1)}s: nodes over ${lab.nodes[0].ssh.kind === 'openssh' ? 'OpenSSH sshd' : 'the in-process SSH server'} on loopback, API at ${lab.api.url}`)
    say(`Cluster file: ${lab.configPath}${distribution === 'kubeadm' ? `\nPackages and release files: ${lab.packages.origin} (stable.txt: ${lab.packages.releaseFile('stable')})` : ''}\n`)
    say(`$ homelab k8s upgrade --to ${TO} --yes`)
    exitCode = await runCli(lab, ['k8s', 'upgrade', '--to', TO, '--yes', ...(json ? ['--json'] : [])])
    if (!json) {
      say('\n$ homelab k8s status')
      await runCli(lab, ['k8s', 'status'])
    }
  } finally {
    await stop()
  }
  say(`\nStopped the homelab. The upgrade exited ${exitCode}.`)
  return exitCode
}

process.exitCode = await main()
