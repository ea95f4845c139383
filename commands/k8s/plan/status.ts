import {Flags} from '@oclif/core'

import {parseDuration} from '../../../src/duration.js'
import {apiFailure} from '../../../src/kube/api-errors.js'
import {
  DEFAULT_STUCK_AFTER_MS,
  type JobProblem,
  outcomeError,
  type PlanReport,
  type PlansReport,
  problemAge,
  readPlansStatus,
  waitForPlans,
  type WaitOutcome,
} from '../../../src/suc/status.js'
import {planNames} from '../../../src/suc/build.js'
import {HomelabCommand} from '../../_cli/base-command.js'
import {renderTable} from '../../_cli/table.js'
import {planContext} from './_shared/context.js'

export interface StatusResult extends PlansReport {
  outcome: WaitOutcome | 'in-progress'
}

export default class PlanStatus extends HomelabCommand<typeof PlanStatus> {
  static override summary = 'Show how the controller is getting on with our Plans, and why it is stuck'
  static override description = `For each plan homelab applied: its target, the controller's latestVersion and latestHash, the Complete condition, the nodes done (their plan.upgrade.cattle.io/<plan> label equals the hash), applying now, and still to go; for each failed or stuck Job the reason (the pod's termination message, an image that cannot be pulled, a prepare step waiting for the plan before it), and the nodes it left cordoned with the command to uncordon them.

--wait follows the plans by watch, in upgrade order (etcd plan, server plan, agent plan), until all are complete, a Job fails for good (a stuck image pull counts after --stuck-after), or --timeout passes.

EXIT CODES
  0  complete (without --wait: also while still in progress)
  2  usage or config error
  4  a Job failed for good (diagnosis printed)
  5  --wait timed out`
  static override examples = ['<%= config.bin %> k8s plan status', '<%= config.bin %> k8s plan status --wait --timeout 45m', '<%= config.bin %> k8s plan status --json']
  static override flags = {
    namespace: Flags.string({description: 'the controller\'s namespace', default: 'system-upgrade'}),
    'name-prefix': Flags.string({description: 'only the plans <prefix>etcd, <prefix>server and <prefix>agent (default: every plan homelab applied)'}),
    wait: Flags.boolean({description: 'follow until complete, failed, or --timeout'}),
    timeout: Flags.string({description: 'bound of --wait', default: '30m'}),
    'stuck-after': Flags.string({description: 'a Job that cannot pull its image (or be scheduled) this long counts as failed', default: `${DEFAULT_STUCK_AFTER_MS / 60_000}m`}),
  }

  async run(): Promise<StatusResult> {
    const {flags} = this
    const timeoutMs = parseDuration(flags.timeout, '--timeout')
    const stuckAfterMs = parseDuration(flags['stuck-after'], '--stuck-after')
    const context = await planContext(flags)
    const kube = await context.kube()
    const names = flags['name-prefix'] === undefined ? undefined : Object.values(planNames(context.config.distribution, flags['name-prefix']))
    const options = {namespace: flags.namespace, names, stuckAfterMs}

    let report: PlansReport
    let outcome: StatusResult['outcome']
    if (flags.wait) {
      const controller = new AbortController()
      const onSigint = () => controller.abort()
      process.once('SIGINT', onSigint)
      let away = false
      try {
        const result = await waitForPlans(kube, {
          ...options,
          timeoutMs,
          signal: controller.signal,
          onReport: (r) => {
            away = false
            if (!this.jsonEnabled() && r.state === 'in-progress') this.log(`${new Date().toISOString()} ${r.summary}`)
          },
          // Upgrading the server behind the API restarts it; say so once, then keep waiting.
          onRetry: (error) => {
            if (!away && !this.jsonEnabled()) this.logToStderr(`${new Date().toISOString()} the API server does not answer (${apiFailure(error).message}); still waiting`)
            away = true
          },
        })
        report = result.report
        outcome = result.outcome
      } finally {
        process.off('SIGINT', onSigint)
      }
    } else {
      report = await readPlansStatus(kube, options)
      outcome = report.state === 'in-progress' ? 'in-progress' : report.state
    }

    if (!this.jsonEnabled()) this.log(renderPlansReport(report))
    const error = outcomeError(outcome === 'in-progress' ? report.state : outcome, report, timeoutMs)
    if (error) {
      if (!this.jsonEnabled()) this.logToStderr(`homelab: ${error.oneLine()}`)
      process.exitCode = error.exitCode
    }
    return {...report, outcome}
  }
}

function nodesCell(names: readonly string[]): string {
  return names.length === 0 ? '-' : names.join(',')
}

function completeCell(plan: PlanReport): string {
  return plan.complete.reason ? `${plan.complete.status} (${plan.complete.reason})` : plan.complete.status
}

function problemLine(problem: JobProblem): string {
  const age = problemAge(problem)
  return `  ${problem.plan} on ${problem.node}: ${problem.state}${problem.givenUp ? ' (gave up)' : ''}, ${problem.reason}${age ? ` for ${age}` : ''}: ${problem.message}\n    job ${problem.job}`
}

export function renderPlansReport(report: PlansReport): string {
  const table = renderTable<PlanReport>(report.plans, [
    {header: 'PLAN', get: (p) => p.name},
    {header: 'TARGET', get: (p) => p.target},
    {header: 'LATEST', get: (p) => p.latestVersion ?? '-'},
    {header: 'HASH', get: (p) => p.latestHash?.slice(0, 12) ?? '-'},
    {header: 'COMPLETE', get: completeCell},
    {header: 'DONE', get: (p) => `${p.done.length}/${p.nodes.length - p.optedOut.length}`},
    {header: 'APPLYING', get: (p) => nodesCell(p.applying)},
    {header: 'TO GO', get: (p) => nodesCell(p.toGo)},
  ])
  const lines = [`Plans in namespace ${report.namespace}`, '', table]
  const problems = report.plans.flatMap((p) => p.problems)
  if (problems.length > 0) lines.push('', 'Jobs:', ...problems.map(problemLine))
  const optedOut = report.plans.filter((p) => p.optedOut.length > 0)
  for (const plan of optedOut) lines.push(`${plan.name}: opted out (label =disabled): ${plan.optedOut.join(', ')}`)
  if (report.leftCordoned.length > 0) {
    lines.push('', `Left cordoned (the controller uncordons only after success): ${report.leftCordoned.map((c) => c.node).join(', ')}`, `  after fixing the cause: ${report.uncordonCommand}`)
  }
  lines.push('', report.summary)
  return lines.join('\n')
}
