/**
 * Pre-flight of a kubeadm upgrade, read-only: the checks every distribution shares (names, runs
 * left over, NotReady, versions, Velero, drains) plus kubeadm's own, per node over SSH: root,
 * the package manager and the installed packages, the repository definition and its switch to
 * the target's minor, the exact package version the target repository offers, swap off, and on
 * the first control plane admin.conf and where etcd runs.
 */
import {packageDistributionOf, type PackageDistribution} from '../distributions/index.js'
import {isHomelabError, PreflightError} from '../errors.js'
import type {InventoryNode} from '../inventory.js'
import {clusterKubernetesVersion} from '../kube/control-plane.js'
import {kubeadmUpgradePlan} from '../node/kubeadm-ops.js'
import {probePackageNode} from '../node/package-probe.js'
import {packageVersionFor, switchRepositoryMinor, type PackageManagerName} from '../node/packages.js'
import {settleWithConcurrency} from '../saga/concurrency.js'
import {classifyUpgrade} from '../versions/skew.js'
import type {ReleaseVersion} from '../versions/release-version.js'
import {checkVelero, clusterProblems, planDrains, planOf, plannedBase, refuseIfProblems, SSH_FANOUT, type PreflightRequest} from './preflight.js'
import type {PlannedNodeBase, UpgradeDeps, UpgradePlan} from './types.js'

// apt and dnf download into /var/cache; kubeadm, kubelet and kubectl unpack into the bin dir.
const PACKAGE_CACHE = '/var/cache'
const MIN_FREE_KB = 200 * 1024

export interface KubeadmPlannedNode extends PlannedNodeBase {
  packageManager: PackageManagerName
  configDir: string
  repositoryFile: string
  /** The definition as it was (the undo puts it back) and as the target needs it (same text for a patch). */
  repositoryBefore: string
  repositoryAfter: string
  /** apt holds on the node before the run; kept as they were. */
  held: string[]
  packagesBefore: Record<string, string>
  packagesTarget: Record<string, string>
  /** The one node that runs `kubeadm upgrade apply`; every other runs `kubeadm upgrade node`. */
  applies: boolean
}

