/**
 * The upgrade of a single-binary distribution (k3s, rke2) over SSH, as a compensating saga: back
 * up, upgrade the servers one at a time (etcd-only ones first), then the agents a few at a time,
 * each by swapping in the verified binary and restarting its service. Every change registers its
 * undo first; a failure undoes them in reverse (agents, then servers, then a Velero restore).
 * Pre-flight runs before this saga (src/upgrade/preflight.ts) and its plan is the saga's input.
 * What differs between distributions comes from the descriptor named in the input.
 */
import {AbortedError, ConnectionError} from '../src/errors.js'
import {journalNode, type InventoryNode} from '../src/inventory.js'
import {binaryDistributionOf, type DistributionDescriptor} from '../src/distributions/index.js'
import {binaryPath} from '../src/node/installed-version.js'
import {discardStagedBinary, findEtcdSnapshot, restartService, restorePreviousBinary, saveEtcdSnapshot, serviceName, stageBinary, stagedBinaryPath, stageState, swapBinary, type ServiceManager} from '../src/node/node-ops.js'
import {artifactName, artifactUrl} from '../src/release/release-source.js'
import {cordonNode, uncordonNode} from '../src/kube/cordon.js'
import {drainNode, type DrainSettings, type DrainTimings} from '../src/kube/drain.js'
import {waitForApiReady} from '../src/kube/health.js'
import {isNodeReady} from '../src/kube/nodes.js'
import {waitNodeReadyAt, waitNodesReady} from '../src/kube/node-waits.js'
import {skip} from '../src/saga/engine.js'
import type {ActionContext, SagaDefinition, StepContext} from '../src/saga/types.js'
import type {BinaryUpgradeDeps, PlannedNode, UpgradePlan} from '../src/upgrade/types.js'
import {restoreBackup, type VeleroSettings} from '../src/velero.js'
import {backupStep} from './backup-step.js'
import {BinaryStaging, copyRetrying, type NodeStage} from './binary-staging.js'
import {archivesOf, ImageArchives} from './image-archives.js'
import {sshDestination} from './ssh-destination.js'
import {HealthGates, healthBaselineStep, type HealthGateInput} from './health-gate.js'
import {verifyStep, type VerifyData} from './verify-step.js'
import {afterCanary, canaryStep, soakStep} from './canary-steps.js'
import {nodeHooks, preRunHooksStep, type HooksData, type HooksInput} from './hook-steps.js'
import {parseVersion, type Distribution} from '../src/versions/release-version.js'

export const BINARY_UPGRADE_SAGA = 'binary-upgrade'

export interface UpgradeInput extends HealthGateInput, HooksInput {
  /** Which descriptor's names, paths and commands this run uses; kept in the journal for resume and rollback. */
  distribution: Distribution
  target: string
  /** Where the whole command is going; `target` is one hop on the way. */
  finalTarget: string
  /** The versions still to pass through after `target`. */
  laterHops: string[]
  plan: UpgradePlan<PlannedNode>
  concurrency: number
  skipBackup: boolean
  velero: VeleroSettings
  drain: DrainSettings
  timeouts: {apiReadyMs: number; nodeReadyMs: number}
  /** uploadConcurrency: absent in journals of runs that pushed no images archives. */
  install: {source: 'cli' | 'node'; releaseUrl: string; uploadConcurrency?: number}
}

export interface UpgradeData extends VerifyData, HooksData {
  veleroBackup?: string
  etcdSnapshot?: {node: string; name: string}
}

export interface UpgradeCompensations {
  uncordon: {node: string}
  restoreBinary: {node: string; role: 'server' | 'agent'; binDir: string; previousSha256: string; previousVersion: string; serviceManager: ServiceManager}
  /** The node's images archives as they were: the kept old ones back, new ones it did not have removed. */
  restoreImages: {node: string; dir: string; arch: PlannedNode['arch']; previousVersion: string; archives: Array<{file: string; hadPrevious: boolean; sha256: string}>}
  restoreBackup: {backupName: string}
  /** The staged binaries this process left on nodes (its params say nothing: the set lives in the run). */
  discardStaged: Record<string, never>
}

export interface SagaTimings {
  drain?: Partial<DrainTimings>
}

