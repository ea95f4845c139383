import {Command, Flags, Interfaces} from '@oclif/core'

import {HomelabError, isHomelabError, UsageError} from '../../src/errors.js'

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
    let parsed
    try {
      parsed = await this.parse({
        flags: this.ctor.flags,
        baseFlags: (super.ctor as typeof HomelabCommand).baseFlags,
        enableJsonFlag: this.ctor.enableJsonFlag,
        args: this.ctor.args,
        strict: this.ctor.strict,
      })
    } catch (error) {
      // Whatever the parser refuses is a usage error (exit 2), including the refusals oclif
      // throws as plain CLIErrors ("can only be specified once", "expects a value"). The input
      // was read and refused: no "did not parse its arguments" warning in development.
      this.parsed = true
      throw isHomelabError(error) ? error : this.parseFailure(error)
    }
    this.flags = parsed.flags as BaseFlags<T>
  }

  /** An oclif parse error as one UsageError: its reasons on one line, and where the help is. */
  protected parseFailure(error: unknown): UsageError {
    const text = error instanceof Error ? error.message : String(error)
    const lines = text
      .split('\n')
      .map((line) => line.trim())
      // Flag-relationship errors put a header line before the reasons; every kind ends with "See more help".
      .filter((line) => line && !/^The following errors? occurred:?$/i.test(line) && !line.startsWith('See more help'))
    // A flag's own parser failing reads "Parsing --concurrency" then the reason.
    const flag = /^Parsing (--\S+)$/.exec(lines[0] ?? '')
    const message = flag && lines.length > 1 ? `${flag[1]}: ${lines.slice(1).join('; ')}` : lines.join('; ') || text.trim()
    return new UsageError(message, {cause: error, hint: `see ${this.config.bin} ${this.id?.replaceAll(':', ' ') ?? ''} --help`})
  }

  protected override async catch(error: Error & {exitCode?: number}): Promise<unknown> {
    // A command that parses again in run() (oclif's own parse errors carry `parse`).
    if (!isHomelabError(error) && 'parse' in error && error.message) error = this.parseFailure(error)
    if (error instanceof HomelabError) {
      if (this.jsonEnabled()) {
        this.logJson({error: {type: error.name, message: error.message, hint: error.hint, exitCode: error.exitCode}})
      } else {
        this.logToStderr(`homelab: ${error.oneLine()}`)
      }
      process.exitCode = error.exitCode
      return undefined
    }
    return super.catch(error)
  }
}
