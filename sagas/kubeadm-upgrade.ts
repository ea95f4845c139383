/**
 * The upgrade of a kubeadm cluster over SSH, as kubeadm's upgrade guide lays it out, on the same
 * saga engine: back up (Velero, etcd snapshot), then the first control plane (repository switch,
 * kubeadm package, `kubeadm upgrade plan` and `apply`, drain, kubelet and kubectl, restart), the
 * other control planes one at a time (`kubeadm upgrade node`), then the workers a few at a time.
 *
 * What can be undone is: packages go back to the exact versions of the plan, the repository
 * definition to its old text, the kubelet's config to its copy, our cordons are lifted and the
 * Velero backup restored. What cannot is said so: once a node's control plane runs the target,
 * kubeadm does not downgrade it, so that node's undo is a compensation that always fails with the
 * documented manual recovery (exit 5). When every control plane is done the run is past that
 * point: from then on a worker's failure undoes that worker only (exit 4).
 */
import {AbortedError, HomelabError} from '../src/errors.js'
import {packageDistributionOf, type PackageDistribution} from '../src/distributions/index.js'
import {journalNode, type InventoryNode} from '../src/inventory.js'
import {clusterKubernetesVersion, controlPlaneVersions, waitControlPlaneAt} from '../src/kube/control-plane.js'
import {cordonNode, uncordonNode} from '../src/kube/cordon.js'
import {drainNode, type DrainSettings} from '../src/kube/drain.js'
import {waitForApiReady} from '../src/kube/health.js'
import {isNodeReady} from '../src/kube/nodes.js'
import {waitNodeReadyAt, waitNodesReady} from '../src/kube/node-waits.js'
import {kubeadmUpgradeApply, kubeadmUpgradeNode, kubeadmUpgradePlan, kubeletConfigPaths, restartKubelet, restoreKubeletConfig, saveKubeadmEtcdSnapshot, saveKubeletConfig} from '../src/node/kubeadm-ops.js'
import {installedVersions, installPackages, readRepositoryFile, writeRepositoryFile, type PackageManagerName} from '../src/node/packages.js'
import {skip} from '../src/saga/engine.js'
import type {ActionContext, SagaDefinition, StepContext} from '../src/saga/types.js'
import type {KubeadmPlannedNode} from '../src/upgrade/kubeadm-preflight.js'
import type {UpgradeDeps, UpgradePlan} from '../src/upgrade/types.js'
import {restoreBackup, type VeleroSettings} from '../src/velero.js'
import type {SagaTimings} from './binary-upgrade.js'
import {sshDestination} from './ssh-destination.js'
import {backupStep} from './backup-step.js'
import {HealthGates, healthBaselineStep, type HealthGateInput} from './health-gate.js'
import {verifyStep, type VerifyData} from './verify-step.js'
import {afterCanary, canaryStep, soakStep} from './canary-steps.js'
import {nodeHooks, preRunHooksStep, type HooksData, type HooksInput} from './hook-steps.js'

export const KUBEADM_UPGRADE_SAGA = 'kubeadm-upgrade'

export interface KubeadmUpgradeInput extends HealthGateInput, HooksInput {
  distribution: 'kubeadm'
  target: string
  finalTarget: string
  laterHops: string[]
  plan: UpgradePlan<KubeadmPlannedNode>
  concurrency: number
  skipBackup: boolean
  velero: VeleroSettings
  drain: DrainSettings
  timeouts: {apiReadyMs: number; nodeReadyMs: number}
}

export interface KubeadmUpgradeData extends VerifyData, HooksData {
  veleroBackup?: string
  /** `name` is the snapshot's path on `node`. */
  etcdSnapshot?: {node: string; name: string}
  /** Control planes whose static pods run the target (kubeadm does not take that back). */
  controlPlanesUpgraded?: string[]
}

interface RestorePackages {
  node: string
  role: 'server' | 'agent'
  packageManager: PackageManagerName
  repositoryFile: string
  repositoryBefore: string
  packagesBefore: Record<string, string>
  held: string[]
  kubeletConfig: {live: string; copy: string}
  fromVersion: string
}

