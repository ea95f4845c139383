import {setMaxListeners} from 'node:events'

import {Args, Flags} from '@oclif/core'

import {ExitCode, UsageError} from '../../src/errors.js'
import {openSession} from '../../src/session.js'
import {runRollback, type UpgradeResult} from '../../src/upgrade/run-upgrade.js'
import {HomelabCommand} from '../_cli/base-command.js'
import {terminalPassphrasePrompt} from '../_cli/passphrase.js'
import {eventSink, renderResult} from '../_cli/upgrade-output.js'
import {EXIT_CODES_HELP} from './upgrade.js'

export default class Rollback extends HomelabCommand<typeof Rollback> {
  static override summary = 'Undo a failed, stopped or interrupted upgrade run from its journal'
  static override description = `Runs the compensations the run recorded, newest first: previous k3s binaries back and restarted, our cordons lifted, the pre-upgrade Velero backup restored.

${EXIT_CODES_HELP}`
  static override args = {id: Args.string({description: 'run id (default: the newest run that can be rolled back)'})}
  static override flags = {
    yes: Flags.boolean({char: 'y', description: 'do not ask for confirmation'}),
    'log-format': Flags.option({options: ['text', 'json'] as const, default: 'text', description: 'json: stream NDJSON events to stderr'})(),
    'accept-new-host-keys': Flags.boolean({description: 'trust and record host keys not yet in known_hosts'}),
  }

  async run(): Promise<UpgradeResult> {
    const {args, flags} = await this.parse(Rollback)
    const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY) && process.env.CI !== 'true'
    if (!flags.yes && !interactive) throw new UsageError('refusing to roll back without confirmation (no TTY or CI=true)', {hint: 'pass --yes'})
    const controller = new AbortController()
    setMaxListeners(0, controller.signal)
    const onSigint = () => controller.abort()
    process.on('SIGINT', onSigint)
    const session = await openSession({configPath: this.flags.config, kubeconfig: this.flags.kubeconfig, context: this.flags.context, askPassphrase: terminalPassphrasePrompt(),
      acceptNewHostKeys: flags['accept-new-host-keys'], signal: controller.signal})
    const sink = eventSink({json: this.jsonEnabled(), logFormat: flags['log-format'], tty: false, concurrency: 1, log: (l) => this.log(l), logToStderr: (l) => this.logToStderr(l)})
    try {
      const result = await runRollback({...session.upgradeDeps(), signal: controller.signal, onEvent: sink.onEvent}, args.id)
      if (!this.jsonEnabled()) this.log(renderResult(result))
      process.exitCode = result.exitCode === ExitCode.ok ? ExitCode.ok : result.exitCode
      return result
    } finally {
      process.off('SIGINT', onSigint)
      await session.close()
    }
  }
}
