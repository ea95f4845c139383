/**
 * Checks Plans read from a file (`plan apply --file`) for the mistakes the API server lets
 * through: the CRD's schema quietly drops `env` (the field is `envs`), accepts `concurrency: 0`
 * (then nothing ever runs), and cannot know that a plan's `prepare` waits for another plan
 * (agent for server, server for etcd) that names another version and so waits forever.
 */
import {parseAllDocuments} from 'yaml'

import {UsageError} from '../errors.js'
import {isVersionString} from '../versions/release-version.js'
import {prepareWaitOf} from './prepare.js'
import {type Plan, PLAN_API_VERSION, PLAN_KIND} from './types.js'

const NAME_RE = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/

export interface PlanFileCheck {
  plans: Plan[]
  warnings: string[]
}

type Loose = Record<string, unknown>

function isObject(value: unknown): value is Loose {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Problems of one Plan-shaped object, each a sentence naming the field. */
export function planProblems(doc: unknown): {problems: string[]; warnings: string[]} {
  const problems: string[] = []
  const warnings: string[] = []
  if (!isObject(doc)) return {problems: ['is not a mapping'], warnings}
  if (doc.apiVersion !== PLAN_API_VERSION || doc.kind !== PLAN_KIND) {
    problems.push(`is ${String(doc.apiVersion)} ${String(doc.kind)}, not ${PLAN_API_VERSION} ${PLAN_KIND}`)
    return {problems, warnings}
  }
  const metadata = isObject(doc.metadata) ? doc.metadata : {}
  if (typeof metadata.name !== 'string' || !NAME_RE.test(metadata.name)) problems.push('metadata.name must be a lowercase name of at most 63 characters')
  if (metadata.namespace !== undefined && typeof metadata.namespace !== 'string') problems.push('metadata.namespace must be a string')
  const spec = doc.spec
  if (!isObject(spec)) {
    problems.push('spec is missing')
    return {problems, warnings}
  }
  const concurrency = spec.concurrency
  if (concurrency === undefined) problems.push('spec.concurrency is missing: without it the controller never creates a Job')
  else if (typeof concurrency !== 'number' || !Number.isInteger(concurrency) || concurrency < 1) {
    problems.push(`spec.concurrency must be a whole number of at least 1, got ${JSON.stringify(concurrency)}`)
  }
  const hasVersion = spec.version !== undefined && spec.version !== ''
  const hasChannel = spec.channel !== undefined && spec.channel !== ''
  if (!hasVersion && !hasChannel) problems.push('spec needs version or channel: the controller cannot tell what to install')
  if (hasVersion) {
    if (typeof spec.version !== 'string' || !isVersionString(spec.version)) problems.push(`spec.version ${JSON.stringify(spec.version)} is not a k3s or rke2 version such as v1.32.0+k3s1`)
    if (hasChannel) warnings.push(`plan ${String(metadata.name)}: spec.version wins over spec.channel; the channel is ignored`)
  }
  if (hasChannel && (typeof spec.channel !== 'string' || !/^https?:\/\//.test(spec.channel))) problems.push('spec.channel must be a URL')
  if (spec.nodeSelector === undefined) problems.push('spec.nodeSelector is missing: the plan would select no node')
  else if (!isObject(spec.nodeSelector)) problems.push('spec.nodeSelector must be a label selector (matchLabels / matchExpressions)')
  for (const key of ['upgrade', 'prepare'] as const) {
    const container = spec[key]
    if (container === undefined) {
      if (key === 'upgrade') problems.push('spec.upgrade is required')
      continue
    }
    if (!isObject(container)) {
      problems.push(`spec.${key} must be a container (image, args, envs …)`)
      continue
    }
    if (typeof container.image !== 'string' || container.image === '') problems.push(`spec.${key}.image is required`)
    if ('env' in container) problems.push(`spec.${key}.env is not a Plan field (the API server would drop it silently); it is spelled envs`)
    for (const list of ['command', 'args'] as const) {
      const value = container[list]
      if (value !== undefined && (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))) problems.push(`spec.${key}.${list} must be a list of strings`)
    }
  }
  if (spec.drain !== undefined && spec.cordon === false) warnings.push(`plan ${String(metadata.name)}: spec.drain cordons the node even though cordon is false`)
  return {problems, warnings}
}

/** Reads a multi-document YAML of Plans and refuses it (UsageError) with every problem listed. */
export function parsePlanFile(text: string, source: string): PlanFileCheck {
  const docs = parseAllDocuments(text)
  const problems: string[] = []
  const warnings: string[] = []
  const plans: Plan[] = []
  if (!Array.isArray(docs)) throw new UsageError(`${source} is empty`, {hint: 'write the plans with `homelab k8s plan generate --out FILE`'})
  docs.forEach((doc, index) => {
    const where = `${source} document ${index + 1}`
    if (doc.errors.length > 0) {
      problems.push(`${where}: YAML error: ${doc.errors[0].message.split('\n')[0]}`)
      return
    }
    const value = doc.toJS() as unknown
    if (value === null || value === undefined) return
    const found = planProblems(value)
    problems.push(...found.problems.map((p) => `${where}: ${p}`))
    warnings.push(...found.warnings)
    if (found.problems.length === 0) plans.push(value as Plan)
  })
  if (problems.length === 0 && plans.length === 0) problems.push(`${source} holds no Plan`)

  // Both prepare steps (upstream's and ours) wait until the nodes run *this* plan's version.
  for (const plan of plans) {
    const wait = prepareWaitOf(plan.spec)
    if (!wait) continue
    const server = plans.find((p) => p.metadata.name === wait.plan)
    if (!server) {
      warnings.push(`plan ${plan.metadata.name} waits for plan ${wait.plan}, which is not in ${source}; it must exist in the cluster`)
      continue
    }
    const a = plan.spec.version ?? plan.spec.channel
    const b = server.spec.version ?? server.spec.channel
    if (a !== b) problems.push(`plan ${plan.metadata.name} targets ${a} but waits for ${server.metadata.name}, which targets ${b}: its prepare step would wait forever`)
  }
  if (problems.length > 0) {
    throw new UsageError(`${source} is not a set of valid Plans:\n  - ${problems.join('\n  - ')}`, {
      hint: 'fix the file, or generate it again with `homelab k8s plan generate --out FILE`',
    })
  }
  return {plans, warnings}
}