export interface KubeadmUpgradeCompensations {
  uncordon: {node: string}
  restorePackages: RestorePackages
  restoreBackup: {backupName: string}
  /** Cannot run: says that this control plane stays at `version` and how a person goes back. */
  controlPlaneUpgraded: {node: string; version: string; backupDir: string}
}

type Ctx = ActionContext<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>

const packageCommand = (manager: PackageManagerName, packages: Record<string, string>) =>
  manager === 'apt'
    ? `apt-get install -y --allow-downgrades --allow-change-held-packages ${Object.entries(packages).map(([p, v]) => `${p}=${v}`).join(' ')}`
    : `dnf downgrade -y --disableexcludes=all ${Object.entries(packages).map(([p, v]) => `${p}-${v}`).join(' ')}`

function restorePackagesSpec(node: KubeadmPlannedNode, kubeletConfig: {live: string; copy: string}) {
  const ssh = `ssh ${sshDestination(node)}`
  return {
    id: `restore-packages:${node.name}`,
    handler: 'restorePackages' as const,
    params: {
      node: node.name, role: node.role, packageManager: node.packageManager, repositoryFile: node.repositoryFile, repositoryBefore: node.repositoryBefore,
      packagesBefore: node.packagesBefore, held: node.held, kubeletConfig, fromVersion: node.fromVersion,
    },
    description: `put kubeadm, kubelet and kubectl ${node.fromVersion} back on ${node.name}`,
    manual: [
      ...(node.repositoryAfter !== node.repositoryBefore ? [`${ssh} sudo sed -i 's#/v${minorOf(node.packagesTarget.kubeadm)}/#/v${minorOf(node.packagesBefore.kubeadm)}/#g' ${node.repositoryFile}`] : []),
      `${ssh} sudo ${packageCommand(node.packageManager, node.packagesBefore)}`,
      `${ssh} sudo cp -p ${kubeletConfig.copy} ${kubeletConfig.live}`,
      `${ssh} sudo systemctl daemon-reload && ${ssh} sudo systemctl restart kubelet`,
    ],
  }
}

function minorOf(packageVersion: string | undefined): string {
  return /^(\d+\.\d+)/.exec(packageVersion ?? '')?.[1] ?? '?'
}

