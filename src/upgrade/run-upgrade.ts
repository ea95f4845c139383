import {hostname} from 'node:os'

import type {SagaTimings} from '../../sagas/binary-upgrade.js'
import {ConnectionError, ExitCode, HomelabError, LockHeldError, PreflightError, isHomelabError} from '../errors.js'
import type {Inventory} from '../inventory.js'
import {ClusterLock} from '../kube/lock.js'
import {gateRemovedApis} from '../safety/removed-api-gate.js'
import type {RemovedApiFinding} from '../safety/removed-api-scan.js'
import type {Verification} from '../safety/verification.js'
import {gatherStatus, type NodeStatus} from '../status.js'
import {exitCodeFor, rollbackRun, runSaga} from '../saga/engine.js'
import {JournalStore, newRunId, writerIsAlive, type Journal} from '../saga/journal.js'
import type {RunJournal, SagaEvent, SagaOutcome, SagaResult} from '../saga/types.js'
import {compareVersions, sortVersions, parseVersion} from '../versions/release-version.js'
import {HOOK_PHASES, describeHook, hasHooks, normalizeHooks, runHooks, type Hooks} from '../hooks/hooks.js'
import {chooseCanary, type CanaryRequest} from './canary.js'
import {SSH_FANOUT} from './preflight.js'
import {drainSettings, veleroSettings} from './settings.js'
import {planUpgradeHops, resolveTarget} from './target.js'
import type {UpgradeDeps, UpgradePlan} from './types.js'
import {UPGRADE_SAGAS, sagaOfJournal, upgraderFor, type UpgradeSaga} from './upgraders.js'

/** What every upgrade saga's input and data carry, whatever else they hold. */
interface CommonInput {
  distribution: string
  target: string
  finalTarget: string
  laterHops: string[]
  plan: UpgradePlan
}
interface CommonData {
  veleroBackup?: string
  etcdSnapshot?: {node: string; name: string}
  verification?: Verification
}

export interface UpgradeRequest {
  /** Version or channel. Not needed with `resume`. */
  to?: string
  dryRun: boolean
  noHops: boolean
  only?: string[]
  concurrency?: number
  onFailure: 'compensate' | 'stop'
  skipBackup: boolean
  /** A run id, or true for the newest resumable run. */
  resume?: string | true
  /** Upgrade although the target minors no longer serve APIs the cluster uses (warned instead). */
  allowRemovedApis?: boolean
  /** --canary, --canary-nodes, --soak. */
  canary?: CanaryRequest
}

/** What the runner says besides the saga's own events. */
export type UpgradeEvent =
  | SagaEvent
  | {type: 'progress'; message: string}
  | {type: 'distribution'; name: string; source: string}
  | {type: 'target-resolved'; target: string; channel?: string; hops: string[]}
  | {type: 'plan'; hop: number; plan: UpgradePlan}
  | {type: 'hop-started'; hop: number; target: string}
  | {type: 'node-checked'; node: string; version?: string; traits?: string[]; problem?: string} // pre-flight heard from a node (the terminal's node line)

export interface RunnerDeps extends Omit<UpgradeDeps, 'inventory'> {
  /** How the distribution was chosen, said once at the start (configured, or detected from kubelet versions). */
  distributionSource?: string
  /** Reads the inventory again (node versions change between hops). */
  loadInventory: () => Promise<Inventory>
  journals: JournalStore
  signal: AbortSignal
  onEvent: (event: UpgradeEvent) => void
  timings?: SagaTimings & {leaseDurationSeconds?: number}
  /**
   * Asked once, after the first pre-flight and before the first change, with the plan: a person
   * at a terminal says yes or no. Absent: no question (--yes, CI, resume).
   */
  confirm?: (plan: UpgradePlan, hops: readonly string[]) => Promise<boolean>
  host?: string
}

export type UpgradeOutcome = SagaOutcome | 'dry-run' | 'locked' | 'declined'

