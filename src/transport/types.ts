import type {Readable} from 'node:stream'

/**
 * How the product runs things on a node. One implementation speaks SSH (ssh2), one runs
 * locally (execa) for the node the CLI runs on. Commands are argv arrays; an implementation
 * that needs a shell quotes every element (see quote.ts), so no untrusted string reaches a
 * shell raw.
 */
export interface ExecOptions {
  /** Run through the node's `become` (sudo -n) when it is configured. */
  privileged?: boolean
  stdin?: string | Buffer | Readable
  /** Upper bound for this one command; a timeout kills it and throws TimeoutError. */
  timeoutMs?: number
  signal?: AbortSignal
}

export interface ExecResult {
  stdout: string
  stderr: string
  /** null when the command was killed by a signal. */
  exitCode: number | null
}

export interface PutFileOptions {
  /** File mode of the created file, e.g. 0o755. */
  mode?: number
  signal?: AbortSignal
  /** Bytes written so far, as the copy goes (for progress on big files). */
  onProgress?: (sent: number) => void
}

export interface Transport {
  /** The node's name, for messages. */
  readonly node: string
  /** Resolves with the result whatever the exit code; rejects on connection loss, timeout or abort. */
  exec(argv: readonly string[], options?: ExecOptions): Promise<ExecResult>
  /** Like exec, but a non-zero exit rejects with CommandError naming the node and the command. */
  run(argv: readonly string[], options?: ExecOptions): Promise<string>
  /** Copy bytes to a path on the node (SFTP for SSH). Written as the login user, not privileged. */
  putFile(source: string | Buffer, remotePath: string, options?: PutFileOptions): Promise<void>
  close(): Promise<void>
}
