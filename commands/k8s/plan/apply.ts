import {readFile} from 'node:fs/promises'

import {Flags} from '@oclif/core'

import {parseDuration} from '../../../src/duration.js'
import {UsageError} from '../../../src/errors.js'
import {listClusterNodes} from '../../../src/kube/nodes.js'
import {
  type AppliedObject,
  applyPlans,
  DEFAULT_CONTROLLER_MANIFESTS,
  installController,
  loadManifests,
} from '../../../src/suc/apply.js'
import {checkPlansAgainstNodes} from '../../../src/suc/checks.js'
import {generatePlans} from '../../../src/suc/generate.js'
import {PLAN_CRD_NAME, type Plan} from '../../../src/suc/types.js'
import {parsePlanFile} from '../../../src/suc/validate.js'
import {isVersionString, parseVersion} from '../../../src/versions/release-version.js'
import {HomelabCommand} from '../../_cli/base-command.js'
import {generateRequest, planContext} from './_shared/context.js'
import {planFlags, TO_DESCRIPTION} from './_shared/plan-flags.js'

export interface ApplyResult {
  dryRun: boolean
  controller?: AppliedObject[]
  plans: AppliedObject[]
  warnings: string[]
}

export default class PlanApply extends HomelabCommand<typeof PlanApply> {
  static override summary = 'Server-side apply the Plans (and, if asked, install the controller)'
  static override description = `Applies the plans with server-side apply (field manager "homelab"): from --file, or built from the same flags as "plan generate". Checks first that the Plan CRD, the namespace and the ServiceAccount exist, and refuses with the way to install the controller if not. --install-controller applies the controller's release manifests (crd.yaml, system-upgrade-controller.yaml; or --controller-manifest) and waits for it to be available. --dry-run asks the API server to check everything and store nothing.

EXIT CODES
  0  applied (or, with --dry-run, accepted by the API server)
  1  the API server refused an object, or another field manager owns a field (see --force-conflicts)
  2  usage or config error, or an invalid plan file
  3  refused: a downgrade, a skipped minor, or the controller is not installed (nothing written)`
  static override examples = [
    '<%= config.bin %> k8s plan apply --to v1.31.5+k3s1 --dry-run',
    '<%= config.bin %> k8s plan apply --file plans.yaml',
    '<%= config.bin %> k8s plan apply --to stable --install-controller',
    '<%= config.bin %> k8s plan apply --to stable --install-controller --controller-manifest ./crd.yaml --controller-manifest ./system-upgrade-controller.yaml',
  ]
  static override flags = {
    ...planFlags,
    to: Flags.string({description: TO_DESCRIPTION, exactlyOne: ['to', 'file']}),
    file: Flags.string({char: 'f', description: 'apply the Plans in this YAML file (e.g. from plan generate --out)', exactlyOne: ['to', 'file']}),
    'install-controller': Flags.boolean({description: 'apply the system-upgrade-controller\'s manifests first and wait for it'}),
    'controller-manifest': Flags.string({
      description: `a manifest file or URL to install the controller from (repeatable; default: ${DEFAULT_CONTROLLER_MANIFESTS.join(' and ')})`,
      multiple: true,
      dependsOn: ['install-controller'],
    }),
    'dry-run': Flags.boolean({description: 'server-side dry run: the API server checks everything, nothing is stored'}),
    'force-conflicts': Flags.boolean({description: 'take over fields another field manager owns (as kubectl apply --server-side --force-conflicts)'}),
    timeout: Flags.string({description: 'how long to wait for the installed controller to be available', default: '5m'}),
  }

  async run(): Promise<ApplyResult> {
    const {flags} = this
    const timeoutMs = parseDuration(flags.timeout, '--timeout')
    const context = await planContext(flags)
    const kube = await context.kube()
    const dryRun = flags['dry-run']
    const warnings: string[] = []

    let plans: Plan[]
    if (flags.file) {
      let text: string
      try {
        text = await readFile(flags.file, 'utf8')
      } catch (error) {
        throw new UsageError(`cannot read ${flags.file}: ${(error as Error).message}`, {cause: error, hint: 'pass --file an existing YAML file of Plans'})
      }
      const parsed = parsePlanFile(text, flags.file)
      plans = parsed.plans
      warnings.push(...parsed.warnings)
      if (!flags.offline) {
        const checked = checkPlansAgainstNodes(plans, await listClusterNodes(kube), {
          targetOf: (plan) => (plan.spec.version && isVersionString(plan.spec.version) ? parseVersion(plan.spec.version) : undefined),
        })
        warnings.push(...checked.warnings)
        const following = plans.filter((p) => !p.spec.version).map((p) => p.metadata.name)
        if (following.length > 0) warnings.push(`${following.join(', ')} follow a channel: not checked against the cluster's versions`)
      }
    } else {
      const request = generateRequest(flags, flags.to as string)
      const generated = await generatePlans({config: context.config, kube: context.kube}, {...request, cluster: flags.offline ? 'offline' : 'required'})
      plans = generated.plans
      warnings.push(...generated.warnings)
    }

    let controller: AppliedObject[] | undefined
    if (flags['install-controller']) {
      const objects = await loadManifests(flags['controller-manifest'] ?? DEFAULT_CONTROLLER_MANIFESTS)
      controller = await installController(kube, objects, {
        dryRun,
        forceConflicts: flags['force-conflicts'],
        timeoutMs,
        onProgress: (message) => this.jsonEnabled() || this.logToStderr(message),
      })
    }

    // A dry run cannot ask the server about Plans whose CRD or namespace it only pretended to create.
    const pretended = (controller ?? []).filter((o) => o.dryRun && o.action === 'created')
    const unverifiable = pretended.some((o) => (o.kind === 'CustomResourceDefinition' && o.name === PLAN_CRD_NAME) || (o.kind === 'Namespace' && o.name === flags.namespace))
    let applied: AppliedObject[]
    if (unverifiable) {
      applied = plans.map((plan) => ({apiVersion: plan.apiVersion, kind: plan.kind, name: plan.metadata.name, namespace: flags.namespace, action: 'unchecked', dryRun, note: 'the controller is not installed yet'}))
    } else {
      const result = await applyPlans(kube, plans, {dryRun, forceConflicts: flags['force-conflicts'], namespace: flags.namespace})
      applied = result.applied
      warnings.push(...result.warnings)
    }

    for (const warning of warnings) this.logToStderr(`warning: ${warning}`)
    if (!this.jsonEnabled()) {
      for (const object of [...(controller ?? []), ...applied]) this.log(describeApplied(object))
      if (!dryRun) this.log(`\nFollow the upgrade: ${this.config.bin} k8s plan status --wait${flags.namespace === 'system-upgrade' ? '' : ` --namespace ${flags.namespace}`}`)
    }
    return {dryRun, controller, plans: applied, warnings}
  }
}

/** kubectl's grammar: `plan.upgrade.cattle.io/k3s-server created (server dry run)`. */
export function describeApplied(object: AppliedObject): string {
  const group = object.apiVersion.includes('/') ? `.${object.apiVersion.split('/')[0]}` : ''
  const name = `${object.kind.toLowerCase()}${group}/${object.name}`
  if (object.action === 'unchecked') return `${name} not checked (server dry run: ${object.note})`
  return `${name} ${object.action}${object.dryRun ? ' (server dry run)' : ''}`
}
