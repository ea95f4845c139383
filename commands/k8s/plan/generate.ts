import {writeFile} from 'node:fs/promises'

import {Flags} from '@oclif/core'

import {HomelabError, UsageError} from '../../../src/errors.js'
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

When a kubeconfig is reachable (or with --check-cluster), the live nodes are read first: their labels decide whether an etcd plan is needed, and a downgrade, a skipped minor or an older +k3sN build is refused. --offline asks nothing over the network: not the cluster (then there is no etcd plan, and the agent plan still leaves etcd nodes alone) and not the channel server (a channel needs --follow-channel then; it is written as its URL, unresolved).

${PLAN_EXIT_CODES_HELP}`
  static override examples = [
    '<%= config.bin %> k8s plan generate --to v1.31.5+k3s1',
    '<%= config.bin %> k8s plan generate --to stable --out plans.yaml',
    '<%= config.bin %> k8s plan generate --to v1.31 --follow-channel --window days=sat,sun,start=01:00,end=05:00,tz=Europe/Berlin',
    '<%= config.bin %> k8s plan generate --to v1.31.3+rke2r1 --distribution rke2 --image registry.lan/rancher/rke2-upgrade --image-pull-secret regcred',
  ]
  static override flags = {
    ...planFlags,
    offline: Flags.boolean({description: 'no network: do not ask the cluster (no version checks) nor the channel server (a channel needs --follow-channel)', exclusive: ['check-cluster']}),
    to: Flags.string({description: TO_DESCRIPTION, required: true}),
    out: Flags.string({char: 'o', description: 'write the YAML to this file instead of stdout'}),
  }

  async run(): Promise<GenerateResult> {
    const {flags} = this
    const context = await planContext(flags)
    // --offline: no network at all. Nothing below gets a way to the cluster, and the channel
    // server's fetch refuses, so a request that would still go out fails instead of leaving.
    const deps = flags.offline ? {config: context.config, fetch: refuseNetwork} : {config: context.config, kube: context.kube}
    const generated = await generatePlans(deps, {...generateRequest(flags, flags.to), offline: flags.offline})
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

const refuseNetwork: typeof fetch = async (input) => {
  throw new HomelabError(`--offline, yet ${input instanceof Request ? input.url : String(input)} was about to be asked`, {hint: 'this is a bug in homelab; pass a version with --to meanwhile'})
}

/** `a and b`, `a, b and c`. */
function listNames(names: readonly string[]): string {
  return names.length <= 1 ? names.join('') : `${names.slice(0, -1).join(', ')} and ${names.at(-1)}`
}

function toResult(generated: GeneratedPlans, out?: string): GenerateResult {
  const {target} = generated
  return {
    plans: generated.plans,
    // The version, or (--offline --follow-channel) the channel it was not resolved from.
    target: target.kind === 'version' ? target.version.format() : (target.resolved?.format() ?? target.channel),
    channel: target.kind === 'channel' ? target.url : target.channel,
    followsChannel: target.kind === 'channel',
    clusterChecked: generated.check !== undefined,
    warnings: generated.warnings,
    out,
  }
}
