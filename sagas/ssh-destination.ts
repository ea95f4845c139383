/** `user@host` when homelab.yaml names the user, else the host (ssh then uses ~/.ssh/config): for the commands a person is told to run. */
export function sshDestination(node: {host: string; sshUser?: string}): string {
  return node.sshUser ? `${node.sshUser}@${node.host}` : node.host
}
