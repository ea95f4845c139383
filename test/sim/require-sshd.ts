import {findSshd} from './sshd.js'

/**
 * Tests run against OpenSSH. Under CI a missing sshd is a failure, never a silent fallback to
 * the in-process server: .ci/run installs openssh-server.
 */
export function requireSshdInCi(): void {
  if (process.env.CI === 'true' && findSshd() === undefined) {
    throw new Error('sshd is not installed: CI must run the tests against OpenSSH (apt-get install -y openssh-server)')
  }
}
