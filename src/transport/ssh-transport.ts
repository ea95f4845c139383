import {commandFailure} from './command-failure.js'
import {SshAuth} from './ssh-auth.js'
import {closeConnection, openConnection, type Connection} from './ssh-connection.js'
import {abortReason, sshContext, type SshContext, type SshTransportOptions} from './ssh-context.js'
import {displayCommand, runCommand} from './ssh-exec.js'
import {assertReadable, copyOverSftp} from './ssh-sftp.js'
import {SessionLimit} from './ssh-session-limit.js'
import type {ExecOptions, ExecResult, PutFileOptions, Transport} from './types.js'

// The transport's vocabulary stays importable from here; the parts live in the modules above.
export type {Become, SshTransportEvent, SshTransportOptions} from './ssh-context.js'
export {hostKeyAlgorithms} from './ssh-host-key.js'
export {displayCommand, killCommandLine, remoteCommandLine} from './ssh-exec.js'
export {sudoHint} from './command-failure.js'

/**
 * A node over SSH: one connection, dialled on first use and shared by every command and copy
 * (at most maxSessions channels at once), dialled again after it was lost.
 */
export class SshTransport implements Transport {
  readonly node: string
  private readonly options: SshTransportOptions
  private readonly ctx: SshContext
  private readonly auth: SshAuth
  private connection?: Connection
  private connecting?: Promise<Connection>
  private readonly sessions: SessionLimit
  private closedByUser = false

  constructor(options: SshTransportOptions) {
    this.options = options
    this.node = options.node
    this.ctx = sshContext(options)
    this.auth = new SshAuth(this.ctx)
    this.sessions = new SessionLimit(options.maxSessions ?? 8)
  }

  /** `user@host:port`, via hops, for messages. */
  describe(): string {
    const t = this.options.target
    const hops = t.proxyJump.map((h) => `${h.user}@${h.host}:${h.port}`)
    return `${t.user}@${t.host}:${t.port}${hops.length > 0 ? ` via ${hops.join(' -> ')}` : ''}`
  }

  async exec(argv: readonly string[], options: ExecOptions = {}): Promise<ExecResult> {
    const command = displayCommand(argv, options.privileged === true, this.ctx.become)
    const signal = options.signal
    if (signal?.aborted) throw abortReason(signal, command)
    return this.sessions.use(async () => {
      const conn = await this.connect(signal)
      return runCommand(this.ctx, conn, argv, command, options)
    }, signal)
  }

  async run(argv: readonly string[], options: ExecOptions = {}): Promise<string> {
    const result = await this.exec(argv, options)
    if (result.exitCode === 0) return result.stdout
    throw commandFailure(this.node, argv, result, options.privileged && this.ctx.become === 'sudo' ? this.options.target.user : undefined)
  }

  async putFile(source: string | Buffer, remotePath: string, options: PutFileOptions = {}): Promise<void> {
    const signal = options.signal
    if (signal?.aborted) throw abortReason(signal, `copy to ${remotePath}`)
    if (typeof source === 'string') await assertReadable(source)
    await this.sessions.use(async () => {
      const conn = await this.connect(signal)
      await copyOverSftp(this.ctx, conn, source, remotePath, options)
    }, signal)
  }

  async close(): Promise<void> {
    this.closedByUser = true
    const pending = this.connecting
    this.connecting = undefined
    const conn = this.connection ?? (await pending?.catch(() => undefined))
    this.connection = undefined
    if (conn) await closeConnection(conn)
    this.closedByUser = false
  }

  /** The open connection, or the one attempt under way that every caller shares. */
  private async connect(signal?: AbortSignal): Promise<Connection> {
    if (this.connection && !this.connection.closed) return this.connection
    if (!this.connecting) {
      const attempt = this.open().then(
        (conn) => {
          if (this.connecting === attempt) this.connecting = undefined
          this.connection = conn
          return conn
        },
        (error) => {
          if (this.connecting === attempt) this.connecting = undefined
          throw error
        },
      )
      this.connecting = attempt
      // Nobody may be waiting when it fails (all callers aborted): keep that from crashing.
      attempt.catch(() => {})
    }
    const connecting = this.connecting
    if (!signal) return connecting
    // A caller's abort stops its own wait; the shared attempt stays bounded by its timeout.
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortReason(signal, `connecting to ${this.node}`))
      if (signal.aborted) return onAbort()
      signal.addEventListener('abort', onAbort, {once: true})
      connecting.then(
        (c) => {
          signal.removeEventListener('abort', onAbort)
          resolve(c)
        },
        (e) => {
          signal.removeEventListener('abort', onAbort)
          reject(e)
        },
      )
    })
  }

  private open(): Promise<Connection> {
    return openConnection(this.ctx, this.auth, (conn, reason) => {
      if (this.connection === conn) this.connection = undefined
      // close() ends the connection on purpose: that is no news for the observer.
      if (!this.closedByUser) this.ctx.emit({type: 'disconnected', node: this.node, reason})
    })
  }
}
