/**
 * A simulated system-upgrade-controller working on the simulated API's store, with the parts of
 * the Job controller and the kubelet that its Jobs need. It follows upstream's handlers
 * (pkg/upgrade/handle_upgrade.go, handle_batch.go, plan/plan.go, job/job.go):
 *
 * - status: Validated, LatestResolved (from spec.version, or the channel URL's 302), Complete;
 *   latestVersion with `-` for `+`; latestHash = sha224(latestVersion + serviceAccountName);
 * - generating: selects nodes (selector + kubernetes.io/hostname, label not `disabled` and not
 *   the hash), applying nodes first, the rest in upstream's hash order, up to `concurrency`;
 *   one Job per node, named by SafeConcatName(apply, plan, on, node, with, hash);
 *   Complete = nothing left to apply and concurrency > 0;
 * - jobs: prepare (see `prepareDone`: the upgrade images' `prepare <plan>`, which waits until that
 *   plan applies nowhere and every control-plane node runs the version, and homelab's
 *   wait-for-plan step, which waits for the nodes of the plan it names), cordon or drain, then
 *   the upgrade container, which restarts k3s at the new version; on success the node gets
 *   `plan.upgrade.cattle.io/<plan>=<hash>` and is uncordoned, on failure the plan's Complete
 *   condition says JobFailed and the node stays cordoned.
 *
 * Failures on request (`failNext`): a downgrade the image refuses (also automatic, as newer
 * k3s-upgrade images do), an image that cannot be pulled, or any non-zero exit.
 * Not simulated: `window` (jobs run at any time), `exclusive`, `secrets`, `postCompleteDelay`.
 */
import {createHash} from 'node:crypto'
import {createServer, type Server} from 'node:http'
import {mkdir, writeFile} from 'node:fs/promises'
import {join} from 'node:path'

import {stringify} from 'yaml'

import {Controller, type ControllerContext} from './kube-api/controllers/base.js'
import {sucPlanCrd} from './kube-api/crds.js'
import {deleteObject} from './kube-api/deletion.js'
import type {SimKubeApi} from './kube-api/index.js'
import {controllerRef, getCondition, isNodeReady, ownerReferenceTo, setCondition} from './kube-api/objects.js'
import {fromLabelSelector, matchesLabels, parseLabelSelector} from './kube-api/selectors.js'
import type {StoreEvent} from './kube-api/store.js'
import {Timers} from './kube-api/timers.js'
import {type Dict, type StoredObject, nowIso, randomSuffix} from './kube-api/types.js'

export const CONTROLLER_NAME = 'system-upgrade-controller'
const HOSTNAME = 'kubernetes.io/hostname'
const L = {
  controller: 'upgrade.cattle.io/controller',
  node: 'upgrade.cattle.io/node',
  plan: 'upgrade.cattle.io/plan',
  version: 'upgrade.cattle.io/version',
}
const planLabel = (plan: string) => `plan.upgrade.cattle.io/${plan}`

export type SucFault =
  /** The upgrade image refuses to go back (it also does so by itself for an older target). */
  | {kind: 'downgrade-refused'; plan?: string}
  /** The image (of `container`, default: the first container that uses the plan's upgrade image) cannot be pulled. */
  | {kind: 'image-pull'; plan?: string; container?: 'prepare' | 'upgrade'; message?: string}
  /** The upgrade container exits non-zero with this termination message. */
  | {kind: 'exit'; plan?: string; exitCode?: number; message: string}

export interface SimSucOptions {
  namespace?: string
  /** The time each step of a Job takes (pull, prepare check, cordon, upgrade). */
  stepMs?: number
  /** Failed pods before the Job gives up (upstream default 2, i.e. three attempts). */
  backoffLimit?: number
  /** A Job still active after this fails with DeadlineExceeded (upstream: 600 s). */
  activeDeadlineMs?: number
  /** Do nothing until the controller's Deployment is available (it has been "installed"). */
  requireDeployment?: boolean
  /** What the channel URL resolves to; default: GET without following, last segment of Location. */
  resolveChannel?: (url: string) => Promise<string>
  /** Restart k3s on the node at `version` (`+` form); default: the node reports it at once. */
  upgradeNode?: (node: string, version: string) => void
  /** The kubelet must leave our pods' status alone. */
  pinPod?: (uid: string) => void
}

interface Run {
  jobUid: string
  job: string
  plan: string
  node: string
  step: 'pull' | 'prepare' | 'cordon' | 'drain' | 'upgrade' | 'done'
  attempts: number
  pod?: string
  startedAt: number
  fault?: SucFault
  busy: boolean
  imageStuck: boolean
}

