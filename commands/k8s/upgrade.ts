import {setMaxListeners} from 'node:events'

import {Flags} from '@oclif/core'

import {parseDuration} from '../../src/duration.js'
import {ExitCode, UsageError} from '../../src/errors.js'
import {openSession} from '../../src/session.js'
import {Notifier} from '../../src/notify/notifier.js'
import {upgradeNotifications} from '../../src/notify/upgrade-notifications.js'
import {runUpgrade, type UpgradeEvent, type UpgradeResult} from '../../src/upgrade/run-upgrade.js'
import type {UpgradePlan} from '../../src/upgrade/types.js'
import {HomelabCommand} from '../_cli/base-command.js'
import {terminalPassphrasePrompt} from '../_cli/passphrase.js'
import {confirm, eventSink, renderPlan, renderResult} from '../_cli/upgrade-output.js'

export const EXIT_CODES_HELP = `EXIT CODES
  0    done, or nothing to do
  2    usage or config error
  3    pre-flight refused (nothing changed)
  4    failed and fully compensated
  5    failed and compensation incomplete (manual steps printed)
  6    the cluster lock is held by another run
  130  interrupted (resumable with --resume)`

export default class Upgrade extends HomelabCommand<typeof Upgrade> {
  static override summary = 'Upgrade k3s, rke2 or kubeadm on every node, safely, with backup and undo'
  static override description = `The distribution is distribution: in homelab.yaml, else detected from the nodes' kubelet versions (+k3sN, +rke2rN; plain vX.Y.Z with the kubeadm-config ConfigMap: kubeadm). Pre-flight checks everything first (versions, skew, SSH, sudo, disk, package-owned binaries, .skip manifests, drains, backups, checksums). Then: a Velero backup (and an etcd snapshot), servers one at a time (etcd-only ones first), agents drained and upgraded in parallel under --concurrency. A failure undoes every change in reverse. kubeadm: packages (repository switched per minor), kubeadm upgrade apply on the first control plane, kubeadm upgrade node elsewhere, then kubelet and kubectl; a control plane kubeadm has upgraded is not downgraded (exit 5 with the way back).

${EXIT_CODES_HELP}`
  static override examples = [
    '<%= config.bin %> k8s upgrade --to v1.32.0+k3s1 --dry-run',
    '<%= config.bin %> k8s upgrade --to stable --yes',
    '<%= config.bin %> k8s upgrade --to v1.31.4+rke2r1 --yes',
    '<%= config.bin %> k8s upgrade --resume',
  ]
  static override flags = {
    to: Flags.string({description: 'target: a version (v1.32.0+k3s1, v1.31.4+rke2r1) or a channel (stable, latest, v1.31)', exclusive: ['resume']}),
    'dry-run': Flags.boolean({description: 'run the pre-flight checks, print the plan, change nothing'}),
    yes: Flags.boolean({char: 'y', description: 'do not ask for confirmation (required without a TTY or under CI)'}),
    concurrency: Flags.integer({description: 'agents upgraded at once (default: upgrade.agentConcurrency)', min: 1}),
    'on-failure': Flags.option({options: ['compensate', 'stop'] as const, default: 'compensate', description: 'compensate: undo everything; stop: only uncordon, leave the rest for --resume or rollback'})(),
    'skip-backup': Flags.boolean({description: 'upgrade without a Velero backup or etcd snapshot'}),
    'allow-removed-apis': Flags.boolean({description: 'upgrade although the target no longer serves API versions the cluster still uses (warned instead of refused)'}),
    nodes: Flags.string({description: 'only these nodes (comma-separated names)'}),
    canary: Flags.integer({description: 'upgrade this many agents first (the ones with the fewest pods to evict), soak, then the rest', min: 0}),
    'canary-nodes': Flags.string({description: 'the canary agents by name (comma-separated), instead of --canary N'}),
    soak: Flags.string({description: 'how long the cluster runs with the canaries before the rest (default 5m with a canary): 30s, 5m, 1h'}),
    resume: Flags.string({description: 'resume an interrupted run (the newest, or the run id given)', exclusive: ['to']}),
    'no-hops': Flags.boolean({description: 'refuse a target more than one minor ahead instead of passing through each minor'}),
    'log-format': Flags.option({options: ['text', 'json'] as const, default: 'text', description: 'json: stream NDJSON events to stderr'})(),
    'accept-new-host-keys': Flags.boolean({description: 'trust and record host keys not yet in known_hosts (like OpenSSH accept-new); a changed key is still refused'}),
  }

  /** `--resume` takes an optional run id; oclif flags cannot, so a bare one means "the newest". */
  public override async init(): Promise<void> {
    const index = this.argv.indexOf('--resume')
    if (index >= 0 && (index === this.argv.length - 1 || this.argv[index + 1].startsWith('-'))) this.argv.splice(index + 1, 0, 'latest')
    await super.init()
  }