export interface NodeChange {
  name: string
  role: 'server' | 'agent'
  before?: string
  /** The kubelet version the API reports at the end. */
  after?: string
  /** The end state, read from the API and the node when the run is over (not assumed from the plan). */
  end?: {
    ready?: boolean
    readyReason?: string
    cordoned: boolean
    /** The homelab run that left it cordoned, when it was one. */
    cordonedBy?: string
    /** The version on the node's disk (binary, or kubeadm package), when SSH answered. */
    onDisk?: string
    sshError?: string
    /** False when anything below needs a person: NotReady, cordoned by a run, disk and API disagree, unreachable. */
    healthy: boolean
    problems: string[]
  }
}

export interface UpgradeResult {
  outcome: UpgradeOutcome
  exitCode: ExitCode
  distribution: string
  target?: string
  hops: string[]
  runIds: string[]
  nodes: NodeChange[]
  backups: Array<{velero?: string; etcdSnapshot?: {node: string; name: string}}>
  plans: UpgradePlan[]
  warnings: string[]
  durationMs: number
  error?: {message: string; hint?: string}
  /** Commands for a person when compensation could not finish. */
  manualSteps: string[]
  /** What the removed-API scan found (a minor upgrade only; refused unless --allow-removed-apis). */
  removedApis?: RemovedApiFinding[]
  /** The last hop's check of the cluster at the end, read from the API: before → after. */
  verification?: Verification
}

function errorInfo(error: unknown): {message: string; hint?: string} {
  return isHomelabError(error) ? {message: error.message, hint: error.hint} : {message: error instanceof Error ? error.message : String(error)}
}

/**
 * `homelab k8s upgrade`: resolves the target, plans the minor hops, and for each hop runs
 * pre-flight, takes the cluster lock and runs the saga with a journal. Stops at the first hop
 * that does not succeed. Returns a result for every outcome; throws only what pre-flight and
 * target resolution refuse (nothing changed then).
 */
