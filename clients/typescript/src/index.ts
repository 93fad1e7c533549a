/**
 * fluid's gRPC services for TypeScript on Node: the messages and service descriptors
 * generated from protos/ (src/gen, by `make clients`), and a helper that opens clients
 * over the gRPC protocol, which is what fluid's Python servers speak.
 */
import { type Client, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import { DispatcherService } from "./gen/fluid/scheduler/v1/dispatcher_pb.js";
import { HistoryService } from "./gen/fluid/scheduler/v1/history_pb.js";

export * from "./gen/fluid/scheduler/v1/dispatcher_pb.js";
export * from "./gen/fluid/scheduler/v1/history_pb.js";
export * from "./gen/fluid/scheduler/v1/run_pb.js";
export * from "./gen/fluid/scheduler/v1/scheduler_pb.js";
export * from "./gen/fluid/scheduler/v1/task_pb.js";

export interface FluidClients {
  dispatcher: Client<typeof DispatcherService>;
  history: Client<typeof HistoryService>;
}

/**
 * Clients of a fluid system. `fluid dev` serves every service on one port, so one
 * address is enough there; a deployment gives history its own address.
 *
 * @param dispatcherAddress host:port of the dispatcher, e.g. "localhost:50051"
 * @param historyAddress host:port of history (default: the dispatcher's)
 * @param token bearer token every call sends (`fluid auth token`), for a system with auth
 */
export function connectFluid(
  dispatcherAddress: string,
  historyAddress: string = dispatcherAddress,
  token?: string,
): FluidClients {
  const bearer: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return await next(request);
  };
  const interceptors = token ? [bearer] : [];
  // Plain-text HTTP/2, like the services' own channels; put TLS in front with a mesh
  // or pass an https:// baseUrl to createGrpcTransport yourself.
  const transport = (address: string) =>
    createGrpcTransport({ baseUrl: `http://${address}`, interceptors });
  const dispatcher = transport(dispatcherAddress);
  return {
    dispatcher: createClient(DispatcherService, dispatcher),
    history: createClient(
      HistoryService,
      historyAddress === dispatcherAddress ? dispatcher : transport(historyAddress),
    ),
  };
}