/** wrangler's name.SafeConcatName: joined with `-`, cut to 63 with a hash suffix when longer. */
export function safeConcatName(...parts: string[]): string {
  const full = parts.join('-')
  if (full.length < 64) return full
  const digest = createHash('sha256').update(full).digest('hex')
  const c = full[56]
  return /[a-z0-9]/.test(c) ? `${full.slice(0, 57)}-${digest.slice(0, 5)}` : `${full.slice(0, 56)}-${digest.slice(0, 6)}`
}

export function latestHash(latestVersion: string, serviceAccountName: string): string {
  return createHash('sha224').update(latestVersion).update(serviceAccountName).digest('hex')
}

function selects(plan: StoredObject, node: StoredObject): boolean {
  // A missing selector selects nothing (metav1.LabelSelectorAsSelector(nil) is Nothing).
  const selector = fromLabelSelector(plan.spec?.nodeSelector)
  const labels = node.metadata.labels ?? {}
  return selector !== null && HOSTNAME in labels && matchesLabels(selector, labels)
}

const munge = (v: string) => v.replaceAll('+', '-')
const unmunge = (v: string) => v.replace(/-(k3s|rke2r)(\d+)$/, '+$1$2')

function versionKey(v: string): number[] {
  const m = /^v(\d+)\.(\d+)\.(\d+).*?[+-](?:k3s|rke2r)(\d+)$/.exec(v)
  return m ? m.slice(1).map(Number) : []
}

function older(a: string, b: string): boolean {
  const x = versionKey(a)
  const y = versionKey(b)
  for (let i = 0; i < 4; i++) if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0)
  return false
}

export class SimSucController extends Controller {
  readonly options: Required<Omit<SimSucOptions, 'resolveChannel' | 'upgradeNode' | 'pinPod'>> & Pick<SimSucOptions, 'resolveChannel' | 'upgradeNode' | 'pinPod'>
  /** Names of the Jobs created, in order. */
  readonly jobsCreated: string[] = []
  /** Most Jobs of one plan active at the same time. */
  readonly maxActive = new Map<string, number>()
  /** Channel URLs resolved (one entry per resolution). */
  readonly channelRequests: string[] = []
  private readonly timers: Timers
  private readonly runs = new Map<string, Run>()
  private readonly faults: Array<{node: string; fault: SucFault}> = []
  private readonly channels = new Map<string, {version?: string; error?: string; pending: boolean}>()

  /** Wires the controller to a running SimKubeApi: its store, its kubelet, its node lifecycle. */
  static attach(api: SimKubeApi, options: SimSucOptions = {}): SimSucController {
    const timers = new Timers()
    const controller = new SimSucController({store: api.store, registry: api.registry, timers}, timers, {
      pinPod: (uid) => api.controllers.kubelet?.pinned.add(uid),
      upgradeNode: (node, version) => api.nodes.k3sStarted(node, {version}),
      ...options,
    })
    controller.start()
    return controller
  }

  constructor(ctx: ControllerContext, timers: Timers, options: SimSucOptions = {}) {
    super(ctx, 'controller:system-upgrade')
    this.timers = timers
    this.options = {
      namespace: 'system-upgrade',
      stepMs: 20,
      backoffLimit: 2,
      activeDeadlineMs: 600_000,
      requireDeployment: false,
      ...options,
    }
  }

  override stop(): void {
    super.stop()
    this.timers.cancelAll()
  }

  /** Errors thrown inside this controller's timers. */
  get errors(): unknown[] {
    return this.timers.errors.map((e) => e.error)
  }

  /** The next Job on `node` (of `fault.plan`, if given) fails this way. */
  failNext(node: string, fault: SucFault): void {
    this.faults.push({node, fault})
  }

  protected interested(e: StoreEvent): boolean {
    return this.is(e, 'plans.upgrade.cattle.io', 'jobs.batch', 'nodes', 'pods', 'deployments.apps')
  }

  protected reconcile(): void {
    if (this.options.requireDeployment && !this.installed()) return
    let plansRt
    try {
      plansRt = this.type('plans.upgrade.cattle.io')
    } catch {
      return // the CRD is not installed
    }
    for (const plan of this.store.listIn(plansRt, this.options.namespace)) this.planStatus(plan)
    for (const plan of this.store.listIn(plansRt, this.options.namespace)) this.generate(plan)
    for (const job of this.store.listIn(this.type('jobs.batch'), this.options.namespace)) this.syncJob(job)
  }

  private installed(): boolean {
    const deployment = this.store.get('deployments.apps', this.options.namespace, CONTROLLER_NAME)
    return Number(deployment?.status?.availableReplicas ?? 0) > 0
  }