export async function runUpgrade(deps: RunnerDeps, request: UpgradeRequest): Promise<UpgradeResult> {
  const started = Date.now()
  const lockLost = new AbortController()
  const result: UpgradeResult = {outcome: 'nothing-to-do', exitCode: ExitCode.ok, distribution: deps.distribution.name, hops: [], runIds: [], nodes: [], backups: [], plans: [], warnings: [], durationMs: 0, manualSteps: []}
  const finish = () => recordAfter(deps, result, started)
  let asked = false
  // Shown with the first plan, so a person reads them before saying yes.
  const scanWarnings: string[] = []

  let pendingHops: string[]
  if (request.resume !== undefined) {
    const journal = await findResumable(deps.journals, request.resume).catch(async (error: unknown) => {
      // A run killed after its journal said it ended still holds the lock: --resume, which its
      // lock error advises, frees it instead of leaving the cluster locked until it expires.
      const ended = typeof request.resume === 'string' ? await deps.journals.load(request.resume).catch(() => undefined) : undefined
      if (ended && ['succeeded', 'compensated', 'compensation-incomplete'].includes(ended.state.status)) await runLock(deps, ended.id, lockLost).releaseLeftover()
      throw error
    })
    const input = journal.state.input as CommonInput
    result.distribution = input.distribution
    result.target = input.finalTarget
    result.hops = [input.target, ...input.laterHops]
    recordBefore(result, input.plan)
    deps.onEvent({type: 'plan', hop: 0, plan: input.plan})
    const saga = await runHop(deps, journal, request, result)
    if (!saga) return finish()
    pendingHops = input.laterHops
  } else {
    const {distribution} = deps
    if (deps.distributionSource) deps.onEvent({type: 'distribution', name: distribution.name, source: deps.distributionSource})
    if (!request.to) throw new HomelabError('--to is required (or --resume)', {exitCode: ExitCode.usage, hint: `pass --to ${distribution.exampleVersion}, --to stable, or --to v1.31`})
    const {config} = deps
    // A channel server that cannot be reached refuses the run like any pre-flight problem: nothing was touched.
    const unreachable = (error: unknown): never => {
      if (error instanceof ConnectionError) throw new PreflightError(`${error.message}; nothing was changed`, {cause: error, hint: error.hint})
      throw error
    }
    const target = await resolveTarget(request.to, {channelUrl: config.install.channelUrl, distribution: config.distribution, signal: deps.signal}).catch(unreachable)
    const inventory = await deps.loadInventory()
    const versions = inventory.nodes.map((n) => n.cluster?.kubeletVersion).filter((v): v is string => Boolean(v))
    if (versions.length === 0) throw new PreflightError('no node reports a kubelet version', {hint: 'check that the kubeconfig points at the cluster in homelab.yaml'})
    const oldest = sortVersions(versions.map((v) => parseVersion(v, config.distribution)))[0]
    const hops = compareVersions(oldest, target.version) >= 0 ? [target.version] : await planUpgradeHops(oldest.format(), target.version, {channelUrl: config.install.channelUrl, distribution: config.distribution, noHops: request.noHops, signal: deps.signal}).catch(unreachable)
    result.target = target.version.format()
    result.hops = hops.map((h) => h.format())
    deps.onEvent({type: 'target-resolved', target: result.target, channel: target.channel, hops: result.hops})
    if (oldest.minor < target.version.minor) deps.onEvent({type: 'progress', message: `checking for APIs removed after ${oldest.minorLine()} up to ${target.version.minorLine()}`})
    const gate = await gateRemovedApis(deps.kube, {current: oldest, target: target.version, allow: request.allowRemovedApis === true, signal: deps.signal})
    if (gate.scanned) result.removedApis = gate.findings
    scanWarnings.push(...gate.warnings)
    pendingHops = result.hops
  }

  // Before the lock or any pre-flight: a run that could not keep its journal must not start.
  if (!request.dryRun && pendingHops.length > 0) await deps.journals.ensureDir()

  while (pendingHops.length > 0) {
    const [hop, ...later] = pendingHops
    pendingHops = later
    const inventory = await deps.loadInventory()
    const hopDeps: UpgradeDeps = {...deps, inventory}
    const hopIndex = result.hops.indexOf(hop)
    deps.onEvent({type: 'hop-started', hop: hopIndex, target: hop})
    const id = newRunId(deps.now?.() ?? new Date())
    // A run in flight shows up in pre-flight as nodes cordoned or NotReady: name the lock (exit 6) instead.
    if (!(await lockIsFree(deps, id))) {
      result.outcome = 'locked'
      return finish()
    }
    const plan = await upgraderFor(deps.distribution).preflight(hopDeps, {
      target: parseVersion(hop, deps.distribution.name),
      only: request.only,
      skipBackup: request.skipBackup,
      signal: deps.signal,
      onProgress: (message) => deps.onEvent({type: 'progress', message}),
    })
    plan.warnings.unshift(...scanWarnings.splice(0))
    const canary = chooseCanary(plan, request.canary ?? {})
    if (canary) plan.canary = canary
    const hooks = normalizeHooks(deps.config.hooks)
    if (hasHooks(hooks)) plan.hooks = Object.fromEntries(HOOK_PHASES.filter((phase) => hooks[phase].length > 0).map((phase) => [phase, hooks[phase].map(describeHook)]))
    result.plans.push(plan)
    result.warnings.push(...plan.warnings)
    if (result.nodes.length === 0) recordBefore(result, plan)
    deps.onEvent({type: 'plan', hop: hopIndex, plan})
    if (request.dryRun) {
      result.outcome = 'dry-run'
      // Later hops cannot be checked before the cluster is at this one.
      return finish()
    }
    if (plan.servers.length + plan.agents.length === 0) {
      if (later.length === 0) result.outcome = 'nothing-to-do'
      continue
    }
    const saga = upgraderFor(deps.distribution).saga
    if (deps.confirm && !asked) {
      asked = true
      if (!(await deps.confirm(plan, result.hops))) {
        result.outcome = 'declined'
        result.exitCode = ExitCode.failure
        return finish()
      }
    }
    const input = {
      distribution: deps.distribution.name,
      target: hop,
      finalTarget: result.target as string,
      laterHops: later,
      plan,
      concurrency: request.concurrency ?? deps.config.upgrade.agentConcurrency,
      skipBackup: request.skipBackup,
      velero: veleroSettings(deps.config),
      drain: drainSettings(deps.config),
      timeouts: {apiReadyMs: deps.config.upgrade.timeouts.apiReady, nodeReadyMs: deps.config.upgrade.timeouts.nodeReady},
      healthGate: {enabled: deps.config.upgrade.healthGate.enabled, timeoutMs: deps.config.upgrade.healthGate.timeout},
      hooks: normalizeHooks(deps.config.hooks),
      install: {source: deps.config.install.source, releaseUrl: deps.config.install.releaseUrl, uploadConcurrency: deps.config.install.uploadConcurrency},
    }
    const journals = new JournalStore({dir: deps.journals.dir, newId: () => id})
    // The lock is taken before the journal exists, so a refused run leaves nothing behind.
    const lock = await takeLock(deps, id)
    if (!lock) {
      result.outcome = 'locked'
      return finish()
    }
    let journal: Journal
    try {
      journal = await journals.create({saga: saga.name, input, data: {}})
    } catch (error) {
      await lock.release()
      throw error
    }
    const ok = await runHop(deps, journal, request, result, lock)
    if (!ok) return finish()
  }
  return finish()

  function lockFor(d: RunnerDeps, id: string): ClusterLock {
    return runLock(d, id, lockLost)
  }

  /** Read-only look at the lock; false (and the result says why) when another run holds it. */
  async function lockIsFree(d: RunnerDeps, id: string): Promise<boolean> {
    try {
      await lockFor(d, id).check()
      return true
    } catch (error) {
      if (!(error instanceof LockHeldError)) throw error
      result.exitCode = ExitCode.locked
      result.error = errorInfo(error)
      return false
    }
  }

  async function takeLock(d: RunnerDeps, id: string): Promise<ClusterLock | undefined> {
    const lock = lockFor(d, id)
    try {
      await lock.acquire()
      return lock
    } catch (error) {
      if (error instanceof LockHeldError) {
        result.exitCode = ExitCode.locked
        result.error = errorInfo(error)
        return undefined
      }
      throw error
    }
  }

  /** Runs (or resumes) one hop's saga; false when the command must stop here. */
  async function runHop(d: RunnerDeps, journal: Journal, req: UpgradeRequest, res: UpgradeResult, heldLock?: ClusterLock): Promise<boolean> {
    const lock = heldLock ?? (await takeLock(d, journal.id))
    if (!lock) {
      res.outcome = 'locked'
      return false
    }
    res.runIds.push(journal.id)
    let saga: SagaResult
    try {
      const inventory = await d.loadInventory()
      const signal = AbortSignal.any([d.signal, lockLost.signal])
      saga = await runSaga(upgraderOf(journal.state).definition({...d, inventory}, d.timings), journal, {signal, onEvent: d.onEvent, onFailure: req.onFailure})
    } finally {
      await lock.release()
    }
    await postRunHooks(d, journal, saga, res)
    const data = saga.journal.data as CommonData
    if (data.veleroBackup || data.etcdSnapshot) res.backups.push({velero: data.veleroBackup, etcdSnapshot: data.etcdSnapshot})
    if (data.verification) res.verification = data.verification
    res.outcome = saga.outcome
    res.exitCode = exitCodeFor(saga)
    if (saga.error) res.error = errorInfo(saga.error)
    if (lockLost.signal.aborted) res.error = errorInfo(lockLost.signal.reason)
    if (saga.outcome === 'compensation-incomplete' || saga.outcome === 'stopped') res.manualSteps = upgraderOf(saga.journal).manualRecoverySteps(saga.journal)
    return saga.outcome === 'succeeded' || saga.outcome === 'nothing-to-do'
  }
}

