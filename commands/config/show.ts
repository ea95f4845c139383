import {userInfo} from 'node:os'

import {effectiveConfig, type EffectiveConfig, type Setting} from '../../src/config/show.js'
import {HomelabCommand} from '../_cli/base-command.js'
import {renderTable} from '../_cli/table.js'

const FOUND: Record<EffectiveConfig['fileSource'], string> = {
  flag: 'from --config',
  env: 'from $HOMELAB_CONFIG',
  cwd: 'in the current directory',
  xdg: 'in $XDG_CONFIG_HOME/homelab',
}

export default class ConfigShow extends HomelabCommand<typeof ConfigShow> {
  static override summary = 'Show the effective configuration and where each value came from'
  static override description = `Every setting of the cluster file with the defaults filled in, the kubeconfig and context, and per node the SSH settings a connection will use (address, user, port, identity files, jump hosts), each with where it came from: the file, a default, ~/.ssh/config, a flag or the environment. Offline: nothing is dialled and no credential is shown (secrets, URL passwords and query values are masked).`
  static override examples = ['<%= config.bin %> config show', '<%= config.bin %> config show --json', '<%= config.bin %> config show --config lab/homelab.yaml --context staging']

  async run(): Promise<EffectiveConfig> {
    const shown = await effectiveConfig({
      configPath: this.flags.config,
      kubeconfig: this.flags.kubeconfig,
      context: this.flags.context,
      env: process.env,
      cwd: process.cwd(),
      home: process.env.HOME || userInfo().homedir,
      localUser: userInfo().username,
    })
    if (!this.jsonEnabled()) this.log(renderEffective(shown))
    return shown
  }
}

const valueText = (value: unknown) => (typeof value === 'string' ? value : JSON.stringify(value))

export function renderEffective(shown: EffectiveConfig): string {
  const table = renderTable<Setting>(shown.settings, [
    {header: 'SETTING', get: (s) => s.path},
    {header: 'VALUE', get: (s) => valueText(s.value)},
    {header: 'FROM', get: (s) => (s.detail ? `${s.source} (${s.detail})` : s.source)},
  ])
  return [`${shown.file} (${FOUND[shown.fileSource]})`, '', table].join('\n')
}