export async function kubeadmPreflight(deps: UpgradeDeps, request: PreflightRequest): Promise<UpgradePlan<KubeadmPlannedNode>> {
  const {inventory, config} = deps
  const distribution = packageDistributionOf(deps.distribution.name)
  const {target, signal} = request
  const problems: string[] = []
  const fix: string[] = []
  const warnings = [...inventory.warnings]
  clusterProblems(inventory, request.only, problems, fix)
  const selected = request.only ? new Set(request.only) : undefined

  const skipped: UpgradePlan['skipped'] = []
  const candidates: InventoryNode[] = []
  for (const node of inventory.nodes) {
    if (!node.cluster) continue
    if (selected && !selected.has(node.name)) {
      skipped.push({node: node.name, reason: 'not selected by --nodes'})
      continue
    }
    const from = node.cluster.kubeletVersion
    const kind = classifyUpgrade(from, target)
    if (kind === 'downgrade') {
      problems.push(`node ${node.name} runs ${from}; ${target.format()} would be a downgrade`)
      fix.push(`pick a target of at least ${from}; going back means restoring a backup`)
    } else if (kind === 'skip') {
      problems.push(`node ${node.name} runs ${from}; ${target.format()} skips a minor version`)
      fix.push('upgrade one minor at a time (homelab plans the hops unless --no-hops is given)')
    } else {
      candidates.push(node)
    }
  }

  const servers = candidates.filter((n) => n.role === 'server')
  const first = servers[0]
  // Once the cluster is at the target (a run started again after a failure), there is nothing left to plan.
  const needsApply = (await clusterKubernetesVersion(deps.kube, distribution).catch(() => undefined)) !== target.format()
  const inspected = await settleWithConcurrency(candidates, SSH_FANOUT, (node) => {
    request.onProgress?.(`checking ${node.name} over SSH`)
    return inspectNode(deps, distribution, node, target, node === first, needsApply, signal)
  })
  const planned: KubeadmPlannedNode[] = []
  let stackedEtcd = false
  let hasEtcdctl = false
  inspected.forEach((outcome, index) => {
    const node = candidates[index]
    if (outcome.status === 'rejected') {
      problems.push(`node ${node.name}: ${isHomelabError(outcome.reason) ? outcome.reason.oneLine() : (outcome.reason as Error).message}`)
      return
    }
    const {plan, etcd, etcdctl} = outcome.value
    if (node === first) {
      stackedEtcd = etcd
      hasEtcdctl = etcdctl
    }
    const atTarget = node.cluster?.kubeletVersion === target.format() && Object.entries(plan.packagesTarget).every(([p, v]) => plan.packagesBefore[p] === v)
    if (atTarget) skipped.push({node: node.name, reason: `already at ${target.format()}`})
    else planned.push(plan)
  })

  const wantVelero = await checkVelero(deps, request.skipBackup, problems)
  const etcdMode = config.upgrade.backup.etcdSnapshot
  let etcdSnapshotNode: string | undefined
  if (!request.skipBackup && etcdMode !== 'never' && first) {
    if (stackedEtcd && hasEtcdctl) etcdSnapshotNode = first.name
    else if (stackedEtcd) {
      problems.push(`${first.name} runs etcd (stacked), but neither etcdctl nor crictl is installed there to take the snapshot`)
      fix.push('install etcdctl (the etcd-client package) or crictl (cri-tools) on it, or set upgrade.backup.etcdSnapshot: never')
    }    else if (etcdMode === 'always') {
      problems.push(`upgrade.backup.etcdSnapshot is always, but ${first.name} has no ${distribution.etcd.manifest(first.configDir)} (etcd is external)`)
      fix.push('back up the external etcd yourself and set upgrade.backup.etcdSnapshot: auto')
    } else warnings.push('etcd is external to the control planes: back it up yourself before the upgrade')
  }
  // A minor kubelet upgrade needs a drain on every node, control planes included.
  const drain = await planDrains(deps, planned, problems, fix)

  refuseIfProblems(target, problems, fix)
  // The first control plane applies, unless it is already done (resumed, or --nodes left it out).
  const appliesNode = planned.find((n) => n.role === 'server' && n.name === first?.name)
  if (appliesNode) appliesNode.applies = true
  return planOf(target, planned, {skipped, backup: {velero: wantVelero, etcdSnapshotNode}, skippedComponents: [], drain, warnings})
}