/**
 * postRun hooks see every outcome; one that fails is a warning (the run is over, its outcome
 * stands). Kept in the journal once done, so a later --resume of the same run does not repeat it.
 */
async function postRunHooks(deps: RunnerDeps, journal: Journal, saga: SagaResult, result: UpgradeResult): Promise<void> {
  const input = journal.state.input as CommonInput & {hooks?: Hooks}
  const commands = input.hooks?.postRun ?? []
  if (commands.length === 0 || ((saga.journal.data.hooksDone as string[] | undefined) ?? []).includes('postRun')) return
  const from = [...input.plan.servers, ...input.plan.agents].map((n) => n.fromVersion).sort()[0]
  try {
    await runHooks(commands, {runId: journal.id, phase: 'postRun', outcome: saga.outcome, from, to: input.target}, {log: (message) => deps.onEvent({type: 'progress', message})})
    await journal.update((j) => {
      j.data.hooksDone = [...((j.data.hooksDone as string[] | undefined) ?? []), 'postRun']
    })
  } catch (error) {
    const message = `postRun hook failed (the outcome stands): ${(error as Error).message}`
    result.warnings.push(message)
    deps.onEvent({type: 'progress', message: `warning: ${message}`})
  }
}

/** The journal's own saga decides how it is resumed or undone. */
function upgraderOf(journal: RunJournal): UpgradeSaga {
  const found = sagaOfJournal(journal.saga)
  if (!found) throw new HomelabError(`run ${journal.id} was written by saga ${journal.saga}, which this homelab does not know`, {exitCode: ExitCode.usage, hint: 'use the homelab version that started it'})
  return found
}

