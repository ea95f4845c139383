/**
 * The system-upgrade-controller's Plan (`upgrade.cattle.io/v1`), typed after upstream's
 * pkg/apis/upgrade.cattle.io/v1/types.go. Field names are the wire names: the container's
 * environment is `envs` (not `env`), the node selector is a metav1.LabelSelector.
 */

export const PLAN_GROUP = 'upgrade.cattle.io'
export const PLAN_VERSION = 'v1'
export const PLAN_API_VERSION = `${PLAN_GROUP}/${PLAN_VERSION}` as const
export const PLAN_KIND = 'Plan'
export const PLAN_PLURAL = 'plans'
export const PLAN_CRD_NAME = `${PLAN_PLURAL}.${PLAN_GROUP}`

/** Where the controller runs and where Plans must live (the release manifest's choice). */
export const DEFAULT_NAMESPACE = 'system-upgrade'
export const DEFAULT_SERVICE_ACCOUNT = 'system-upgrade'
export const CONTROLLER_DEPLOYMENT = 'system-upgrade-controller'

/** Labels the controller puts on its Jobs and their pods. */
export const LABEL_CONTROLLER = `${PLAN_GROUP}/controller`
export const LABEL_NODE = `${PLAN_GROUP}/node`
export const LABEL_PLAN = `${PLAN_GROUP}/plan`
export const LABEL_VERSION = `${PLAN_GROUP}/version`

/** `plan.upgrade.cattle.io/<plan>`: on a node, the latestHash of the plan that finished there. */
export function planNodeLabel(plan: string): string {
  return `plan.${PLAN_GROUP}/${plan}`
}

/** The label value that opts a node out of a plan. */
export const PLAN_DISABLED = 'disabled'

/** Our own marks on the Plans we write, so `status` finds them and nothing else. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by'
export const MANAGED_BY = 'homelab'
export const PLAN_ROLE_LABEL = 'homelab.dev/plan-role'
/** The plans we write, in the order they upgrade: etcd-only servers, control-plane servers, agents. */
export const PLAN_ROLES = ['etcd', 'server', 'agent'] as const
export type PlanRole = (typeof PLAN_ROLES)[number]

export function isPlanRole(value: unknown): value is PlanRole {
  return (PLAN_ROLES as readonly unknown[]).includes(value)
}

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist'

export interface LabelSelectorRequirement {
  key: string
  operator: SelectorOperator
  values?: string[]
}

export interface LabelSelector {
  matchLabels?: Record<string, string>
  matchExpressions?: LabelSelectorRequirement[]
}

export interface EnvVar {
  name: string
  value?: string
}

export interface VolumeSpec {
  name: string
  source: string
  destination: string
}

export interface ContainerSpec {
  /** Without a tag: the controller appends status.latestVersion (with `-` for `+`). */
  image: string
  command?: string[]
  args?: string[]
  envs?: EnvVar[]
  volumes?: VolumeSpec[]
}

/** kubectl drain's options as the controller passes them on. */
export interface DrainSpec {
  /** A Go duration string (`5m`), passed to `kubectl drain --timeout`. */
  timeout?: string
  gracePeriod?: number
  deleteEmptydirData?: boolean
  ignoreDaemonSets?: boolean
  force?: boolean
  disableEviction?: boolean
  skipWaitForDeleteTimeout?: number
  podSelector?: LabelSelector
}

export type TaintEffect = 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute'

export interface Toleration {
  key?: string
  operator?: 'Exists' | 'Equal'
  value?: string
  effect?: TaintEffect
}

/** The day names the CRD's enum allows. */
export const WINDOW_DAYS = [
  'su', 'sun', 'sunday', 'mo', 'mon', 'monday', 'tu', 'tue', 'tuesday', 'we', 'wed', 'wednesday',
  'th', 'thu', 'thursday', 'fr', 'fri', 'friday', 'sa', 'sat', 'saturday', '0', '1', '2', '3', '4', '5', '6',
] as const
export type WindowDay = (typeof WINDOW_DAYS)[number]

export interface TimeWindowSpec {
  days: WindowDay[]
  startTime: string
  endTime: string
  timeZone?: string
}

export interface PlanSpec {
  /** At least 1: with 0 the controller never creates a Job. */
  concurrency: number
  nodeSelector: LabelSelector
  serviceAccountName: string
  /** Exactly one of version and channel. */
  version?: string
  channel?: string
  tolerations?: Toleration[]
  window?: TimeWindowSpec
  prepare?: ContainerSpec
  upgrade: ContainerSpec
  cordon?: boolean
  drain?: DrainSpec
  imagePullSecrets?: Array<{name: string}>
}

export type ConditionStatus = 'True' | 'False' | 'Unknown'

export interface PlanCondition {
  type: string
  status: ConditionStatus
  reason?: string
  message?: string
  lastUpdateTime?: string
  lastTransitionTime?: string
}

export interface PlanStatus {
  conditions?: PlanCondition[]
  /** As the controller writes it: `+` replaced by `-`. */
  latestVersion?: string
  latestHash?: string
  applying?: string[]
}

export interface Plan {
  apiVersion: typeof PLAN_API_VERSION
  kind: typeof PLAN_KIND
  metadata: {
    name: string
    namespace: string
    labels?: Record<string, string>
    resourceVersion?: string
    uid?: string
    generation?: number
  }
  spec: PlanSpec
  status?: PlanStatus
}
