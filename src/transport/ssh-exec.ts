import {randomBytes} from 'node:crypto'
import type {ClientChannel} from 'ssh2'
import {CommandError, HomelabError, TimeoutError} from '../errors.js'
import {quoteArg, quoteArgv} from './quote.js'
import {connectionLost, openChannel, safe, type Connection} from './ssh-connection.js'
import {abortReason, type Become, type SshContext} from './ssh-context.js'
import type {ExecOptions, ExecResult} from './types.js'

/** The command as the user would type it; privileged commands go through `sudo -n --`. */
export function displayCommand(argv: readonly string[], privileged: boolean, become: Become): string {
  // -n: fail at once ("a password is required") instead of waiting for a password nobody types.
  return privileged && become === 'sudo' ? `sudo -n -- ${quoteArgv(argv)}` : quoteArgv(argv)
}

/**
 * What is sent to sshd for one command. A small sh wrapper replaces the login shell (`exec`,
 * so it leads the session's process group) and first writes `<marker><pid>` on stderr, which
 * the transport strips. With that pid a timeout or cancel can stop the whole group from a
 * second channel: sshd refuses "signal" requests for root logins (no privilege separation
 * after auth), and closing a channel without a pty does not stop the command.
 */
export function remoteCommandLine(argv: readonly string[], privileged: boolean, become: Become, marker: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(marker)) throw new TypeError('marker must be a plain word')
  const inner = privileged && become === 'sudo' ? ['sudo', '-n', '--', ...argv] : [...argv]
  return `exec /bin/sh -c ${quoteArg(`echo "${marker}$$" >&2; "$@"`)} homelab ${quoteArgv(inner)}`
}

/** Stops a process group from another channel; through sudo when the command ran as root. */
export function killCommandLine(pid: number, signal: 'TERM' | 'KILL', privileged: boolean, become: Become): string {
  const argv = ['/bin/sh', '-c', `kill -s ${signal} -- -"$1" 2>/dev/null || kill -s ${signal} "$1"`, 'homelab-kill', String(pid)]
  return privileged && become === 'sudo' ? `sudo -n -- ${quoteArgv(argv)}` : quoteArgv(argv)
}

/**
 * Runs one command on its own channel and collects its output and exit code. A timeout or
 * abort sends TERM, then KILL after the grace time, to the remote process group, and gives
 * up on the channel one grace time later.
 */
export async function runCommand(ctx: SshContext, conn: Connection, argv: readonly string[], command: string, options: ExecOptions): Promise<ExecResult> {
  const {signal, timeoutMs} = options
  const privileged = options.privileged === true
  const grace = ctx.options.killGraceMs ?? 2000
  const marker = `homelab-pid-${randomBytes(6).toString('hex')}-`
  const line = remoteCommandLine(argv, privileged, ctx.become, marker)
  const out: Buffer[] = []
  const errOut: Buffer[] = []
  let pid: number | undefined
  let exitCode: number | null | undefined
  let closed = false
  let onClose = () => {}
  const channel = await openChannel<ClientChannel>(ctx.node, conn, (cb) => conn.client.exec(line, cb), command, signal, (ch) => {
    ch.on('data', (chunk: Buffer) => out.push(chunk))
    ch.stderr.on('data', (chunk: Buffer) => {
      errOut.push(chunk)
      if (pid === undefined) pid = findPid(Buffer.concat(errOut).toString('latin1'), marker)
    })
    ch.on('exit', (code: number | null) => {
      exitCode = typeof code === 'number' ? code : null
    })
    ch.on('error', () => {
      // 'close' follows and settles the promise.
    })
    ch.on('close', () => {
      closed = true
      onClose()
    })
  })
  return new Promise<ExecResult>((resolve, reject) => {
    let stopping: HomelabError | undefined
    let killTimer: NodeJS.Timeout | undefined
    let giveUpTimer: NodeJS.Timeout | undefined
    let finished = false

    const cleanup = () => {
      finished = true
      clearTimeout(timer)
      clearTimeout(killTimer)
      clearTimeout(giveUpTimer)
      signal?.removeEventListener('abort', onAbort)
    }
    const kill = (sig: 'TERM' | 'KILL') => {
      // Both ways: the signal request works where sshd allows it, the kill channel elsewhere.
      safe(() => sendSignal(channel, sig))
      if (pid !== undefined && !conn.closed) {
        const line = killCommandLine(pid, sig, privileged, ctx.become)
        safe(() =>
          conn.client.exec(line, (e, killer) => {
            if (e) return
            killer.on('data', () => {})
            killer.stderr.on('data', () => {})
            killer.on('error', () => {})
            killer.end()
          }),
        )
      }
    }
    const stop = (error: HomelabError) => {
      if (stopping || finished) return
      stopping = error
      kill('TERM')
      killTimer = setTimeout(() => {
        kill('KILL')
        safe(() => channel.close())
        giveUpTimer = setTimeout(() => {
          cleanup()
          reject(error)
        }, grace)
      }, grace)
    }
    const onAbort = () => stop(abortReason(signal, `\`${command}\` on ${ctx.node}`))
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () =>
              stop(
                new TimeoutError(`${ctx.node}: \`${command}\` did not finish within ${timeoutMs} ms; it was stopped`, {
                  hint: 'the node may be overloaded or the command stuck; run it by hand to see, or raise the timeout',
                }),
              ),
            timeoutMs,
          )
    if (signal) {
      if (signal.aborted) onAbort()
      else signal.addEventListener('abort', onAbort, {once: true})
    }

    onClose = () => {
      if (finished) return
      cleanup()
      if (stopping) return reject(stopping)
      if (exitCode === undefined && conn.closed) return reject(connectionLost(ctx.node, conn, command))
      resolve({
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: stripMarker(Buffer.concat(errOut).toString('utf8'), marker),
        exitCode: exitCode ?? null,
      })
    }
    if (closed) return onClose()

    const stdin = options.stdin
    if (stdin === undefined) channel.end()
    else if (typeof stdin === 'string' || Buffer.isBuffer(stdin)) channel.end(stdin)
    else {
      stdin.on('error', (e) => stop(new CommandError(`${ctx.node}: reading stdin for \`${command}\` failed: ${e.message}`, null, '', {cause: e})))
      stdin.pipe(channel)
    }
  })
}

/**
 * ssh2's channel.signal() is a no-op once we have sent EOF on stdin, which every command without
 * input does at once; the request itself is valid until the channel closes, so send it directly.
 */
function sendSignal(channel: ClientChannel, name: 'TERM' | 'KILL'): void {
  const c = channel as unknown as {outgoing?: {id: number; state: string}; _client?: {_protocol?: {signal(id: number, s: string): void}}}
  const state = c.outgoing?.state
  if ((state === 'open' || state === 'eof') && c._client?._protocol) c._client._protocol.signal(c.outgoing!.id, name)
}

function findPid(stderr: string, marker: string): number | undefined {
  const match = new RegExp(`(?:^|\\n)${marker}(\\d+)\\n`).exec(stderr)
  return match ? Number(match[1]) : undefined
}

/** Removes the wrapper's one pid line (whatever a login script printed before it stays). */
function stripMarker(stderr: string, marker: string): string {
  return stderr.replace(new RegExp(`(^|\\n)${marker}\\d+\\n`), '$1')
}
