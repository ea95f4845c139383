/**
 * Facts about a kubeadm run, read from the simulated nodes' command logs and package databases:
 * what ran where and in which order, and where every node ended up.
 */
import type {TestContext} from 'node:test'

import type {Homelab, HomelabOptions} from '../sim/homelab.js'
import {installedPackages, kubeadmFixture, repositoryFile} from '../sim/kubeadm-node.js'
import {readCommandLog, type CommandLogEntry} from '../sim/node-fixture.js'
import {lab} from './helpers.js'

export const KFROM = 'v1.31.4'
export const KTO = 'v1.32.4'
export const CONTROL_PLANES = ['server-1', 'server-2', 'server-3']
export const WORKERS = ['agent-1', 'agent-2', 'agent-3']

/** A 3+3 kubeadm homelab at v1.31.4 whose repositories carry v1.31.5 and v1.32.4. */
export function kubeadmLab(t: TestContext, options: HomelabOptions = {}): Promise<Homelab> {
  return lab(t, {distribution: 'kubeadm', version: KFROM, releases: ['v1.31.5', KTO], servers: 3, agents: 3, ...options})
}

/** The calls that change a node: package installs and holds, kubeadm upgrades, kubelet restarts. */
export function changes(log: readonly CommandLogEntry[]): CommandLogEntry[] {
  return log.filter((e) => e.privileged && (
    (e.tool === 'apt-get' && e.argv.includes('install')) ||
    (e.tool === 'apt-mark' && (e.argv.includes('hold') || e.argv.includes('unhold'))) ||
    (e.tool === 'dnf' && (e.argv.includes('install') || e.argv.includes('downgrade'))) ||
    (e.tool === 'kubeadm' && e.argv[0] === 'upgrade' && e.argv[1] !== 'plan') ||
    (e.tool === 'systemctl' && e.argv[0] === 'restart')))
}

export async function nodeLog(homelab: Homelab, name: string): Promise<CommandLogEntry[]> {
  return readCommandLog(homelab.node(name).fixture)
}

/** Package name → installed version on the node. */
export async function packageVersions(homelab: Homelab, name: string): Promise<Record<string, string>> {
  const db = await installedPackages(homelab.node(name).fixture)
  return Object.fromEntries(['kubeadm', 'kubelet', 'kubectl'].map((p) => [p, db[p]?.version ?? 'missing']))
}

export async function repository(homelab: Homelab, name: string): Promise<string> {
  return repositoryFile(kubeadmFixture(homelab.node(name).fixture))
}

/** Index of the first entry matching, or -1. */
export function indexOf(log: readonly CommandLogEntry[], match: (e: CommandLogEntry) => boolean): number {
  return log.findIndex(match)
}

export const installs = (pkg: string) => (e: CommandLogEntry) =>
  (e.tool === 'apt-get' && e.argv.includes('install') && e.argv.some((a) => a.startsWith(`${pkg}=`))) ||
  (e.tool === 'dnf' && (e.argv.includes('install') || e.argv.includes('downgrade')) && e.argv.some((a) => a.startsWith(`${pkg}-`)))
export const kubeadmUpgrade = (e: CommandLogEntry) => e.tool === 'kubeadm' && e.argv[0] === 'upgrade' && (e.argv[1] === 'apply' || e.argv[1] === 'node')

/** Where every node is now, as the API shows it: kubelet version, Ready, cordoned. */
export function kubeadmNodeStates(homelab: Homelab): Map<string, {kubelet: string; ready: boolean; cordoned: boolean}> {
  const states = new Map<string, {kubelet: string; ready: boolean; cordoned: boolean}>()
  for (const node of homelab.nodes) {
    const object = homelab.api.nodes.get(node.spec.name)
    const ready = ((object?.status?.conditions ?? []) as Array<{type: string; status: string}>).find((c) => c.type === 'Ready')?.status === 'True'
    states.set(node.spec.name, {kubelet: String(object?.status?.nodeInfo?.kubeletVersion), ready, cordoned: object?.spec?.unschedulable === true})
  }
  return states
}