function recordBefore(result: UpgradeResult, plan: UpgradePlan): void {
  for (const node of [...plan.servers, ...plan.agents]) result.nodes.push({name: node.name, role: node.role, before: node.fromVersion})
}

const RESUMABLE: ReadonlyArray<RunJournal['status']> = ['running', 'interrupted', 'failed']

async function findResumable(journals: JournalStore, resume: string | true): Promise<Journal> {
  const journal = resume === true ? await journals.loadLatest({saga: UPGRADE_SAGAS, status: RESUMABLE}) : await journals.load(resume)
  if (!journal) {
    throw new HomelabError('there is no interrupted upgrade to resume', {exitCode: ExitCode.usage, hint: 'start one with --to, or name a run: homelab k8s upgrade --resume <run id>'})
  }
  if (!UPGRADE_SAGAS.includes(journal.state.saga)) {
    throw new HomelabError(`run ${journal.id} is not an upgrade`, {exitCode: ExitCode.usage, hint: 'name an upgrade run id'})
  }
  if (journal.state.rollbackStartedAt || ['succeeded', 'compensated', 'compensation-incomplete'].includes(journal.state.status)) {
    throw new HomelabError(`run ${journal.id} is ${journal.state.rollbackStartedAt ? 'being rolled back' : journal.state.status} and cannot be resumed`, {
      exitCode: ExitCode.usage,
      hint: journal.state.status === 'succeeded' ? 'nothing to resume' : `finish the undo with homelab k8s rollback ${journal.id}`,
    })
  }
  refuseIfStillRunning(journal)
  return journal
}

/**
 * The Lease lets a run take its own lock back after a crash, so it cannot tell a crashed run from
 * a live one: the journal's writer process can. Resuming or undoing a live run would have two
 * processes change the same nodes (a rollback downgrading servers under a run upgrading agents).
 */
function refuseIfStillRunning(journal: Journal): void {
  if (journal.state.status === 'running' && writerIsAlive(journal.state) === true) {
    throw new HomelabError(`run ${journal.id} is still running (pid ${journal.state.writer.pid})`, {
      exitCode: ExitCode.locked,
      hint: 'wait for it, or stop that process first (Ctrl-C finishes or undoes the node in flight)',
    })
  }
}

/** `homelab k8s rollback [id]`: the compensations of a failed, stopped or interrupted run, from its journal. */
export async function runRollback(deps: RunnerDeps, id: string | undefined): Promise<UpgradeResult> {
  const started = Date.now()
  const journal = id ? await deps.journals.load(id) : await deps.journals.loadLatest({saga: UPGRADE_SAGAS, status: ['failed', 'interrupted', 'running', 'compensation-incomplete']})
  if (!journal) throw new HomelabError('there is no run to roll back', {exitCode: ExitCode.usage, hint: 'name one: homelab k8s rollback <run id> (ids are in ~/.local/state/homelab/runs)'})
  refuseIfStillRunning(journal)
  const input = journal.state.input as CommonInput
  const result: UpgradeResult = {outcome: 'compensated', exitCode: ExitCode.ok, distribution: input.distribution, target: input.finalTarget, hops: [input.target], runIds: [journal.id], nodes: [], backups: [], plans: [input.plan], warnings: [], durationMs: 0, manualSteps: []}
  recordBefore(result, input.plan)
  const lockLost = new AbortController()
  const lock = runLock(deps, journal.id, lockLost)
  try {
    await lock.acquire()
  } catch (error) {
    if (error instanceof LockHeldError) return {...result, outcome: 'locked', exitCode: ExitCode.locked, error: errorInfo(error)}
    throw error
  }
  try {
    const inventory = await deps.loadInventory()
    const signal = AbortSignal.any([deps.signal, lockLost.signal])
    const saga = await rollbackRun(upgraderOf(journal.state).definition({...deps, inventory}, deps.timings), journal, {signal, onEvent: deps.onEvent})
    result.outcome = saga.outcome
    result.exitCode = saga.outcome === 'compensated' ? ExitCode.ok : exitCodeFor(saga)
    if (lockLost.signal.aborted) result.error = errorInfo(lockLost.signal.reason)
    if (saga.outcome !== 'compensated') result.manualSteps = upgraderOf(saga.journal).manualRecoverySteps(saga.journal)
  } finally {
    await lock.release()
  }
  return recordAfter(deps, result, started)
}