async function inspectNode(deps: UpgradeDeps, distribution: PackageDistribution, node: InventoryNode, target: ReleaseVersion, isFirst: boolean, needsApply: boolean, signal?: AbortSignal): Promise<{plan: KubeadmPlannedNode; etcd: boolean; etcdctl: boolean}> {
  const transport = await deps.connect(node)
  const packages = [distribution.upgrader, ...distribution.nodePackages]
  const toMinor = `${target.major}.${target.minor}`
  // Read-only, with the kubeadm installed now: its version rules and health checks, before any
  // package moves. It needs none of the probe's answers, so it runs beside the probe (its own
  // exec on the same connection) and is judged after them, where it always was.
  const plan = isFirst && needsApply && node.role === 'server' ? kubeadmUpgradePlan(transport, distribution, target.format(), node.configDir, {signal}) : undefined
  plan?.catch(() => {})
  // Everything else this node is asked, in one round trip; the answers are judged in the order below.
  const probe = await probePackageNode(transport, {
    distribution,
    become: node.ssh.become,
    sudoUser: node.ssh.user,
    binDir: node.binDir,
    packageCache: PACKAGE_CACHE,
    repositoryNames: distribution.repositoryFiles,
    repositoryFile: node.repositoryFile,
    targetMinor: toMinor,
    controlPlane: node.role === 'server' ? {adminConf: distribution.adminConf(node.configDir), etcdManifest: distribution.etcd.manifest(node.configDir)} : undefined,
    signal,
  })
  const arch = probe.arch()
  const manager = probe.manager()
  const before = probe.installed(packages)
  const held = probe.held()
  const file = probe.repositoryFile()
  const swap = probe.swap()
  const binFree = probe.freeKb('bin')
  const cacheFree = probe.freeKb('cache')
  for (const [dir, free] of [[node.binDir, binFree], [PACKAGE_CACHE, cacheFree]] as const) {
    if (free < MIN_FREE_KB) throw new PreflightError(`only ${Math.round(free / 1024)} MiB free for ${dir}; the three packages need about ${MIN_FREE_KB / 1024} MiB to download and unpack`, {hint: `free space on the filesystem of ${dir} (apt-get clean or dnf clean packages helps)`})
  }
  const missing = packages.filter((p) => !before[p])
  if (missing.length > 0) throw new PreflightError(`${missing.join(', ')} not installed through ${manager}`, {hint: 'install kubeadm, kubelet and kubectl from the Kubernetes package repository, as kubeadm clusters are set up'})
  if (swap.trim()) throw new PreflightError(`swap is on (${swap.trim().split('\n')[0]})`, {hint: 'turn it off (swapoff -a and remove it from /etc/fstab): the kubelet refuses to start with swap by default'})
  const repositoryBefore = probe.repositoryText(file)
  const fromMinor = /^v?(\d+\.\d+)/.exec(before[distribution.upgrader] as string)?.[1] as string
  const repositoryAfter = fromMinor === toMinor ? repositoryBefore : switchRepositoryMinor(repositoryBefore, fromMinor, toMinor)
  if (repositoryAfter === undefined) {
    throw new PreflightError(`${file} names no /v${fromMinor}/ repository to switch to v${toMinor}`, {hint: `switch it to the v${toMinor} repository by hand (kubeadm's guide: one repository per minor), or set install.repositoryFile`})
  }
  const offered = await probe.offered(repositoryAfter, file, distribution.upgrader)
  const version = packageVersionFor(target.format(), offered)
  if (!version) {
    throw new PreflightError(`the repository in ${file}${repositoryAfter !== repositoryBefore ? ` (switched to v${toMinor})` : ''} has no ${distribution.upgrader} ${target.format()} (it offers ${offered.slice(0, 3).join(', ') || 'nothing'})`, {
      hint: 'pick a version the repository carries (homelab k8s upgrade --to stable), or wait for the mirror to sync',
    })
  }
  let etcd = false
  let etcdctl = false
  if (node.role === 'server') {
    const facts = probe.controlPlaneFacts()
    if (isFirst && !facts.includes('admin')) throw new PreflightError(`no ${distribution.adminConf(node.configDir)} on the first control plane`, {hint: 'kubeadm upgrade apply runs where admin.conf is; list that control plane first, or set install.configDir'})
    if (plan) {
      await plan.catch((error: unknown) => {
        throw new PreflightError(isHomelabError(error) ? error.message.replace(`${transport.node}: `, '') : String(error), {cause: error, hint: isHomelabError(error) ? error.hint : undefined})
      })
    }
    etcd = /^etcd$/m.test(facts)
    // Without etcdctl on the host, the etcd image's own etcdctl is reached through crictl.
    etcdctl = /^(etcdctl|crictl)$/m.test(facts)
  }
  return {
    etcd,
    etcdctl,
    plan: {
      ...plannedBase(node, arch, node.cluster?.kubeletVersion ?? (before.kubelet as string)),
      traits: [manager, ...(repositoryAfter !== repositoryBefore ? [`repository → v${toMinor}`] : [])],
      packageManager: manager,
      configDir: node.configDir,
      repositoryFile: file,
      repositoryBefore,
      repositoryAfter,
      held,
      packagesBefore: before as Record<string, string>,
      packagesTarget: Object.fromEntries(packages.map((p) => [p, version])),
      applies: false,
    },
  }
}