export function kubeadmUpgradeSaga(deps: UpgradeDeps, timings: SagaTimings = {}): SagaDefinition<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations> {
  const {kube} = deps
  const now = deps.now ?? (() => new Date())

  const inventoryNode = (name: string): InventoryNode => journalNode(deps.inventory, name)
  const gates = new HealthGates(kube)

  async function restartAndWait(distribution: PackageDistribution, name: string, role: 'server' | 'agent', version: string, input: KubeadmUpgradeInput) {
    const transport = await deps.connect(inventoryNode(name))
    await restartKubelet(transport, distribution)
    if (role === 'server') await waitForApiReady(kube, input.timeouts.apiReadyMs, {service: distribution.kubeletService})
    await waitNodeReadyAt(kube, name, version, {timeoutMs: input.timeouts.nodeReadyMs, hint: `check the kubelet on ${name} (journalctl -u ${distribution.kubeletService}), or raise upgrade.timeouts.nodeReady`})
  }

  /** The kubeadm part of a node: `upgrade apply` on the first control plane, `upgrade node` elsewhere. */
  async function upgradeWithKubeadm(ctx: Ctx, distribution: PackageDistribution, node: KubeadmPlannedNode, onNode: {kubelet?: string}, controlPlaneAt: boolean) {
    const transport = await deps.connect(inventoryNode(node.name))
    const target = ctx.input.target
    if (node.role === 'agent') {
      // Rewrites the kubelet's config for the target; done once its kubelet package is there.
      if (onNode.kubelet === node.packagesTarget.kubelet) return
      ctx.log('info', `${distribution.upgrader} upgrade node`)
      await kubeadmUpgradeNode(transport, distribution, false, node.configDir, {signal: ctx.signal})
      return
    }
    const clusterAt = node.applies ? (await clusterKubernetesVersion(kube, distribution)) === target : true
    if (!(controlPlaneAt && clusterAt)) {
      if (node.applies) {
        ctx.log('info', `${distribution.upgrader} upgrade plan ${target}`)
        await kubeadmUpgradePlan(transport, distribution, target, node.configDir, {signal: ctx.signal})
        ctx.log('info', `${distribution.upgrader} upgrade apply ${target}`)
        await kubeadmUpgradeApply(transport, distribution, target, node.configDir)
      } else {
        ctx.log('info', `${distribution.upgrader} upgrade node`)
        await kubeadmUpgradeNode(transport, distribution, true, node.configDir)
      }
    }
    // From here this node's control plane runs the target: its packages are no longer put back
    // (a kubeadm older than the control plane it manages is refused by kubeadm), and the Velero
    // restore would write old objects into a newer control plane. The run can stop; not go back.
    await ctx.registerCompensation({
      id: `control-plane:${node.name}`,
      handler: 'controlPlaneUpgraded',
      params: {node: node.name, version: target, backupDir: distribution.backupDir(node.configDir)},
      description: `the control plane on ${node.name} runs ${target}; kubeadm does not downgrade it`,
      manual: controlPlaneRecovery(node, target, distribution.backupDir(node.configDir)),
    })
    await ctx.dropCompensation(`restore-packages:${node.name}`)
    await ctx.dropCompensation('restore-backup')
    await ctx.updateData((data) => {
      data.controlPlanesUpgraded = [...new Set([...(data.controlPlanesUpgraded ?? []), node.name])]
    })
    ctx.log('info', `control plane at ${target}`)
  }

  /** One node, start to finish. Idempotent: a resumed run picks up where the node is. */
  async function upgradeNode(ctx: Ctx, node: KubeadmPlannedNode): Promise<void | {skipped: string}> {
    const {input} = ctx
    const target = input.target
    const distribution = packageDistributionOf(input.distribution)
    const inventory = inventoryNode(node.name)
    const transport = await deps.connect(inventory)
    const live = await kube.core.readNode({name: node.name})
    const packages = Object.keys(node.packagesTarget)
    const onNode = await installedVersions(transport, node.packageManager, packages, {signal: ctx.signal})
    const packagesAtTarget = packages.every((p) => onNode[p] === node.packagesTarget[p])
    const controlPlaneAt = node.role === 'agent' || (await controlPlaneVersions(kube, distribution)).get(node.name) === target
    if (packagesAtTarget && controlPlaneAt && live.status?.nodeInfo?.kubeletVersion === target && isNodeReady(live) && (node.preCordoned || !live.spec?.unschedulable)) {
      return skip(`already Ready at ${target}`)
    }
    if (ctx.signal.aborted) throw new AbortedError(`cancelled before ${node.name} was touched`)
    const gateKeys = await gates.beforeCordon(ctx)
    await nodeHooks(ctx, 'preNode', node)

    const kubeletConfig = kubeletConfigPaths(distribution, inventory.dataDir, node.configDir, ctx.runId)
    if (!(node.role === 'server' && controlPlaneAt && ctx.data.controlPlanesUpgraded?.includes(node.name))) {
      await ctx.registerCompensation(restorePackagesSpec(node, kubeletConfig))
    }
    await saveKubeletConfig(transport, kubeletConfig, {signal: ctx.signal})
    if ((await readRepositoryFile(transport, node.repositoryFile, {signal: ctx.signal})) !== node.repositoryAfter) {
      ctx.log('info', `switching ${node.repositoryFile} to the v${minorOf(node.packagesTarget.kubeadm)} repository`)
      await writeRepositoryFile(transport, node.repositoryFile, node.repositoryAfter, {signal: ctx.signal})
    }
    if (onNode[distribution.upgrader] !== node.packagesTarget[distribution.upgrader]) {
      ctx.log('info', `installing ${distribution.upgrader} ${node.packagesTarget[distribution.upgrader]}`)
      await installPackages(transport, node.packageManager, {[distribution.upgrader]: node.packagesTarget[distribution.upgrader]}, {held: node.held, signal: ctx.signal})
    }
    await upgradeWithKubeadm(ctx, distribution, node, onNode, controlPlaneAt)

    const weCordon = !node.preCordoned
    if (weCordon) {
      await ctx.registerCompensation({id: `uncordon:${node.name}`, handler: 'uncordon', params: {node: node.name}, description: `uncordon ${node.name}`, always: true, manual: [`kubectl uncordon ${node.name}`]})
      await cordonNode(kube, node.name, ctx.runId)
      ctx.log('info', 'cordoned')
    }
    const nodePackages = Object.fromEntries(distribution.nodePackages.map((p) => [p, node.packagesTarget[p]]))
    if (distribution.nodePackages.some((p) => onNode[p] !== node.packagesTarget[p])) {
      // A Ctrl-C during the drain leaves the node uncordoned and its kubelet untouched; --resume goes on.
      try {
        ctx.log('info', 'draining')
        await drainNode({kube, node: node.name, settings: input.drain, timings: timings.drain, signal: ctx.signal, onProgress: (message) => ctx.log('info', message)})
        if (ctx.signal.aborted) throw new AbortedError(`cancelled after draining ${node.name}`)
      } catch (error) {
        if (ctx.signal.aborted && weCordon) {
          await uncordonNode(kube, node.name, ctx.runId)
          await ctx.dropCompensation(`uncordon:${node.name}`)
          throw new AbortedError(`cancelled before ${node.name}'s kubelet was upgraded; it was uncordoned again`)
        }
        throw error
      }
      ctx.log('info', `installing ${distribution.nodePackages.join(' and ')} ${node.packagesTarget.kubelet}`)
      await installPackages(transport, node.packageManager, nodePackages, {held: node.held})
    }
    // From the kubelet package on, the action finishes even under Ctrl-C: a node left between versions is worse.
    const running = (await kube.core.readNode({name: node.name})).status?.nodeInfo?.kubeletVersion
    if (running !== target || !isNodeReady(live)) {
      ctx.log('info', `restarting ${distribution.kubeletService}`)
      await restartAndWait(distribution, node.name, node.role, target, input)
    }
    if (node.role === 'server') {
      await waitControlPlaneAt(kube, distribution, node.name, target, input.timeouts.nodeReadyMs)
      const others = input.plan.servers.map((s) => s.name).filter((name) => name !== node.name)
      await waitNodesReady(kube, others, {timeoutMs: input.timeouts.nodeReadyMs, what: 'control planes'})
    }
    ctx.log('info', `Ready at ${target}`)
    if (weCordon) {
      await uncordonNode(kube, node.name, ctx.runId)
      await ctx.dropCompensation(`uncordon:${node.name}`)
      ctx.log('info', 'uncordoned')
    }
    await gates.afterUncordon(ctx, gateKeys)
    await nodeHooks(ctx, 'postNode', node)
    // A worker that made it stays at the target: a later worker's failure does not take it back,
    // since the control planes it talks to are not going back either.
    if (node.role === 'agent') await ctx.dropCompensation(`restore-packages:${node.name}`)
  }

  async function upgradeWorkers(ctx: StepContext<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>, names: string[]): Promise<void> {
    const byName = new Map(ctx.input.plan.agents.map((worker) => [worker.name, worker]))
    await ctx.actions(names, {concurrency: ctx.input.concurrency}, (action) => upgradeNode(action, byName.get(action.node) as KubeadmPlannedNode))
  }

  return {
    name: KUBEADM_UPGRADE_SAGA,
    steps: [
      preRunHooksStep<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>(),
      healthBaselineStep<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>(kube, now),
      backupStep<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>({
        kube,
        now,
        nothingReason: 'no backup configured (Velero disabled, etcd external)',
        async etcdSnapshot(ctx, node) {
          const transport = await deps.connect(inventoryNode(node))
          const distribution = packageDistributionOf(ctx.input.distribution)
          const configDir = ctx.input.plan.servers.find((s) => s.name === node)?.configDir ?? inventoryNode(node).configDir
          // Named after the run: a run killed after the save and before its journal said so finds it again.
          const name = `homelab-etcd-snapshot-${ctx.input.target.replace(/[^a-z0-9.]+/gi, '-')}-${ctx.runId}`
          const taken = `${distribution.backupDir(configDir)}/${name}.db`
          if ((await transport.exec(['test', '-s', taken], {privileged: true, signal: ctx.signal})).exitCode === 0) {
            ctx.log('info', `etcd snapshot ${taken} was taken before the run was interrupted`)
            return taken
          }
          const {file, via} = await saveKubeadmEtcdSnapshot(transport, distribution, {configDir, name, signal: ctx.signal})
          if (via === 'pod') ctx.log('info', 'etcdctl is not installed on the host: the snapshot was taken with the etcd image\'s etcdctl (crictl exec)')
          return file
        },
      }),
      {
        name: 'control-planes',
        title: 'Upgrade control planes, one at a time',
        async run(ctx) {
          if (ctx.input.plan.servers.length === 0) return skip('no control plane to upgrade')
          for (const server of ctx.input.plan.servers) {
            await ctx.action(server.name, (action) => upgradeNode(action, server))
          }
          // Every control plane runs the target: nothing of theirs is left to undo or to warn about.
          for (const server of ctx.input.plan.servers) await ctx.dropCompensation(`control-plane:${server.name}`)
        },
      },
      canaryStep<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>((ctx, names) => upgradeWorkers(ctx, names)),
      soakStep<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>(kube),
      {
        name: 'workers',
        title: 'Drain and upgrade workers',
        async run(ctx) {
          const workers = afterCanary(ctx.input.plan, ctx.input.plan.agents)
          if (workers.length === 0) return skip('no worker to upgrade')
          await upgradeWorkers(ctx, workers.map((w) => w.name))
        },
      },
      verifyStep<KubeadmUpgradeInput, KubeadmUpgradeData, KubeadmUpgradeCompensations>(kube),
    ],
    compensations: {
      async uncordon(params, ctx) {
        ctx.log('info', await uncordonNode(kube, params.node, ctx.runId))
      },
      async restorePackages(params, ctx) {
        const distribution = packageDistributionOf(ctx.input.distribution)
        const transport = await deps.connect(inventoryNode(params.node))
        if ((await readRepositoryFile(transport, params.repositoryFile)) !== params.repositoryBefore) {
          await writeRepositoryFile(transport, params.repositoryFile, params.repositoryBefore)
        }
        await installPackages(transport, params.packageManager, params.packagesBefore, {held: params.held})
        await restoreKubeletConfig(transport, params.kubeletConfig)
        const live = await kube.core.readNode({name: params.node}).catch(() => undefined)
        if (!live || !isNodeReady(live) || live.status?.nodeInfo?.kubeletVersion !== params.fromVersion) {
          await restartAndWait(distribution, params.node, params.role, params.fromVersion, ctx.input)
        }
        ctx.log('info', `back at ${params.fromVersion}`)
      },
      async restoreBackup(params, ctx) {
        await restoreBackup(kube, ctx.input.velero, params.backupName, `${params.backupName}-restore`.slice(0, 63), ctx.signal)
      },
      async controlPlaneUpgraded(params) {
        throw new HomelabError('kubeadm has no downgrade', {
          hint: `${params.node} is uncordoned and serving at ${params.version}; fix the cause and run homelab k8s upgrade --to ${params.version} again (the nodes already there are skipped), or go back by hand from ${params.backupDir} (see the steps below)`,
        })
      },
    },
  }
}

/** kubeadm's documented way back for one control plane: its backup dirs under /etc/kubernetes/tmp. */
function controlPlaneRecovery(node: KubeadmPlannedNode, version: string, backupDir: string): string[] {
  const ssh = `ssh ${sshDestination(node)}`
  return [
    `# going forward is the supported way: fix the cause, then homelab k8s upgrade --to ${version} again (${node.name} is skipped, the other nodes follow)`,
    `# to go back by hand on ${node.name}, from kubeadm's backups (kubeadm-backup-manifests-<date>, kubeadm-backup-etcd-<date>):`,
    `${ssh} sudo ls ${backupDir}`,
    `${ssh} sudo cp <the kubeadm-backup-manifests dir>/*.yaml ${node.configDir}/manifests/`,
    `# if etcd was upgraded too: stop the etcd static pod, put <the kubeadm-backup-etcd dir>/etcd back as the etcd data dir, start it again`,
  ]
}