  private writePlan(plan: StoredObject): void {
    this.store.updateIn(this.type('plans.upgrade.cattle.io'), plan, {source: this.source})
  }

  // ------------------------------------------------------------------ status handler

  private planStatus(plan: StoredObject): void {
    const before = JSON.stringify(plan.status ?? {})
    const spec = plan.spec ?? {}
    if (!getCondition(plan, 'Complete')) setCondition(plan, {type: 'Complete', status: 'Unknown'})
    const invalid = this.validate(plan)
    if (invalid) {
      setCondition(plan, {type: 'Validated', status: 'False', reason: 'Error', message: invalid})
    } else {
      setCondition(plan, {type: 'Validated', status: 'True', reason: 'PlanIsValid'})
      if (spec.version) {
        setCondition(plan, {type: 'LatestResolved', status: 'True', reason: 'Version'})
        plan.status!.latestVersion = munge(String(spec.version))
      } else if (spec.channel) {
        const resolved = this.channel(String(spec.channel))
        if (resolved?.version) {
          setCondition(plan, {type: 'LatestResolved', status: 'True', reason: 'Channel'})
          plan.status!.latestVersion = munge(resolved.version)
        } else if (resolved?.error) {
          setCondition(plan, {type: 'LatestResolved', status: 'False', reason: 'Error', message: resolved.error})
        }
      } else {
        setCondition(plan, {type: 'LatestResolved', status: 'False', reason: 'Error', message: 'plan does not specify a version or channel'})
      }
    }
    if (plan.status?.latestVersion) plan.status.latestHash = latestHash(plan.status.latestVersion, String(spec.serviceAccountName ?? ''))
    if (JSON.stringify(plan.status) !== before) this.writePlan(plan)
  }

  private validate(plan: StoredObject): string | undefined {
    const drain = plan.spec?.drain
    if (drain && drain.deleteEmptydirData !== undefined && drain.deleteLocalData !== undefined) return 'spec.drain cannot specify both deleteEmptydirData and deleteLocalData'
    const window = plan.spec?.window
    if (window && (!Array.isArray(window.days) || window.days.length === 0 || !window.startTime || !window.endTime)) return 'spec.window is invalid'
    return undefined
  }

  private channel(url: string): {version?: string; error?: string} | undefined {
    const known = this.channels.get(url)
    if (known && !known.pending) return known
    if (known?.pending) return undefined
    this.channels.set(url, {pending: true})
    this.channelRequests.push(url)
    const resolve = this.options.resolveChannel ?? defaultResolveChannel
    resolve(url).then(
      (version) => this.channels.set(url, {version, pending: false}),
      (error: unknown) => this.channels.set(url, {error: `unexpected response: ${(error as Error).message}`, pending: false}),
    ).finally(() => this.kick())
    return undefined
  }

  // ------------------------------------------------------------------ generating handler

  private generate(plan: StoredObject): void {
    if (getCondition(plan, 'Validated')?.status !== 'True' || getCondition(plan, 'LatestResolved')?.status !== 'True') return
    const hash = String(plan.status?.latestHash ?? '')
    const name = plan.metadata.name
    const concurrency = Number(plan.spec?.concurrency ?? 0)
    const applying = new Set<string>((plan.status?.applying ?? []) as string[])
    const candidates = this.store
      .listIn(this.type('nodes'))
      .filter((n) => selects(plan, n))
      .filter((n) => {
        const value = n.metadata.labels?.[planLabel(name)]
        return value !== 'disabled' && value !== hash
      })
    const selected = candidates.filter((n) => applying.has(n.metadata.name))
    const order = (n: StoredObject) => createHash('sha256').update(n.metadata.uid).update(plan.metadata.uid).update(hash).digest('hex')
    const others = candidates.filter((n) => !applying.has(n.metadata.name)).sort((a, b) => order(a).localeCompare(order(b)))
    for (const node of others) {
      if (selected.length >= concurrency) break
      selected.push(node)
    }
    selected.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    for (const node of selected) this.ensureJob(plan, node)

    const names = selected.map((n) => n.metadata.name)
    const before = JSON.stringify(plan.status ?? {})
    plan.status!.applying = names
    if (names.length === 0) delete plan.status!.applying
    const complete = names.length === 0 && concurrency > 0
    const current = getCondition(plan, 'Complete')
    // A failed Job's reason stays until the plan completes (wrangler's SetStatusBool keeps it).
    if (complete) setCondition(plan, {type: 'Complete', status: 'True'})
    else if (current?.reason === 'JobFailed') setCondition(plan, {type: 'Complete', status: 'False', reason: current.reason, message: current.message})
    else setCondition(plan, {type: 'Complete', status: 'False'})
    if (JSON.stringify(plan.status) !== before) this.writePlan(plan)
  }

