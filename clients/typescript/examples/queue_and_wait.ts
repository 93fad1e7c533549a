/**
 * Queue a run, wait for its end through WatchRun (a server stream) and find it in
 * history with ListRuns; print what happened as one JSON object.
 *
 *   npm run build
 *   node dist/examples/queue_and_wait.js --address localhost:50051 say_hi '{"name": "Ada"}'
 *
 * TLS and mTLS from the FLUID_TLS_* variables that fluid's Python processes read, e.g.
 *
 *   FLUID_TLS_CA_FILE=ca.pem FLUID_TLS_CERT_FILE=client.pem FLUID_TLS_KEY_FILE=client-key.pem \
 *     node dist/examples/queue_and_wait.js --address localhost:50051
 *
 * Exit code 1 with the gRPC status on stderr when a call fails (a refused handshake too).
 */
import { parseArgs } from "node:util";

import { toJson } from "@bufbuild/protobuf";
import { ValueSchema } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError } from "@connectrpc/connect";

import { connectFluid, type Run, TaskState, tlsFromEnv } from "../src/index.js";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    address: { type: "string", default: process.env.FLUID_ADDRESS ?? "localhost:50051" },
    "history-address": { type: "string" },
    token: { type: "string", default: process.env.FLUID_TOKEN },
    "timeout-ms": { type: "string", default: "30000" },
  },
});
const task = positionals[0] ?? "say_hi";
const params = JSON.parse(positionals[1] ?? '{"name": "Ada"}');
const timeoutMs = Number(values["timeout-ms"]);

/** "success" for TASK_STATE_SUCCESS: the names the Python SDK and the CLI use. */
function stateName(state: TaskState): string {
  return (TaskState[state] ?? "unspecified").toLowerCase();
}

async function sleep(ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms));
}

async function main(): Promise<void> {
  const fluid = connectFluid(values.address!, values["history-address"], {
    token: values.token,
    tls: tlsFromEnv(),
  });

  const { run: queued } = await fluid.dispatcher.queueRun({ task, params }, { timeoutMs });
  if (queued === undefined) throw new Error("QueueRun answered without a run");

  // The stream sends the current state, then every change, and ends after the first
  // terminal state: the last message is how the run ended.
  const watched: string[] = [];
  let last: Run | undefined;
  for await (const { run } of fluid.dispatcher.watchRun({ runId: queued.id }, { timeoutMs })) {
    if (run === undefined) continue;
    watched.push(stateName(run.state));
    last = run;
  }
  if (last === undefined) throw new Error(`WatchRun ended without a state for ${queued.id}`);

  // History is written after the fact (the dispatcher forwards states in batches): poll
  // until it has the run in its final state, within the same time budget.
  const deadline = Date.now() + timeoutMs;
  let stored: Run | undefined;
  while (Date.now() < deadline) {
    const { runs } = await fluid.history.listRuns({ task, limit: 50 }, { timeoutMs });
    stored = runs.find((run) => run.id === queued.id && run.version >= last!.version);
    if (stored !== undefined) break;
    await sleep(100);
  }

  const result = last.result === undefined ? null : toJson(ValueSchema, last.result);
  console.log(
    JSON.stringify({
      run_id: queued.id,
      task,
      state: stateName(last.state),
      result,
      error: last.error === undefined ? null : { type: last.error.type, message: last.error.message },
      watched_states: watched,
      history: stored === undefined ? null : { state: stateName(stored.state), worker_id: stored.workerId },
    }),
  );
}

main().catch((error: unknown) => {
  const reason = error instanceof ConnectError ? `${Code[error.code]}: ${error.rawMessage}` : String(error);
  console.error(`error: ${reason}`);
  process.exitCode = 1;
});
