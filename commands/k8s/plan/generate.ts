import {writeFile} from 'node:fs/promises'

import {Flags} from '@oclif/core'

import {UsageError} from '../../../src/errors.js'
import {generatePlans, type GeneratedPlans} from '../../../src/suc/generate.js'
import type {Plan} from '../../../src/suc/types.js'
import {HomelabCommand} from '../../_cli/base-command.js'
import {generateRequest, planContext} from './_shared/context.js'
import {planFlags, TO_DESCRIPTION} from './_shared/plan-flags.js'

export const PLAN_EXIT_CODES_HELP = `EXIT CODES
  0  done
  2  usage or config error
  3  refused: a downgrade, a skipped minor or an older +k3sN build (nothing printed)`

export interface GenerateResult {
  plans: Plan[]
  target: string
  channel?: string
  followsChannel: boolean
  clusterChecked: boolean
  warnings: string[]
  out?: string
}

export default class PlanGenerate extends HomelabCommand<typeof PlanGenerate> {
  static override summary = 'Write system-upgrade-controller Plans for a k3s or rke2 upgrade'
  static override description = `Writes upgrade.cattle.io/v1 Plans as YAML, in upgrade order: a server plan (control-plane nodes, one at a time, cordoned) and an agent plan (nodes with no server label, drained with the drain settings of homelab.yaml, after the servers). When the cluster has etcd-only servers (etcd label, no control-plane label), an etcd plan comes first (those, one at a time, cordoned) and the server plan waits for it. A channel is resolved now and pinned unless --follow-channel.

When a kubeconfig is reachable (or with --check-cluster), the live nodes are read first: their labels decide whether an etcd plan is needed, and a downgrade, a skipped minor or an older +k3sN build is refused. --offline skips the cluster: then there is no etcd plan, and the agent plan still leaves etcd nodes alone.

${PLAN_EXIT_CODES_HELP}`
  static override examples = [
    '<%= config.bin %> k8s plan generate --to v1.31.5+k3s1',
    '<%= config.bin %> k8s plan generate --to stable --out plans.yaml',
    '<%= config.bin %> k8s plan generate --to v1.31 --follow-channel --window days=sat,sun,start=01:00,end=05:00,tz=Europe/Berlin',
    '<%= config.bin %> k8s plan generate --to v1.31.3+rke2r1 --distribution rke2 --image registry.lan/rancher/rke2-upgrade --image-pull-secret regcred',
  ]
  static override flags = {
    ...planFlags,
    to: Flags.string({description: TO_DESCRIPTION, required: true}),
    out: Flags.string({char: 'o', description: 'write the YAML to this file instead of stdout'}),
  }

  async run(): Promise<GenerateResult> {
    const {flags} = this
    const context = await planContext(flags)
    const generated = await generatePlans({config: context.config, kube: context.kube}, generateRequest(flags, flags.to))
    for (const warning of generated.warnings) this.logToStderr(`warning: ${warning}`)
    if (flags.out) {
      try {
        await writeFile(flags.out, generated.yaml)
      } catch (error) {
        throw new UsageError(`cannot write ${flags.out}: ${(error as Error).message}`, {cause: error, hint: 'pass --out a writable path, or leave it out to print to stdout'})
      }
      if (!this.jsonEnabled()) this.logToStderr(`wrote ${listNames(generated.plans.map((p) => p.metadata.name))} to ${flags.out}`)
    } else if (!this.jsonEnabled()) {
      process.stdout.write(generated.yaml)
    }
    return toResult(generated, flags.out)
  }
}

/** `a and b`, `a, b and c`. */
function listNames(names: readonly string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`
}

function toResult(generated: GeneratedPlans, out?: string): GenerateResult {
  const {target} = generated
  return {
    plans: generated.plans,
    target: (target.kind === 'version' ? target.version : target.resolved).format(),
    channel: target.kind === 'channel' ? target.url : target.channel,
    followsChannel: target.kind === 'channel',
    clusterChecked: generated.check !== undefined,
    warnings: generated.warnings,
    out,
  }
}