  private ensureJob(plan: StoredObject, node: StoredObject): void {
    const hash = String(plan.status?.latestHash)
    const version = String(plan.status?.latestVersion)
    const name = safeConcatName('apply', plan.metadata.name, 'on', node.metadata.name, 'with', hash)
    const jobsRt = this.type('jobs.batch')
    if (this.store.getIn(jobsRt, this.options.namespace, name)) return
    const labels = {
      [L.controller]: CONTROLLER_NAME,
      [L.node]: node.metadata.name,
      [L.plan]: plan.metadata.name,
      [L.version]: version,
      [planLabel(plan.metadata.name)]: hash,
    }
    const spec = plan.spec ?? {}
    const withTag = (image: string) => (image.split('/').at(-1)!.includes(':') ? image : `${image}:${version}`)
    const initContainers: Dict[] = []
    if (spec.prepare) initContainers.push({name: 'prepare', image: withTag(String(spec.prepare.image)), args: spec.prepare.args ?? []})
    if (spec.drain) initContainers.push({name: 'drain', image: 'rancher/kubectl:v1.30.3', args: ['drain', node.metadata.name, '--pod-selector', `!${L.controller}`]})
    else if (spec.cordon) initContainers.push({name: 'cordon', image: 'rancher/kubectl:v1.30.3', args: ['cordon', node.metadata.name]})
    const job = this.store.createIn(
      jobsRt,
      {
        apiVersion: 'batch/v1',
        kind: 'Job',
        metadata: {name, namespace: this.options.namespace, labels, annotations: {'upgrade.cattle.io/ttl-seconds-after-finished': '900'}},
        spec: {
          backoffLimit: this.options.backoffLimit,
          activeDeadlineSeconds: Math.ceil(this.options.activeDeadlineMs / 1000),
          template: {
            metadata: {labels},
            spec: {
              serviceAccountName: spec.serviceAccountName,
              restartPolicy: 'Never',
              hostPID: true,
              hostIPC: true,
              hostNetwork: true,
              affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: [{matchExpressions: [{key: HOSTNAME, operator: 'In', values: [node.metadata.name]}]}]}}},
              tolerations: [{key: 'node.kubernetes.io/unschedulable', operator: 'Exists', effect: 'NoSchedule'}, ...((spec.tolerations ?? []) as Dict[])],
              ...(spec.imagePullSecrets ? {imagePullSecrets: spec.imagePullSecrets} : {}),
              initContainers,
              containers: [{name: 'upgrade', image: withTag(String(spec.upgrade?.image)), args: spec.upgrade?.args ?? [], securityContext: {privileged: true}}],
            },
          },
        },
        status: {},
      },
      {source: this.source},
    )
    this.jobsCreated.push(name)
    const faultIndex = this.faults.findIndex((f) => f.node === node.metadata.name && (!f.fault.plan || f.fault.plan === plan.metadata.name))
    const fault = faultIndex >= 0 ? this.faults.splice(faultIndex, 1)[0].fault : undefined
    this.runs.set(job.metadata.uid, {
      jobUid: job.metadata.uid,
      job: name,
      plan: plan.metadata.name,
      node: node.metadata.name,
      step: 'pull',
      attempts: 0,
      startedAt: Date.now(),
      fault,
      busy: false,
      imageStuck: false,
    })
    this.trackActive(plan.metadata.name)
  }

  private trackActive(plan: string): void {
    const active = [...this.runs.values()].filter((r) => r.plan === plan && r.step !== 'done').length
    this.maxActive.set(plan, Math.max(this.maxActive.get(plan) ?? 0, active))
  }

  // ------------------------------------------------------------------ jobs: runtime and handler

  private syncJob(job: StoredObject): void {
    if (job.metadata.labels?.[L.controller] !== CONTROLLER_NAME) return
    const planName = job.metadata.labels[L.plan]
    const plan = this.store.get('plans.upgrade.cattle.io', this.options.namespace, planName)
    const run = this.runs.get(job.metadata.uid)
    if (!plan || job.metadata.labels[L.version] !== plan.status?.latestVersion) {
      // Upstream deletes Jobs of plans that are gone or moved on to another version.
      if (run) run.step = 'done'
      this.runs.delete(job.metadata.uid)
      this.deleteJob(job)
      return
    }
    if (run && run.step !== 'done' && !run.busy) this.advance(run, job, plan)
  }

  private deleteJob(job: StoredObject): void {
    const podsRt = this.type('pods')
    for (const pod of this.store.listIn(podsRt, this.options.namespace)) {
      if (controllerRef(pod)?.uid === job.metadata.uid) this.store.removeIn(podsRt, pod.metadata.namespace, pod.metadata.name, {source: this.source})
    }
    this.store.removeIn(this.type('jobs.batch'), job.metadata.namespace, job.metadata.name, {source: this.source})
  }

  /** Runs the next step of a Job after `stepMs`; each step re-reads what it needs. */
  private advance(run: Run, job: StoredObject, plan: StoredObject): void {
    if (Date.now() - run.startedAt >= this.options.activeDeadlineMs) {
      this.failJob(run, 'DeadlineExceeded', 'Job was active longer than specified deadline', true)
      return
    }
    if (run.imageStuck) return
    run.busy = true
    this.timers.after(this.options.stepMs, () => {
      run.busy = false
      if (!this.running_(run)) return
      const before = run.step
      // Read again: the Job's plan may have changed while the step ran.
      const freshPlan = this.store.get('plans.upgrade.cattle.io', this.options.namespace, run.plan) ?? plan
      this.step(run, job, freshPlan)
      // A step that made no progress waits for the next change (a node, a plan) to look again.
      if (run.step !== before || run.step === 'upgrade') this.kick()
    }, 'suc-job')
  }

  private running_(run: Run): boolean {
    return this.runs.get(run.jobUid) === run && run.step !== 'done'
  }

  private step(run: Run, job: StoredObject, plan: StoredObject): void {
    const spec = plan.spec ?? {}
    switch (run.step) {
      case 'pull': {
        const pod = this.createPod(run, job)
        const pullFault = run.fault?.kind === 'image-pull' ? run.fault : undefined
        const failing = pullFault ? (pullFault.container ?? (spec.prepare?.image === spec.upgrade?.image && spec.prepare ? 'prepare' : 'upgrade')) : undefined
        run.step = spec.prepare ? 'prepare' : spec.drain ? 'drain' : spec.cordon ? 'cordon' : 'upgrade'
        if (failing === 'prepare') this.imagePull(run, pod, 'prepare', pullFault!)
        else if (spec.prepare) this.setContainer(pod, 'prepare', {running: {startedAt: nowIso()}}, true)
        return
      }
      case 'prepare': {
        if (!this.prepareDone(plan)) return // checked again on every change
        this.setContainer(run.pod, 'prepare', {terminated: {exitCode: 0, reason: 'Completed'}}, true)
        run.step = spec.drain ? 'drain' : spec.cordon ? 'cordon' : 'upgrade'
        return
      }
      case 'cordon':
      case 'drain': {
        this.store.mutate('nodes', undefined, run.node, (n) => {
          n.spec = {...(n.spec ?? {}), unschedulable: true}
        }, {source: this.source})
        if (run.step === 'drain' && !this.drainNode(run.node, spec.drain ?? {})) return
        this.setContainer(run.pod, run.step, {terminated: {exitCode: 0, reason: 'Completed'}}, true)
        run.step = 'upgrade'
        return
      }
      case 'upgrade': {
        const version = String(plan.status?.latestVersion)
        const pullFault = run.fault?.kind === 'image-pull' ? run.fault : undefined
        if (pullFault) {
          this.imagePull(run, run.pod, 'upgrade', pullFault)
          return
        }
        const node = this.store.get('nodes', run.node)
        const running = String(node?.status?.nodeInfo?.kubeletVersion ?? '')
        let failure: {exitCode: number; message: string} | undefined
        if (run.fault?.kind === 'exit') failure = {exitCode: run.fault.exitCode ?? 1, message: run.fault.message}
        else if (run.fault?.kind === 'downgrade-refused' || (running && older(version, running))) {
          failure = {exitCode: 1, message: `[ERROR]  Refusing to downgrade k3s from ${running} to ${unmunge(version)}: downgrades are not supported`}
        }
        if (failure) {
          this.setContainer(run.pod, 'upgrade', {terminated: {exitCode: failure.exitCode, reason: 'Error', message: failure.message}}, false, 'Failed')
          run.attempts++
          if (run.attempts > this.options.backoffLimit) {
            this.failJob(run, 'BackoffLimitExceeded', 'Job has reached the specified backoff limit', false)
          } else {
            this.store.mutate('jobs.batch', this.options.namespace, run.job, (j) => {
              j.status = {...(j.status ?? {}), failed: run.attempts}
            }, {source: this.source})
            run.step = 'pull'
          }
          return
        }
        this.options.upgradeNode ? this.options.upgradeNode(run.node, unmunge(version)) : this.reportVersion(run.node, unmunge(version))
        this.setContainer(run.pod, 'upgrade', {terminated: {exitCode: 0, reason: 'Completed'}}, false, 'Succeeded')
        this.completeJob(run, plan)
        return
      }
      case 'done':
        return
    }
  }

  private reportVersion(node: string, version: string): void {
    this.store.mutate('nodes', undefined, node, (n) => {
      n.status!.nodeInfo = {...n.status!.nodeInfo, kubeletVersion: version, kubeProxyVersion: version}
    }, {source: this.source})
  }

  /**
   * Has the Job's prepare container finished? As the images run it, with `want` the preparing
   * plan's SYSTEM_UPGRADE_PLAN_LATEST_VERSION:
   * - `prepare <plan>` (k3s-io/k3s-upgrade, rancher/rke2-upgrade: scripts/upgrade.sh): that plan
   *   exists and `status.applying` is empty, then the kubelet versions of ALL nodes labelled
   *   `node-role.kubernetes.io/control-plane` (rke2-upgrade: `…/master`), `sort -u`, equal `want`;
   *   none such node means waiting. The nodes the named plan selects play no part.
   * - homelab's wait-for-plan script (`sh -c <script> homelab-wait-for-plan <plan> <namespace>
   *   <selector>`): that plan has resolved `want` and applies nowhere, and every node the selector
   *   picks is Ready at `want` (none at all: done).
   * Any other prepare container exits 0 at once.
   */
  private prepareDone(plan: StoredObject): boolean {
    const prepare = plan.spec?.prepare
    if (!prepare) return true
    const args = (prepare.args ?? []) as string[]
    const want = String(plan.status?.latestVersion)
    const version = (n: StoredObject) => munge(String(n.status?.nodeInfo?.kubeletVersion ?? ''))
    const applying = (p: StoredObject) => ((p.status?.applying ?? []) as string[]).length
    const nodes = this.store.listIn(this.type('nodes'))
    if (!prepare.command && args[0] === 'prepare') {
      const other = this.store.get('plans.upgrade.cattle.io', this.options.namespace, args[1] ?? '')
      if (!other || applying(other) > 0) return false
      const label = String(prepare.image).includes('rke2-upgrade') ? 'node-role.kubernetes.io/master' : 'node-role.kubernetes.io/control-plane'
      const versions = new Set(nodes.filter((n) => label in (n.metadata.labels ?? {})).map(version))
      return versions.size === 1 && versions.has(want)
    }
    if (args[1] === 'homelab-wait-for-plan') {
      const other = this.store.get('plans.upgrade.cattle.io', args[3] || this.options.namespace, args[2] ?? '')
      if (!other || other.status?.latestVersion !== want || applying(other) > 0) return false
      const selector = parseLabelSelector(args[4])
      return nodes.filter((n) => matchesLabels(selector, n.metadata.labels)).every((n) => version(n) === want && isNodeReady(n))
    }
    return true
  }

  /** Evicts what kubectl drain would (not DaemonSet pods, not mirror pods, not ours); true once they are gone. */
  private drainNode(node: string, drain: Dict): boolean {
    const podsRt = this.type('pods')
    const remaining = this.store.listIn(podsRt).filter((pod) => {
      if (pod.spec?.nodeName !== node) return false
      if (pod.metadata.labels?.[L.controller]) return false
      if (pod.metadata.annotations?.['kubernetes.io/config.mirror']) return false
      if (drain.ignoreDaemonSets !== false && controllerRef(pod)?.kind === 'DaemonSet') return false
      return pod.status?.phase !== 'Succeeded' && pod.status?.phase !== 'Failed'
    })
    for (const pod of remaining) {
      if (!pod.metadata.deletionTimestamp) {
        deleteObject(this.store, podsRt, pod.metadata.namespace, pod.metadata.name, {source: this.source, gracePeriodSeconds: drain.gracePeriod})
      }
    }
    return remaining.length === 0
  }

  private imagePull(run: Run, pod: string | undefined, container: 'prepare' | 'upgrade', fault: Extract<SucFault, {kind: 'image-pull'}>): void {
    const current = this.pod(run)
    const image = [...((current?.spec?.initContainers ?? []) as Dict[]), ...((current?.spec?.containers ?? []) as Dict[])].find((c) => c.name === container)?.image
    const message =
      fault.message ??
      `rpc error: code = NotFound desc = failed to pull and unpack image "docker.io/${image}": failed to resolve reference "docker.io/${image}": docker.io/${image}: not found`
    run.imageStuck = true
    this.setContainer(pod, container, {waiting: {reason: 'ErrImagePull', message}}, container === 'prepare')
    this.timers.after(this.options.stepMs, () => {
      if (!this.running_(run)) return
      this.setContainer(pod, container, {waiting: {reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"`}}, container === 'prepare')
    }, 'suc-pull-backoff')
    // The Job's deadline is the only way out, as on a real cluster.
    this.timers.after(Math.max(0, this.options.activeDeadlineMs - (Date.now() - run.startedAt)), () => {
      if (this.running_(run)) this.failJob(run, 'DeadlineExceeded', 'Job was active longer than specified deadline', true)
    }, 'suc-deadline')
  }

  private pod(run: Run): StoredObject | undefined {
    return run.pod ? this.store.get('pods', this.options.namespace, run.pod) : undefined
  }

  private createPod(run: Run, job: StoredObject): string {
    const template = (job.spec?.template ?? {}) as Dict
    const containers = (template.spec?.containers ?? []) as Dict[]
    const inits = (template.spec?.initContainers ?? []) as Dict[]
    const waiting = (c: Dict) => ({name: c.name, image: c.image, imageID: '', ready: false, restartCount: 0, state: {waiting: {reason: 'PodInitializing'}}})
    const name = `${run.job.slice(0, 57)}-${randomSuffix()}`
    const pod = this.store.createIn(
      this.type('pods'),
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: this.options.namespace,
          labels: {...(template.metadata?.labels ?? {}), 'batch.kubernetes.io/job-name': run.job, 'job-name': run.job, 'batch.kubernetes.io/controller-uid': run.jobUid, 'controller-uid': run.jobUid},
          ownerReferences: [ownerReferenceTo(job)],
        },
        spec: {...template.spec, nodeName: run.node, schedulerName: 'default-scheduler'},
        status: {
          phase: 'Pending',
          startTime: nowIso(),
          conditions: [{type: 'PodScheduled', status: 'True', lastTransitionTime: nowIso()}],
          initContainerStatuses: inits.map(waiting),
          containerStatuses: containers.map(waiting),
        },
      },
      {source: this.source},
    )
    this.options.pinPod?.(pod.metadata.uid)
    run.pod = name
    this.store.mutate('jobs.batch', this.options.namespace, run.job, (j) => {
      j.status = {...(j.status ?? {}), active: 1, startTime: j.status?.startTime ?? nowIso()}
    }, {source: this.source})
    return name
  }

  private setContainer(pod: string | undefined, container: string, state: Dict, init: boolean, phase?: string): void {
    if (!pod) return
    this.store.mutate('pods', this.options.namespace, pod, (p) => {
      const key = init ? 'initContainerStatuses' : 'containerStatuses'
      const list = ((p.status?.[key] ?? []) as Dict[]).map((s) => (s.name === container ? {...s, state, ...(state.terminated ? {ready: false} : {}), ...(state.running ? {started: true} : {})} : s))
      p.status = {...(p.status ?? {}), [key]: list}
      if (state.running && !init) p.status.phase = 'Running'
      if (phase) p.status.phase = phase
    }, {source: this.source})
  }

  private completeJob(run: Run, plan: StoredObject): void {
    run.step = 'done'
    this.store.mutate('jobs.batch', this.options.namespace, run.job, (j) => {
      j.status = {...(j.status ?? {}), active: 0, succeeded: 1, completionTime: nowIso()}
      setCondition(j, {type: 'Complete', status: 'True'}, ['lastProbeTime'])
    }, {source: this.source})
    // handle_batch.go: label the node with the hash, uncordon when the plan cordoned it.
    const hash = String(plan.status?.latestHash)
    this.store.mutate('nodes', undefined, run.node, (n) => {
      n.metadata.labels = {...(n.metadata.labels ?? {}), [planLabel(plan.metadata.name)]: hash}
      if (n.spec?.unschedulable && (plan.spec?.cordon || plan.spec?.drain)) n.spec = {...n.spec, unschedulable: false}
    }, {source: this.source})
    this.trackActive(run.plan)
  }

  private failJob(run: Run, reason: string, message: string, deletePods: boolean): void {
    run.step = 'done'
    this.store.mutate('jobs.batch', this.options.namespace, run.job, (j) => {
      j.status = {...(j.status ?? {}), active: 0, failed: Math.max(1, run.attempts)}
      setCondition(j, {type: 'Failed', status: 'True', reason, message}, ['lastProbeTime'])
    }, {source: this.source})
    if (deletePods && run.pod) this.store.delete('pods', this.options.namespace, run.pod, {source: this.source})
    const plan = this.store.get('plans.upgrade.cattle.io', this.options.namespace, run.plan)
    if (plan) {
      setCondition(plan, {
        type: 'Complete',
        status: 'False',
        reason: 'JobFailed',
        message: `Job ${this.options.namespace}/${run.job} failed on Node ${run.node}: ${reason}: ${message}`,
      })
      this.writePlan(plan)
    }
  }
}

