import {Args, Flags} from '@oclif/core'

import {listHistory, showHistory, type HistoryList, type RunDetail} from '../../src/history/history.js'
import {JournalStore} from '../../src/saga/journal.js'
import {HomelabCommand} from '../_cli/base-command.js'
import {renderHistory, renderRun} from '../_cli/history-view.js'

export default class History extends HomelabCommand<typeof History> {
  static override summary = 'List past upgrade and rollback runs, or show one run step by step'
  static override description = `Read from the run journals in $XDG_STATE_HOME/homelab/runs (read-only; no cluster file, kubeconfig or node is needed). The list: per run its id, when it started, the distribution, from → to, the outcome (succeeded, failed, compensated, compensation-incomplete, interrupted, running, or abandoned: its process is gone, resume or roll it back), how long it took, its nodes, and the Velero backup and etcd snapshot it took. With a run id: its steps and node actions with their times and errors, and its compensations.`
  static override examples = ['<%= config.bin %> k8s history', '<%= config.bin %> k8s history --limit 5 --json', '<%= config.bin %> k8s history 20250514-103012-3f9a1c']
  static override args = {id: Args.string({description: 'a run id: show that run in detail'})}
  static override flags = {
    limit: Flags.integer({min: 1, default: 20, description: 'the newest N runs'}),
  }
  // The journals are all it reads.
  static override baseFlags = {} as typeof HomelabCommand.baseFlags

  async run(): Promise<HistoryList | RunDetail> {
    const {args, flags} = await this.parse(History)
    const journals = new JournalStore({env: process.env})
    if (args.id) {
      const run = await showHistory(journals, args.id)
      if (!this.jsonEnabled()) this.log(renderRun(run))
      return run
    }
    const list = await listHistory(journals, {limit: flags.limit})
    for (const bad of list.unreadable) this.logToStderr(`homelab: warning: run ${bad.id} cannot be read: ${bad.message}`)
    if (!this.jsonEnabled()) this.log(renderHistory(list))
    return list
  }
}
