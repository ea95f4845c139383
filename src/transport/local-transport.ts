import {copyFile, chmod, stat, writeFile} from 'node:fs/promises'
import type {Readable} from 'node:stream'
import {AbortedError, CommandError, HomelabError, TimeoutError} from '../errors.js'
import {quoteArgv} from './quote.js'
import {commandFailure} from './command-failure.js'
import type {Become} from './ssh-transport.js'
import type {ExecOptions, ExecResult, PutFileOptions, Transport} from './types.js'

export interface LocalTransportOptions {
  /** Node name, for messages. */
  node: string
  /** How privileged commands run. Default sudo (skipped when already root). */
  become?: Become
  /** Environment for commands. Default process.env. */
  env?: Readonly<Record<string, string | undefined>>
  /** Our uid; sudo is not needed as root. Default process.getuid(). */
  uid?: number
  /** After a timeout/abort the command gets TERM, then KILL after this long. Default 2 s. */
  killGraceMs?: number
}

/**
 * The node the CLI runs on: same contract as SSH, without a network in between. Commands run
 * without a shell (argv straight to the kernel), in their own process group so a timeout or
 * cancel stops everything they started.
 */
export class LocalTransport implements Transport {
  readonly node: string
  private readonly options: LocalTransportOptions
  private readonly become: Become

  constructor(options: LocalTransportOptions) {
    this.options = options
    this.node = options.node
    this.become = options.become ?? 'sudo'
  }

  private needsSudo(privileged: boolean | undefined): boolean {
    const uid = this.options.uid ?? process.getuid?.()
    return privileged === true && this.become === 'sudo' && uid !== 0
  }

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    if (argv.length === 0) throw new TypeError('cannot run an empty command')
    const sudo = this.needsSudo(options.privileged)
    const full = sudo ? ['sudo', '-n', '--', ...argv] : [...argv]
    const shown = quoteArgv(full)
    const {signal, timeoutMs} = options
    if (signal?.aborted) throw abortError(signal, shown, this.node)
    const grace = this.options.killGraceMs ?? 2000

    // Loaded on first use: most runs have no local node, and execa is ~70 ms of every command's start-up.
    const {execa} = await import('execa')
    const child = execa(full[0]!, full.slice(1), {
      env: this.options.env ?? process.env,
      extendEnv: false,
      reject: false,
      stripFinalNewline: false,
      detached: true, // its own process group: we stop the command and all it started
      ...(typeof options.stdin === 'string' || Buffer.isBuffer(options.stdin) ? {input: options.stdin} : {}),
      ...(options.stdin === undefined ? {stdin: 'ignore' as const} : {}),
    })
    const stdin = options.stdin
    if (stdin !== undefined && typeof stdin !== 'string' && !Buffer.isBuffer(stdin)) {
      ;(stdin as Readable).pipe(child.stdin!)
    }

    let stopping: HomelabError | undefined
    const timers: NodeJS.Timeout[] = []
    const killGroup = (sig: NodeJS.Signals) => {
      const pid = child.pid
      if (pid === undefined) return
      if (sudo) {
        // The command runs as root: only root may signal it.
        execa('sudo', ['-n', '--', '/bin/sh', '-c', `kill -s ${sig.replace(/^SIG/, '')} -- -"$1"`, 'homelab-kill', String(pid)], {reject: false, stdin: 'ignore'}).catch(() => {})
      }
      try {
        process.kill(-pid, sig)
      } catch {
        // gone already, or not ours to signal
      }
    }
    const stop = (error: HomelabError) => {
      if (stopping) return
      stopping = error
      killGroup('SIGTERM')
      timers.push(setTimeout(() => killGroup('SIGKILL'), grace))
    }
    const onAbort = () => stop(abortError(signal, shown, this.node))
    if (timeoutMs !== undefined) {
      timers.push(
        setTimeout(
          () =>
            stop(
              new TimeoutError(`${this.node}: \`${shown}\` did not finish within ${timeoutMs} ms; it was stopped`, {
                hint: 'the machine may be overloaded or the command stuck; run it by hand to see, or raise the timeout',
              }),
            ),
          timeoutMs,
        ),
      )
    }
    signal?.addEventListener('abort', onAbort, {once: true})
    try {
      const result = await child
      if (stopping) throw stopping
      const code = (result as {code?: string}).code
      if (result.exitCode === undefined && code === 'ENOENT') {
        // As a shell would report it, so callers see the same thing locally and over SSH.
        return {stdout: '', stderr: `${full[0]}: not found\n`, exitCode: 127}
      }
      if (result.exitCode === undefined && result.signal === undefined) {
        throw new CommandError(`${this.node}: cannot run \`${shown}\`: ${result.shortMessage ?? result.message}`, null, '', {
          hint: `check that ${full[0]} exists and is executable`,
        })
      }
      return {
        stdout: String(result.stdout ?? ''),
        stderr: String(result.stderr ?? ''),
        exitCode: result.exitCode ?? null,
      }
    } finally {
      for (const t of timers) clearTimeout(t)
      signal?.removeEventListener('abort', onAbort)
    }
  }

  async run(argv: readonly string[], options: ExecOptions = {}): Promise<string> {
    const result = await this.exec(argv, options)
    if (result.exitCode === 0) return result.stdout
    throw commandFailure(this.node, argv, result, this.needsSudo(options.privileged) ? (process.env.USER ?? 'this user') : undefined)
  }

  async putFile(source: string | Buffer, remotePath: string, options: PutFileOptions = {}): Promise<void> {
    const {signal, mode} = options
    if (signal?.aborted) throw abortError(signal, `copy to ${remotePath}`, this.node)
    try {
      if (typeof source === 'string') await copyFile(source, remotePath)
      else await writeFile(remotePath, source, {signal})
      // The umask applies on create; the caller asked for this exact mode.
      if (mode !== undefined) await chmod(remotePath, mode)
      options.onProgress?.((await stat(remotePath)).size)
    } catch (error) {
      if (signal?.aborted) throw abortError(signal, `copy to ${remotePath}`, this.node)
      const e = error as NodeJS.ErrnoException
      throw new HomelabError(`${this.node}: cannot write ${remotePath}: ${e.code ?? e.message}`, {
        cause: error,
        hint:
          e.code === 'EACCES' || e.code === 'EPERM'
            ? 'copy to a directory this user owns, then move it into place with a privileged command'
            : `check that ${typeof source === 'string' ? `${source} exists and ` : ''}the directory of ${remotePath} exists`,
      })
    }
  }

  async close(): Promise<void> {
    // Nothing is held open between commands.
  }
}

function abortError(signal: AbortSignal | undefined, what: string, node: string): AbortedError {
  const reason = signal?.reason
  return reason instanceof AbortedError ? reason : new AbortedError(`cancelled: \`${what}\` on ${node}`, {cause: reason})
}
