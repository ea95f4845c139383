import {Flags} from '@oclif/core'

/** The flags that describe the plans; `generate` and `apply` (without --file) share them. */
export const TO_DESCRIPTION = 'target: a version (v1.32.0+k3s1) or a channel (stable, latest, v1.31), resolved now and pinned'

export const planFlags = {
  'follow-channel': Flags.boolean({description: 'write the channel URL (spec.channel) so the controller follows it, instead of pinning today\'s version'}),
  distribution: Flags.option({options: ['k3s', 'rke2'] as const, description: 'default: distribution in homelab.yaml, else k3s'})(),
  namespace: Flags.string({description: 'the controller\'s namespace, where the plans must live', default: 'system-upgrade'}),
  'name-prefix': Flags.string({description: 'plan names are <prefix>etcd, <prefix>server and <prefix>agent (default: "<distribution>-")'}),
  'agent-concurrency': Flags.integer({description: 'agents upgraded at once (default: upgrade.agentConcurrency)', min: 1}),
  image: Flags.string({description: 'upgrade image repository without tag, e.g. a private registry\'s copy (default: rancher/k3s-upgrade or rancher/rke2-upgrade)'}),
  'image-pull-secret': Flags.string({description: 'imagePullSecret for the upgrade pods (repeatable)', multiple: true}),
  window: Flags.string({description: 'only start upgrades in this window: days=sat,sun,start=01:00,end=05:00,tz=Europe/Berlin'}),
  'server-selector': Flags.string({description: 'nodes of the server plan, label selector syntax (default: node-role.kubernetes.io/control-plane in (true))'}),
  'agent-selector': Flags.string({description: 'nodes of the agent plan, label selector syntax (default: !node-role.kubernetes.io/control-plane,!node-role.kubernetes.io/etcd)'}),
  'cordon-only': Flags.boolean({description: 'cordon agents without draining them'}),
  tolerations: Flags.string({description: 'taints the upgrade pods tolerate: key[=value][:Effect], comma-separated, repeatable (e.g. node-role.kubernetes.io/control-plane:NoSchedule)', multiple: true}),
  'check-cluster': Flags.boolean({description: 'the version checks against the live nodes must run (fail without a reachable cluster)', exclusive: ['offline']}),
  offline: Flags.boolean({description: 'do not ask the cluster; skip the version checks', exclusive: ['check-cluster']}),
}

export interface PlanFlagValues {
  to?: string
  'follow-channel': boolean
  distribution?: 'k3s' | 'rke2'
  namespace: string
  'name-prefix'?: string
  'agent-concurrency'?: number
  image?: string
  'image-pull-secret'?: string[]
  window?: string
  'server-selector'?: string
  'agent-selector'?: string
  'cordon-only': boolean
  tolerations?: string[]
  'check-cluster': boolean
  offline: boolean
}