type Ctx = ActionContext<UpgradeInput, UpgradeData, UpgradeCompensations>
type StepCtx = StepContext<UpgradeInput, UpgradeData, UpgradeCompensations>

/** The command a person runs to restart a service under the node's service manager. */
export function restartCommand(manager: ServiceManager, service: string): string {
  return manager === 'systemd' ? `systemctl restart ${service}` : `rc-service ${service} restart`
}


/** The undo of a binary swap, with the commands a person runs if it cannot run itself. */
function restoreBinarySpec(distribution: DistributionDescriptor, node: PlannedNode) {
  const binary = binaryPath(distribution, node.binDir)
  const service = serviceName(distribution, node.role)
  return {
    id: `restore-binary:${node.name}`,
    handler: 'restoreBinary' as const,
    params: {node: node.name, role: node.role, binDir: node.binDir, previousSha256: node.previousSha256, previousVersion: node.fromVersion, serviceManager: node.serviceManager},
    description: `put ${distribution.name} ${node.fromVersion} back on ${node.name}`,
    manual: [`ssh ${sshDestination(node)} sudo cp -p ${binary}.prev ${binary}`, `ssh ${sshDestination(node)} sudo ${restartCommand(node.serviceManager, service)}`],
  }
}

export function binaryUpgradeSaga(deps: BinaryUpgradeDeps, timings: SagaTimings = {}): SagaDefinition<UpgradeInput, UpgradeData, UpgradeCompensations> {
  const {kube} = deps
  const now = deps.now ?? (() => new Date())

  const inventoryNode = (name: string): InventoryNode => journalNode(deps.inventory, name)
  const gates = new HealthGates(kube)
  const archives = new ImageArchives(deps, inventoryNode)

  const readNode = (name: string) => kube.core.readNode({name})

  const waitNodeAt = (distribution: DistributionDescriptor, name: string, version: string, timeoutMs: number, signal?: AbortSignal) =>
    waitNodeReadyAt(kube, name, version, {timeoutMs, signal, hint: `check ${distribution.name} on ${name} (journalctl -u ${distribution.services.server} or ${distribution.services.agent}), or raise upgrade.timeouts.nodeReady`})

  async function restartAndWait(target: {name: string; role: 'server' | 'agent'; serviceManager: ServiceManager}, version: string, input: UpgradeInput, log: (message: string) => void, signal?: AbortSignal) {
    const distribution = binaryDistributionOf(input.distribution)
    const service = serviceName(distribution, target.role)
    const restart = async () => restartService(await deps.connect(inventoryNode(target.name)), target.serviceManager, service, signal)
    const comeBack = async () => {
      if (target.role === 'server') await waitForApiReady(kube, input.timeouts.apiReadyMs, {service: distribution.services.server, signal})
      await waitNodeAt(distribution, target.name, version, input.timeouts.nodeReadyMs, signal)
    }
    try {
      await restart()
    } catch (error) {
      if (!(error instanceof ConnectionError) || signal?.aborted) throw error
      // The answer was lost, not necessarily the restart: the API says whether the node came back.
      log(`connection lost during the restart of ${service}; waiting for the node to come back at ${version}`)
      const back = await comeBack().then(() => true, () => false)
      if (back) return
      log(`not back at ${version}: restarting ${service} again on a new connection`)
      await restart()
    }
    await comeBack()
  }

  /** Puts the verified new binary (and images archives) beside the live ones, unless they are that already. */
  async function stageNode(ctx: StepCtx, node: PlannedNode, signal: AbortSignal): Promise<NodeStage> {
    const binary = await stageNodeBinary(ctx, node, signal)
    const stagedArchives = await archives.stage(ctx, node, signal, () => stagingOf(ctx.runId)?.stagedArchives.add(node.name))
    return stagedArchives.length > 0 ? {...binary, stagedArchives} : binary
  }

  async function stageNodeBinary(ctx: StepCtx, node: PlannedNode, signal: AbortSignal): Promise<NodeStage> {
    const {input} = ctx
    const distribution = binaryDistributionOf(input.distribution)
    const live = binaryPath(distribution, node.binDir)
    const staged = stagedBinaryPath(distribution.binary, node.binDir)
    const state = await stageState(await deps.connect(inventoryNode(node.name)), live, staged, signal)
    if (state.liveSha === node.newSha256) return {liveSha: state.liveSha}
    if (state.stagedSha === node.newSha256) return {liveSha: state.liveSha, stagedPath: staged}
    const version = parseVersion(input.target)
    const source = input.install.source === 'cli'
      ? {localPath: (await deps.release.binary(version, node.arch, signal)).path}
      : {url: artifactUrl(input.install.releaseUrl, version, artifactName(distribution, node.arch))}
    ctx.log('info', `copying ${distribution.name} ${input.target} (${node.arch}) to the node`, node.name)
    const log = (message: string) => ctx.log('warn', message, node.name)
    const {stagedPath} = await copyRetrying(log, signal, async () => stageBinary(await deps.connect(inventoryNode(node.name)), {binary: distribution.binary, binDir: node.binDir, sha256: node.newSha256, source, signal}))
    ctx.log('info', 'new binary staged and verified', node.name)
    return {liveSha: state.liveSha, stagedPath}
  }

  // One staging per run (a multi-hop command runs one saga per hop, each with its own target).
  const stagings = new Map<string, BinaryStaging>()
  const stagingOf = (runId: string) => stagings.get(runId)

  /**
   * Starts staging every node of the plan still to do, in plan order (servers, canaries, the
   * other agents), the first time a node step runs in this process; its undo, registered first,
   * removes what was staged if the run fails before the swaps.
   */
  async function startStaging(ctx: StepCtx): Promise<BinaryStaging> {
    let staging = stagings.get(ctx.runId)
    if (!staging) {
      await ctx.registerCompensation({id: 'discard-staged', handler: 'discardStaged', params: {}, description: 'remove the staged binaries no node swapped in', always: true})
      // As many pushes at once as node actions: staging keeps ahead of the waves without
      // pushing more in parallel than the run did before it was staged.
      staging = new BinaryStaging((node, signal) => stageNode(ctx, node, signal), ctx.input.concurrency, ctx.signal)
      stagings.set(ctx.runId, staging)
      const {plan} = ctx.input
      const canary = new Set(plan.canary?.nodes ?? [])
      staging.start([...plan.servers, ...plan.agents.filter((a) => canary.has(a.name)), ...afterCanary(plan, plan.agents)])
    }
    return staging
  }

  /** One node, start to finish. Idempotent: a resumed run picks up where the node is. */
  async function upgradeNode(ctx: Ctx, node: PlannedNode, withDrain: boolean): Promise<void | {skipped: string}> {
    const {input} = ctx
    const target = input.target
    const distribution = binaryDistributionOf(input.distribution)
    const transport = await deps.connect(inventoryNode(node.name))
    const [live, stage] = await Promise.all([readNode(node.name), (stagingOf(ctx.runId) as BinaryStaging).get(node)])
    const liveSha = stage.liveSha
    const running = live.status?.nodeInfo?.kubeletVersion
    if (running === target && liveSha === node.newSha256 && isNodeReady(live) && !live.spec?.unschedulable) {
      return skip(`already Ready at ${target}`)
    }
    if (ctx.signal.aborted) throw new AbortedError(`cancelled before ${node.name} was touched`)
    const gateKeys = await gates.beforeCordon(ctx)
    await nodeHooks(ctx, 'preNode', node)

    const weCordon = !node.preCordoned
    if (weCordon) {
      await ctx.registerCompensation({id: `uncordon:${node.name}`, handler: 'uncordon', params: {node: node.name}, description: `uncordon ${node.name}`, always: true, manual: [`kubectl uncordon ${node.name}`]})
      await cordonNode(kube, node.name, ctx.runId)
      ctx.log('info', 'cordoned')
    }
    const undoCordon = async (why: string) => {
      if (weCordon) {
        await uncordonNode(kube, node.name, ctx.runId)
        await ctx.dropCompensation(`uncordon:${node.name}`)
      }
      throw new AbortedError(why)
    }

    // Until the swap, Ctrl-C undoes this node's action: whatever was cut short (a drain, a copy),
    // the node is uncordoned again, so no node is left cordoned and half-drained.
    const beforeSwap = async <T>(work: () => Promise<T>): Promise<T> => {
      try {
        return await work()
      } catch (error) {
        if (ctx.signal.aborted) await undoCordon(`cancelled before ${node.name}'s binary was swapped; it was uncordoned again`)
        throw error
      }
    }

    if (withDrain) {
      ctx.log('info', 'draining')
      await beforeSwap(() => drainNode({kube, node: node.name, settings: input.drain, timings: timings.drain, signal: ctx.signal, onProgress: (message) => ctx.log('info', message)}))
    }
    if (ctx.signal.aborted) await undoCordon(`cancelled after draining ${node.name}; it was uncordoned again`)

    if (archivesOf(node)) {
      // Registered after the binary's undo, so it runs first: the old binary starts with its old images.
      await ctx.registerCompensation(restoreBinarySpec(distribution, node))
      await archives.place(ctx, node, transport, stage.stagedArchives)
      stagingOf(ctx.runId)?.stagedArchives.delete(node.name)
    }
    if (stage.stagedPath) {
      await ctx.registerCompensation(restoreBinarySpec(distribution, node))
      await swapBinary(transport, binaryPath(distribution, node.binDir), stage.stagedPath)
      stagingOf(ctx.runId)?.staged.delete(node.name)
      ctx.log('info', `binary swapped (previous kept as ${distribution.binary}.prev)`)
    } else {
      // Swapped by an earlier attempt: its undo must still be on record.
      await ctx.registerCompensation(restoreBinarySpec(distribution, node))
    }

    // From the swap on, the action finishes even under Ctrl-C: a node left between versions is worse.
    if (running !== target || !isNodeReady(live)) {
      ctx.log('info', `restarting ${serviceName(distribution, node.role)}`)
      await restartAndWait(node, target, input, (message) => ctx.log('warn', message))
    }
    ctx.log('info', `Ready at ${target}`)
    if (node.role === 'server') {
      const others = input.plan.servers.map((s) => s.name).filter((name) => name !== node.name)
      await waitNodesReady(kube, others, {timeoutMs: input.timeouts.nodeReadyMs, what: 'servers'})
    }
    if (weCordon) {
      await uncordonNode(kube, node.name, ctx.runId)
      await ctx.dropCompensation(`uncordon:${node.name}`)
      ctx.log('info', 'uncordoned')
    }
    await gates.afterUncordon(ctx, gateKeys)
    await nodeHooks(ctx, 'postNode', node)
  }

  async function upgradeAgents(ctx: StepContext<UpgradeInput, UpgradeData, UpgradeCompensations>, names: string[]): Promise<void> {
    const byName = new Map(ctx.input.plan.agents.map((agent) => [agent.name, agent]))
    await startStaging(ctx)
    await ctx.actions(names, {concurrency: ctx.input.concurrency}, (action) => upgradeNode(action, byName.get(action.node) as PlannedNode, true))
  }

  /** Every node action is over: nothing staged is left to remove. */
  async function stagingDone(ctx: StepCtx): Promise<void> {
    await ctx.dropCompensation('discard-staged')
    stagings.delete(ctx.runId)
    archives.forget(ctx.runId)
  }

  return {
    name: BINARY_UPGRADE_SAGA,
    steps: [
      preRunHooksStep<UpgradeInput, UpgradeData, UpgradeCompensations>(),
      healthBaselineStep<UpgradeInput, UpgradeData, UpgradeCompensations>(kube, now),
      backupStep<UpgradeInput, UpgradeData, UpgradeCompensations>({
        kube,
        now,
        nothingReason: 'no backup configured (Velero disabled, no embedded etcd)',
        async etcdSnapshot(ctx, node) {
          const server = inventoryNode(node)
          const transport = await deps.connect(server)
          const distribution = binaryDistributionOf(ctx.input.distribution)
          // The run's own name: a resumed run finds the snapshot it took before it was killed.
          const base = `pre-upgrade-${ctx.input.target.toLowerCase().replace(/[^a-z0-9]+/g, '-')}-${ctx.runId.split('-').at(-1)}`
          const taken = await findEtcdSnapshot(transport, distribution, {dataDir: server.dataDir, base, signal: ctx.signal})
          if (taken) {
            ctx.log('info', `etcd snapshot ${taken} was taken before the run was interrupted`)
            return taken
          }
          return saveEtcdSnapshot(transport, distribution, {binDir: server.binDir, dataDir: server.dataDir, name: base, signal: ctx.signal})
        },
      }),
      {
        name: 'servers',
        title: 'Upgrade servers, one at a time',
        async run(ctx) {
          if (ctx.input.plan.servers.length === 0) return skip('no server to upgrade')
          await startStaging(ctx)
          for (const server of ctx.input.plan.servers) {
            await ctx.action(server.name, (action) => upgradeNode(action, server, false))
          }
          // With a canary the servers have passed once every one is Ready at the target: the
          // canary judges the agents, so its failure (or the soak's) undoes agents only and
          // neither puts the servers back nor restores the backup over the cluster.
          if (ctx.input.plan.canary) {
            for (const server of ctx.input.plan.servers) {
              await ctx.dropCompensation(`restore-binary:${server.name}`)
              await ctx.dropCompensation(`restore-images:${server.name}`)
            }
            await ctx.dropCompensation('restore-backup')
          }
        },
      },
      canaryStep<UpgradeInput, UpgradeData, UpgradeCompensations>((ctx, names) => upgradeAgents(ctx, names)),
      soakStep<UpgradeInput, UpgradeData, UpgradeCompensations>(kube),
      {
        name: 'agents',
        title: 'Drain and upgrade agents',
        async run(ctx) {
          const agents = afterCanary(ctx.input.plan, ctx.input.plan.agents)
          if (agents.length === 0) {
            await stagingDone(ctx)
            return skip('no agent to upgrade')
          }
          await upgradeAgents(ctx, agents.map((agent) => agent.name))
          await stagingDone(ctx)
        },
      },
      verifyStep<UpgradeInput, UpgradeData, UpgradeCompensations>(kube),
      archives.retireStep(),
    ],
    compensations: {
      async uncordon(params, ctx) {
        // After a server restart the API may still be coming back: give it the same time as a restart does.
        await waitForApiReady(kube, ctx.input.timeouts.apiReadyMs, {service: binaryDistributionOf(ctx.input.distribution).services.server})
        const result = await uncordonNode(kube, params.node, ctx.runId)
        ctx.log('info', result)
      },
      async restoreBinary(params, ctx) {
        const transport = await deps.connect(inventoryNode(params.node))
        const result = await restorePreviousBinary(transport, binaryPath(binaryDistributionOf(ctx.input.distribution), params.binDir), params.previousSha256)
        const live = await readNode(params.node).catch(() => undefined)
        if (result === 'restored' || live?.status?.nodeInfo?.kubeletVersion !== params.previousVersion || !live || !isNodeReady(live)) {
          await restartAndWait({name: params.node, role: params.role, serviceManager: params.serviceManager}, params.previousVersion, ctx.input, (message) => ctx.log('warn', message))
        }
        ctx.log('info', `back at ${params.previousVersion}`)
      },
      restoreImages: (params, ctx) => archives.restore(params, ctx),
      async discardStaged(_params, ctx) {
        // A leftover staged file changes nothing a node runs, so a node that cannot be reached is
        // a warning with the command, not a compensation that failed.
        const staged = [...(stagingOf(ctx.runId)?.staged ?? [])]
        const distribution = binaryDistributionOf(ctx.input.distribution)
        const byName = new Map([...ctx.input.plan.servers, ...ctx.input.plan.agents].map((n) => [n.name, n]))
        await archives.discard(ctx, [...(stagingOf(ctx.runId)?.stagedArchives ?? [])].map((name) => byName.get(name) as PlannedNode))
        await Promise.all(staged.map(async (name) => {
          const node = byName.get(name) as PlannedNode
          const file = stagedBinaryPath(distribution.binary, node.binDir)
          try {
            await discardStagedBinary(await deps.connect(inventoryNode(name)), file)
          } catch (error) {
            ctx.log('warn', `${name}: could not remove the staged ${file} (${(error as Error).message}); remove it with: ssh ${sshDestination(node)} sudo rm -f ${file}`)
          }
        }))
        stagings.delete(ctx.runId)
      },
      async restoreBackup(params, ctx) {
        await restoreBackup(kube, ctx.input.velero, params.backupName, `${params.backupName}-restore`.slice(0, 63), ctx.signal)
      },
    },
  }
}