async function defaultResolveChannel(url: string): Promise<string> {
  const response = await fetch(url, {redirect: 'manual', signal: AbortSignal.timeout(5000)})
  await response.body?.cancel().catch(() => undefined)
  const location = response.headers.get('location')
  if (response.status === 302 && location) return decodeURIComponent(new URL(location, url).pathname.split('/').filter(Boolean).at(-1) ?? '')
  if (response.status >= 200 && response.status < 300) return url.split('/').at(-1) ?? ''
  throw new Error(`${response.status} ${response.statusText}`)
}

// ---------------------------------------------------------------------- the release manifests

/**
 * The controller's two release assets, written for the simulation in upstream's layout:
 * crd.yaml (the Plan CRD) and system-upgrade-controller.yaml (namespace, ServiceAccount,
 * cluster-admin binding, configmap, Deployment).
 */
export function controllerManifests(namespace = 'system-upgrade'): {crd: string; controller: string} {
  const labels = {[L.controller]: CONTROLLER_NAME}
  const objects: Dict[] = [
    {apiVersion: 'v1', kind: 'Namespace', metadata: {name: namespace}},
    {apiVersion: 'v1', kind: 'ServiceAccount', metadata: {name: 'system-upgrade', namespace}},
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: {name: 'system-upgrade'},
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'cluster-admin'},
      subjects: [{kind: 'ServiceAccount', name: 'system-upgrade', namespace}],
    },
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {name: 'default-controller-env', namespace},
      data: {
        SYSTEM_UPGRADE_CONTROLLER_DEBUG: 'false',
        SYSTEM_UPGRADE_CONTROLLER_THREADS: '2',
        SYSTEM_UPGRADE_JOB_ACTIVE_DEADLINE_SECONDS: '900',
        SYSTEM_UPGRADE_JOB_BACKOFF_LIMIT: '99',
        SYSTEM_UPGRADE_JOB_IMAGE_PULL_POLICY: 'Always',
        SYSTEM_UPGRADE_JOB_KUBECTL_IMAGE: 'rancher/kubectl:v1.30.3',
        SYSTEM_UPGRADE_JOB_PRIVILEGED: 'true',
        SYSTEM_UPGRADE_JOB_TTL_SECONDS_AFTER_FINISH: '900',
        SYSTEM_UPGRADE_PLAN_POLLING_INTERVAL: '15m',
      },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: {name: CONTROLLER_NAME, namespace},
      spec: {
        replicas: 1,
        selector: {matchLabels: labels},
        template: {
          metadata: {labels},
          spec: {
            serviceAccountName: 'system-upgrade',
            nodeSelector: {'kubernetes.io/os': 'linux'},
            tolerations: [
              {key: 'CriticalAddonsOnly', operator: 'Exists'},
              {key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule'},
            ],
            containers: [{name: CONTROLLER_NAME, image: 'rancher/system-upgrade-controller:v0.14.2', envFrom: [{configMapRef: {name: 'default-controller-env'}}]}],
          },
        },
      },
    },
  ]
  return {
    crd: stringify(sucPlanCrd()),
    controller: objects.map((o) => stringify(o)).join('---\n'),
  }
}

