/**
 * fast-fedpg: federated and multi-task policy gradient for tabular MDPs (Node entry).
 *
 *   import { loadMdp, train } from 'fast-fedpg';
 *   const result = await train(loadMdp('tasks.json'), { algorithm: 'fast-fedpg', rounds: 200 });
 */
import './node-entry-guard.js';

export type {
  Backend,
  BackendChoice,
  BackendName,
  Environment,
  EnvironmentSpec,
  Evaluation,
  GradientMode,
  LocalRoundArgs,
  TransitionTable,
  TruncatedEvaluation,
} from './backends/types.js';
export { BACKEND_NAMES, BackendUnavailableError, loadBackend, loadBackendByName } from './backends/select.js';
export { jsBackend } from './backends/js/index.js';
export { InputError, UsageError } from './errors.js';
export type { Mdp } from './mdp/model.js';
export { agentCount, averageReward, environmentSpec, hasPerAgentKernels, stackedRewards } from './mdp/model.js';
export { MDP_FORMAT, loadMdp, loadTheta, mdpToJson, parseJsonText, parseMdp, parseTheta, thetaToJson, type MdpParseOptions } from './mdp/format.js';
export { writeNpz, npzParts, type NpzWriteOptions } from './mdp/npz.js';
export { rescaleRewards, rewardRange, type RewardMap } from './mdp/rescale.js';
export { DEFAULT_MEMORY_BUDGET, MEMORY_BUDGET_ENV, memoryBudget, setMemoryBudget } from './limits.js';
export { chainMdp, gridworldMdp, randomMdp, GRID_MOVES } from './mdp/generate.js';
export type { ChainOptions, GridworldOptions, RandomMdpOptions } from './mdp/generate.js';
export { evaluatePolicy, type PolicyReport } from './evaluate.js';
export { agentStream, nextDouble, nextUint32 } from './rng.js';
export { ALGORITHMS, DEFAULT_SETTINGS, resolveSettings } from './federation/settings.js';
export { algorithmNames, algorithmOf, registerAlgorithm } from './federation/algorithms/registry.js';
export type { AlgorithmPlugin, AgentSide, ServerSide } from './federation/algorithms/types.js';
export { ServerCore } from './federation/server.js';
export type { Algorithm, TrainSettings } from './federation/settings.js';
export { Training, train, trainRounds } from './federation/train.js';
export type { CheckpointOptions, ResumeInfo, RoundRecord, TrainHeader, TrainOptions, TrainResult } from './federation/train.js';
export type { AgentPool } from './federation/pool.js';
export { InProcessPool } from './federation/pool.js';
export { LocalAgent, exactGradient, initialAgentState, copyAgentState, keptNames } from './federation/agent.js';
export type { AgentState } from './federation/agent.js';
export { applyDeltas, aggregateInto, parseAggregation, meanInto } from './federation/aggregate.js';
// The federation across machines (ConnectRPC): see README, "A federation across machines".
export { startAggregator, nodeTransport, WIRE_PROTOCOLS } from './network/node.js';
export type { AggregatorRunOptions, AggregatorResult, RunningAggregator, WireProtocol } from './network/node.js';
export { runAgent, authInterceptor } from './network/agent.js';
export type { RunAgentOptions, AgentSummary } from './network/agent.js';
export { runInProcessFederation } from './network/inprocess.js';
export { parseShared, parseRewards, sharedToJson, rewardsToJson, SHARED_FORMAT, REWARDS_FORMAT } from './network/formats.js';
// The worker-threads runtime and checkpoints (train's `workers`, `checkpoint`, `retry`, `roundTimeout`).
export { WorkerPool } from './federation/workers/pool.js';
export { planWorkers } from './federation/workers/plan.js';
export type { WorkersChoice } from './federation/workers/plan.js';
export { AgentFailure, parseFaults } from './federation/faults.js';
export type { FaultSpec } from './federation/faults.js';
export { CHECKPOINT_FORMAT } from './federation/checkpoint.js';
