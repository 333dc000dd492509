// The --flush and --quorum overrides shared by cluster start, node start, chaos and bench.
import { type Command, Option } from 'commander';
import { type ClusterConfig, FLUSH_MODES, type FlushMode, QUORUM_MODES, type QuorumMode } from '../config/config.js';

export interface ModeOverrides {
  flush?: FlushMode;
  quorum?: QuorumMode;
}

export function modeOptions(command: Command): Command {
  return command
    .addOption(new Option('--flush <mode>', 'override flush.mode').choices(FLUSH_MODES))
    .addOption(new Option('--quorum <mode>', 'override quorum').choices(QUORUM_MODES));
}

export function applyModeOverrides(config: ClusterConfig, overrides: ModeOverrides): ClusterConfig {
  return {
    ...config,
    flush: { ...config.flush, mode: overrides.flush ?? config.flush.mode },
    quorum: overrides.quorum ?? config.quorum,
  };
}
