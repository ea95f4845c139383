import {createInterface} from 'node:readline'
import {Writable} from 'node:stream'

/**
 * A prompt for an encrypted key's passphrase, only on a terminal: typed characters are not
 * echoed and the answer never leaves memory. Without a TTY there is no prompt (the passphrase
 * must come from $HOMELAB_SSH_PASSPHRASE).
 */
export function terminalPassphrasePrompt(): ((keyPath: string) => Promise<string | undefined>) | undefined {
  if (!process.stdin.isTTY || !process.stderr.isTTY || process.env.CI === 'true') return undefined
  return (keyPath) =>
    new Promise((resolve) => {
      let muted = false
      const output = new Writable({
        write(chunk, _encoding, callback) {
          if (!muted) process.stderr.write(chunk)
          callback()
        },
      })
      const rl = createInterface({input: process.stdin, output, terminal: true})
      rl.question(`Passphrase for ${keyPath}: `, (answer) => {
        rl.close()
        process.stderr.write('\n')
        resolve(answer === '' ? undefined : answer)
      })
      muted = true
    })
}
