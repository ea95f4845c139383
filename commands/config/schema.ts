import {configJsonSchemaText} from '../../src/config/schema-json.js'
import {HomelabCommand} from '../_cli/base-command.js'

export default class ConfigSchema extends HomelabCommand<typeof ConfigSchema> {
  static override summary = 'Print the JSON Schema of homelab.yaml'
  static override description = `The schema editors use to complete and check the cluster file (yaml-language-server: VS Code's YAML extension, Neovim, Helix…). It is generated from homelab's own validation at build time and shipped in the package as homelab.schema.json; a file uses it when it starts with the line

  # yaml-language-server: $schema=<path or URL of the schema>

which homelab init writes. homelab itself checks more than a schema can say (a node needs host and role unless discover is true; node names and addresses are unique).`
  static override examples = ['<%= config.bin %> config schema > homelab.schema.json']
  // Nothing here reads a cluster file or a kubeconfig (their flags would only mislead), and the
  // output is JSON already.
  static override baseFlags = {} as typeof HomelabCommand.baseFlags
  static override enableJsonFlag = false

  async run(): Promise<void> {
    process.stdout.write(await configJsonSchemaText(this.config.root))
  }
}