/** Writes crd.yaml and system-upgrade-controller.yaml into `dir`; returns their paths. */
export async function writeControllerManifests(dir: string, namespace?: string): Promise<{crd: string; controller: string}> {
  await mkdir(dir, {recursive: true})
  const manifests = controllerManifests(namespace)
  const paths = {crd: join(dir, 'crd.yaml'), controller: join(dir, 'system-upgrade-controller.yaml')}
  await writeFile(paths.crd, manifests.crd)
  await writeFile(paths.controller, manifests.controller)
  return paths
}

/** Serves the two assets on loopback as a release download would (`<url>/crd.yaml`, …). */
export async function serveControllerManifests(namespace?: string): Promise<{url: string; requests: string[]; close: () => Promise<void>}> {
  const manifests = controllerManifests(namespace)
  const requests: string[] = []
  const server: Server = createServer((req, res) => {
    requests.push(req.url ?? '')
    const body = req.url === '/crd.yaml' ? manifests.crd : req.url === '/system-upgrade-controller.yaml' ? manifests.controller : undefined
    if (body === undefined) {
      res.writeHead(404, {'content-type': 'text/plain'}).end('Not Found')
      return
    }
    res.writeHead(200, {'content-type': 'application/octet-stream'}).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as {port: number}).port
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}
