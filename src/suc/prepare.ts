/**
 * The `prepare` steps that chain our plans, and how to read them back from a Plan.
 *
 * Upstream's: the upgrade images' `prepare <plan>` mode (k3s-io/k3s-upgrade and
 * rancher/rke2-upgrade, scripts/upgrade.sh). It waits until that plan exists and has
 * `status.applying` empty, and then until EVERY node labelled
 * `node-role.kubernetes.io/control-plane` (rke2-upgrade: `…/master`) runs this plan's
 * `SYSTEM_UPGRADE_PLAN_LATEST_VERSION`. It never looks at the nodes the named plan selects.
 * That is right for the agent plan waiting for the server plan, and wrong for the server plan
 * waiting for the etcd plan: the control-plane nodes it waits for are the very nodes the waiting
 * server plan is to upgrade, so its first Job would wait for itself for ever (and the etcd-only
 * nodes, the ones that matter there, are never looked at).
 *
 * Ours, for the server plan behind an etcd plan: a short POSIX script run by the same upgrade
 * image (alpine: sh and jq; kubectl as `/opt/k3s kubectl` in k3s-upgrade, `kubectl` in
 * rke2-upgrade), which waits until the named plan has resolved this version and applies
 * nowhere, and every node the plan selects (but those opted out with `=disabled`) is Ready and
 * runs this version. No such node at all is no reason to wait: the plan then has nothing to do.
 */
import {formatLabelSelector} from './syntax.js'
import {type ContainerSpec, type LabelSelector, type PlanSpec, planNodeLabel, PLAN_DISABLED} from './types.js'

/** `$0` of our script: what tells a reader (and the simulated controller) what the step is. */
export const WAIT_FOR_PLAN = 'homelab-wait-for-plan'

/**
 * Arguments: $1 the plan to wait for, $2 its namespace, $3 the label selector (kubectl syntax)
 * of the nodes it must have upgraded. The version is the controller's own
 * SYSTEM_UPGRADE_PLAN_LATEST_VERSION (`-` for `+`), as upstream's prepare uses it.
 */
export const WAIT_FOR_PLAN_SCRIPT = `plan="$1" namespace="$2" selector="$3"
want="$SYSTEM_UPGRADE_PLAN_LATEST_VERSION"
if [ -x /opt/k3s ]; then kubectl() { /opt/k3s kubectl "$@"; }; fi
while true; do
  if ! doc=$(kubectl -n "$namespace" get plan "$plan" -o json); then
    echo "waiting for plan $plan to exist"
  elif [ "$(printf '%s' "$doc" | jq -r '.status.latestVersion // ""')" != "$want" ]; then
    echo "waiting for plan $plan to resolve $want"
  elif [ "$(printf '%s' "$doc" | jq '.status.applying // [] | length')" != 0 ]; then
    echo "waiting for plan $plan: applying on $(printf '%s' "$doc" | jq -r '.status.applying | join(" ")')"
  elif ! nodes=$(kubectl get nodes -l "$selector" -o json); then
    echo "waiting: cannot list the nodes of plan $plan"
  elif behind=$(printf '%s' "$nodes" | jq -r --arg want "$want" '.items[] | select(((.status.nodeInfo.kubeletVersion // "") | gsub("[+]"; "-")) != $want or ([.status.conditions[]? | select(.type == "Ready" and .status == "True")] | length) == 0) | .metadata.name') && [ -z "$behind" ]; then
    echo "plan $plan is done: its nodes run $want"
    exit 0
  else
    echo "waiting for the nodes of plan $plan to run $want:" $behind
  fi
  sleep 5
done
`

/** The docs' chain: the upgrade image's own `prepare <plan>` (waits for the control-plane nodes). */
export function upstreamPrepare(image: string, plan: string): ContainerSpec {
  return {image, args: ['prepare', plan]}
}

/** Waits for `plan` to have upgraded the nodes `selector` picks (see the file's comment). */
export function waitForPlanPrepare(image: string, plan: {name: string; namespace: string; nodeSelector: LabelSelector}): ContainerSpec {
  const selector = `${formatLabelSelector(plan.nodeSelector)},${planNodeLabel(plan.name)}!=${PLAN_DISABLED}`
  return {image, command: ['/bin/sh', '-c'], args: [WAIT_FOR_PLAN_SCRIPT, WAIT_FOR_PLAN, plan.name, plan.namespace, selector]}
}

/**
 * What a plan's prepare step waits for, if it is one of the two above:
 * - `control-plane`: upstream's, for plan `plan` and then every control-plane node;
 * - `selector`: ours, for plan `plan` and then the nodes `selector` picks.
 */
export type PrepareWait = {kind: 'control-plane'; plan: string} | {kind: 'selector'; plan: string; namespace: string; selector: string}

export function prepareWaitOf(spec: Pick<PlanSpec, 'prepare'>): PrepareWait | undefined {
  const args = spec.prepare?.args ?? []
  if (!spec.prepare?.command && args[0] === 'prepare' && args[1]) return {kind: 'control-plane', plan: args[1]}
  if (args[1] === WAIT_FOR_PLAN && args[2]) return {kind: 'selector', plan: args[2], namespace: args[3] ?? '', selector: args[4] ?? ''}
  return undefined
}