/**
 * The run's Lease. Losing it means another run may now change the cluster: `lost` aborts, and
 * the saga stops as on Ctrl-C (the node action in flight is finished or undone).
 */
function runLock(deps: RunnerDeps, runId: string, lost: AbortController): ClusterLock {
  return new ClusterLock({
    kube: deps.kube,
    holder: `${runId}@${deps.host ?? hostname()}`,
    leaseDurationSeconds: deps.timings?.leaseDurationSeconds,
    onLost: (reason) => lost.abort(new LockHeldError(`the cluster lock was lost during the run (${reason})`, 'check homelab k8s status and whether another run is going, then continue with --resume or rollback')),
  })
}

/** Outcomes after which no node can have changed: the end state is the state before. */
const UNCHANGED: ReadonlyArray<UpgradeOutcome> = ['dry-run', 'declined', 'locked']

/**
 * Each node's state after the run, read now from the API and over SSH (the report must not
 * claim what the plan hoped for), and the run's duration.
 */
async function recordAfter(deps: RunnerDeps, result: UpgradeResult, started: number): Promise<UpgradeResult> {
  const inventory = await deps.loadInventory().catch(() => undefined)
  // Where pre-flight found each binary: one read per node (its version), not a search first.
  const plannedBinDirs = new Map(result.plans.flatMap((plan) => [...plan.servers, ...plan.agents]).flatMap((n) => ('binDir' in n && typeof n.binDir === 'string' ? [[n.name, n.binDir] as const] : [])))
  const changed = inventory?.nodes
    .filter((n) => result.nodes.some((c) => c.name === n.name))
    .map((n) => (plannedBinDirs.has(n.name) ? {...n, binDir: plannedBinDirs.get(n.name)!, binDirExplicit: true} : n))
  const status = inventory && changed && !UNCHANGED.includes(result.outcome) && result.nodes.length > 0
    ? await gatherStatus({inventory: {...inventory, nodes: changed}, distribution: deps.distribution, apiServer: deps.kube.server, connect: deps.connect, concurrency: SSH_FANOUT}).catch(() => undefined)
    : undefined
  for (const change of result.nodes) {
    change.after = inventory?.nodes.find((n) => n.name === change.name)?.cluster?.kubeletVersion ?? change.after
    const node = status?.nodes.find((n) => n.name === change.name)
    if (node) change.end = endState(node)
  }
  result.durationMs = Date.now() - started
  return result
}

function endState(node: NodeStatus): NonNullable<NodeChange['end']> {
  const problems: string[] = []
  if (!node.inCluster) problems.push('not in the cluster')
  else if (!node.ready) problems.push(`NotReady${node.readyReason ? ` (${node.readyReason})` : ''}`)
  if (node.cordonedBy) problems.push(`cordoned by homelab run ${node.cordonedBy}`)
  if (!node.ssh.reachable) problems.push(`SSH: ${node.ssh.error}`)
  else if (node.installedVersion && node.kubeletVersion && node.installedVersion !== node.kubeletVersion) problems.push(`on disk ${node.installedVersion}, running ${node.kubeletVersion}`)
  return {
    ready: node.ready,
    ...(node.readyReason ? {readyReason: node.readyReason} : {}),
    cordoned: node.cordoned,
    ...(node.cordonedBy ? {cordonedBy: node.cordonedBy} : {}),
    ...(node.installedVersion ? {onDisk: node.installedVersion} : {}),
    ...(node.ssh.error ? {sshError: node.ssh.error} : {}),
    healthy: problems.length === 0,
    problems,
  }
}
