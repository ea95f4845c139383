import {Command, Flags, Interfaces} from '@oclif/core'

import {ExitCode, HomelabError} from '../../src/errors.js'

export type BaseFlags<T extends typeof Command> = Interfaces.InferredFlags<(typeof HomelabCommand)['baseFlags'] & T['flags']>

/**
 * What every command shares: the cluster file and kubeconfig flags, and one way of turning a
 * typed error into a one-line message (or a JSON error object) plus its documented exit code.
 */
export abstract class HomelabCommand<T extends typeof Command> extends Command {
  static override baseFlags = {
    config: Flags.string({
      char: 'c',
      description: 'cluster file (default: $HOMELAB_CONFIG, ./homelab.yaml, $XDG_CONFIG_HOME/homelab/homelab.yaml)',
      helpGroup: 'GLOBAL',
    }),
    kubeconfig: Flags.string({description: 'kubeconfig file (default: homelab.yaml, $KUBECONFIG, ~/.kube/config)', helpGroup: 'GLOBAL'}),
    context: Flags.string({description: 'kubeconfig context to use', helpGroup: 'GLOBAL'}),
  }

  static override enableJsonFlag = true

  protected flags!: BaseFlags<T>

  public override async init(): Promise<void> {
    await super.init()
    const {flags} = await this.parse({
      flags: this.ctor.flags,
      baseFlags: (super.ctor as typeof HomelabCommand).baseFlags,
      enableJsonFlag: this.ctor.enableJsonFlag,
      args: this.ctor.args,
      strict: this.ctor.strict,
    })
    this.flags = flags as BaseFlags<T>
  }

  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    if (error instanceof HomelabError) {
      if (this.jsonEnabled()) {
        this.logJson({error: {type: error.name, message: error.message, hint: error.hint, exitCode: error.exitCode}})
      } else {
        this.logToStderr(`homelab: ${error.oneLine()}`)
      }
      process.exitCode = error.exitCode
      return undefined
    }
    // oclif's own parse errors (unknown flag, bad value) carry `parse`; print one line, not the usage.
    if ('parse' in error && error.message) {
      // Flag-relationship errors put a header line before the reasons; keep the reasons, on one line.
      const reasons = error.message
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line && !/^The following errors? occurred:?$/i.test(line) && !line.startsWith('See more help'))
      this.logToStderr(`homelab: ${reasons.join('; ') || error.message.trim()} (fix: see ${this.config.bin} ${this.id?.replaceAll(':', ' ') ?? ''} --help)`)
      process.exitCode = ExitCode.usage
      return undefined
    }
    return super.catch(error)
  }
}
