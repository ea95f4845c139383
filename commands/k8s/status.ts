import {Flags} from '@oclif/core'

import {openSession} from '../../src/session.js'
import {gatherStatus, type ClusterStatus, type NodeStatus} from '../../src/status.js'
import {HomelabCommand} from '../_cli/base-command.js'
import {terminalPassphrasePrompt} from '../_cli/passphrase.js'
import {renderTable} from '../_cli/table.js'

export default class Status extends HomelabCommand<typeof Status> {
  static override summary = 'Show the cluster\'s nodes, versions and version skew'
  static override description = `Per node: role, address, kubelet version, Ready, cordoned (and by which homelab run), reachable over SSH, and the version of the k3s or rke2 binary on disk (kubeadm: of the kubeadm package, and the control plane's from its static pods); then the cluster's skew verdict. Read-only.`
  static override examples = ['<%= config.bin %> k8s status', '<%= config.bin %> k8s status --json']
  static override flags = {
    'accept-new-host-keys': Flags.boolean({description: 'trust and record host keys not yet in known_hosts (like OpenSSH accept-new); a changed key is still refused'}),
  }

  async run(): Promise<ClusterStatus> {
    const session = await openSession({
      configPath: this.flags.config,
      kubeconfig: this.flags.kubeconfig,
      context: this.flags.context,
      askPassphrase: terminalPassphrasePrompt(),
      acceptNewHostKeys: this.flags['accept-new-host-keys'],
    })
    try {
      const inventory = await session.loadInventory()
      const status = await gatherStatus({inventory, distribution: session.distribution, apiServer: session.kube.server, connect: session.connect, kube: session.kube})
      if (!this.jsonEnabled()) this.log(renderStatus(status))
      return status
    } finally {
      await session.close()
    }
  }
}

const yesNo = (value: boolean | undefined) => (value === undefined ? '?' : value ? 'yes' : 'no')

export function renderStatus(status: ClusterStatus): string {
  const table = renderTable<NodeStatus>(status.nodes, [
    {header: 'NODE', get: (n) => n.name},
    {header: 'ROLE', get: (n) => (n.serverKind && n.serverKind !== 'etcd+control-plane' ? `${n.role} (${n.serverKind})` : n.role)},
    {header: 'ADDRESS', get: (n) => n.address},
    {header: 'KUBELET', get: (n) => n.kubeletVersion ?? '-'},
    {header: status.distribution === 'kubeadm' ? 'KUBEADM' : 'ON DISK', get: (n) => n.installedVersion ?? '-'},
    ...(status.nodes.some((n) => n.controlPlaneVersion) ? [{header: 'CONTROL PLANE', get: (n: NodeStatus) => n.controlPlaneVersion ?? '-'}] : []),
    {header: 'READY', get: (n) => (n.inCluster ? yesNo(n.ready) : 'not in cluster')},
    {header: 'CORDONED', get: (n) => (n.cordoned ? (n.cordonedBy ? `yes (homelab run ${n.cordonedBy})` : 'yes') : 'no')},
    {header: 'SSH', get: (n) => (n.ssh.reachable ? 'ok' : `unreachable: ${n.ssh.error}`)},
  ])
  const lines = [`API server ${status.apiServer} (${status.distribution})`, '', table, '', `Skew: ${status.skew.summary}`]
  if (status.onlyInFile.length > 0) lines.push(`In homelab.yaml but not in the cluster: ${status.onlyInFile.join(', ')}`)
  if (status.onlyInCluster.length > 0) lines.push(`In the cluster but not in homelab.yaml: ${status.onlyInCluster.join(', ')}`)
  for (const warning of status.warnings) lines.push(`warning: ${warning}`)
  return lines.join('\n')
}
