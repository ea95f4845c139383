import path from 'node:path'

import {CommandError} from '../errors.js'
import type {Transport} from '../transport/types.js'

/** `k3s version v1.31.4+k3s1 (abcdef12)`: the first line of `k3s --version`. */
const VERSION_LINE = /^k3s version (v\S+)/m

export function k3sBinaryPath(binDir: string): string {
  return path.posix.join(binDir, 'k3s')
}

/** The version of the k3s binary on the node's disk, which may differ from what is running. */
export async function readInstalledVersion(transport: Transport, binDir: string, signal?: AbortSignal): Promise<string> {
  const binary = k3sBinaryPath(binDir)
  const output = await transport.run([binary, '--version'], {signal, timeoutMs: 30_000})
  const match = VERSION_LINE.exec(output)
  if (!match) {
    throw new CommandError(`${transport.node}: ${binary} --version printed no k3s version`, 0, output.slice(0, 200), {
      hint: `check that ${binary} is the k3s binary (install.binDir in homelab.yaml)`,
    })
  }
  return match[1]
}