  async run(): Promise<UpgradeResult> {
    const {flags} = this
    const only = flags.nodes?.split(',').map((n) => n.trim()).filter(Boolean)
    const canaryNodes = flags['canary-nodes']?.split(',').map((n) => n.trim()).filter(Boolean)
    if (canaryNodes && canaryNodes.length === 0) throw new UsageError(`--canary-nodes ${JSON.stringify(flags['canary-nodes'])} names no node`, {hint: 'give agent names separated by commas (--canary-nodes agent-1)'})
    const canary = {count: flags.canary, nodes: canaryNodes, soakMs: flags.soak === undefined ? undefined : parseDuration(flags.soak, '--soak')}
    if (only && only.length === 0) throw new UsageError(`--nodes ${JSON.stringify(flags.nodes)} names no node`, {hint: 'give node names separated by commas (--nodes agent-1,agent-2), or leave --nodes out for every node'})
    if (!flags.to && !flags.resume) throw new UsageError('say where to go: --to <version|channel>, or --resume', {hint: 'e.g. homelab k8s upgrade --to v1.32.0+k3s1 --dry-run'})
    const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY) && process.env.CI !== 'true'
    if (!flags['dry-run'] && !flags.yes && !interactive) {
      throw new UsageError('refusing to change the cluster without confirmation (no TTY or CI=true)', {hint: 'pass --yes, or --dry-run to only see the plan'})
    }

    const controller = new AbortController()
    // One signal is shared by every SSH command and API wait in flight; dozens of listeners is normal.
    setMaxListeners(0, controller.signal)
    let interrupts = 0
    const onSigint = () => {
      interrupts += 1
      if (interrupts > 1) process.exit(ExitCode.interrupted)
      this.logToStderr('homelab: interrupted; finishing or undoing the node action in flight (Ctrl-C again to quit at once)')
      controller.abort()
    }
    process.on('SIGINT', onSigint)
    process.on('SIGTERM', onSigint)

    const session = await openSession({
      configPath: flags.config,
      kubeconfig: flags.kubeconfig,
      context: flags.context,
      askPassphrase: terminalPassphrasePrompt(),
      acceptNewHostKeys: flags['accept-new-host-keys'],
      signal: controller.signal,
    })
    const sink = eventSink({
      json: this.jsonEnabled(),
      logFormat: flags['log-format'],
      tty: Boolean(process.stdout.isTTY),
      concurrency: flags.concurrency ?? session.config.upgrade.agentConcurrency,
      log: (line) => this.log(line),
      logToStderr: (line) => this.logToStderr(line),
    })
    const upgradeDeps = session.upgradeDeps()
    const notifier = new Notifier({targets: session.config.notify, onWarning: (message) => process.stderr.write(`warning: ${message}\n`)})
    const notifications = upgradeNotifications(notifier, upgradeDeps.distribution.name)
    try {
      const request = {
        to: flags.to,
        dryRun: flags['dry-run'],
        noHops: flags['no-hops'],
        only,
        concurrency: flags.concurrency,
        onFailure: flags['on-failure'],
        skipBackup: flags['skip-backup'],
        allowRemovedApis: flags['allow-removed-apis'],
        canary,
        resume: flags.resume === undefined ? undefined : flags.resume === 'latest' ? (true as const) : flags.resume,
      }
      // On a terminal, show the plan and ask before the first change (pre-flight runs once).
      const ask = !flags.yes && !flags['dry-run'] && !request.resume && interactive
      const deps = {
        ...upgradeDeps,
        signal: controller.signal,
        onEvent: (event: UpgradeEvent) => {
          sink.onEvent(event)
          notifications.onEvent(event)
        },
        confirm: ask
          ? async (plan: UpgradePlan, hops: readonly string[]) => {
              await sink.flush()
              this.log(renderPlan(plan))
              if (hops.length > 1) this.log(`then: ${hops.slice(1).join(' → ')}`)
              return confirm('Proceed with the upgrade?')
            }
          : undefined,
      }
      const result = await runUpgrade(deps, request).catch((error: unknown) => {
        // A refusal ends an unattended run too: whoever waits for it hears why.
        notifications.refused(error)
        throw error
      })
      notifications.finish(result)
      await sink.close()
      if (!this.jsonEnabled()) {
        if (result.outcome === 'dry-run') for (const plan of result.plans) this.log(renderPlan(plan))
        if (result.outcome === 'dry-run' && result.hops.length > 1) this.log(`then: ${result.hops.slice(1).join(' → ')} (checked when the cluster gets there)`)
        this.log(renderResult(result))
      }
      process.exitCode = result.exitCode
      return result
    } finally {
      await sink.close()
      await notifier.flush()
      process.off('SIGINT', onSigint)
      process.off('SIGTERM', onSigint)
      await session.close()
    }
  }
}
