/**
 * fluid's gRPC services for TypeScript on Node: the messages and service descriptors
 * generated from protos/ (src/gen, by `make clients`), and a helper that opens clients
 * over the gRPC protocol, which is what fluid's Python servers speak.
 */
import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";

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
 * TLS for the connections to fluid: PEM contents, not file names (`tlsFromEnv` reads the
 * files). An empty object is TLS verified against Node's own root CAs.
 */
export interface FluidTls {
  /** CA certificates that verify the server, instead of Node's root CAs. */
  ca?: string | Buffer;
  /** Client certificate (chain allowed) presented to a server that requires one (mTLS). */
  cert?: string | Buffer;
  /** The unencrypted private key of `cert`. */
  key?: string | Buffer;
  /** Name the server's certificate must carry, when it is not the address's host. */
  serverName?: string;
}

export interface ConnectFluidOptions {
  /** Bearer token every call sends (`fluid auth token`), for a system with auth. */
  token?: string;
  /** Dial TLS (mTLS with `cert` and `key`); without it, plaintext HTTP/2. */
  tls?: FluidTls;
}

const CERT_VARIABLE = "FLUID_TLS_CERT_FILE";
const KEY_VARIABLE = "FLUID_TLS_KEY_FILE";
const CA_VARIABLE = "FLUID_TLS_CA_FILE";
const SERVER_NAME_VARIABLE = "FLUID_TLS_SERVER_NAME";

function readPem(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new Error(`${variable}=${path}: cannot read it (${reason})`);
  }
}

/**
 * TLS from the variables fluid's Python processes read, so that one environment
 * configures both: FLUID_TLS_CERT_FILE and FLUID_TLS_KEY_FILE (the client certificate,
 * mTLS), FLUID_TLS_CA_FILE (verifies the server) and FLUID_TLS_SERVER_NAME.
 *
 * Undefined (plaintext) unless a CA or a client certificate is set, as in Python:
 * FLUID_TLS_SERVER_NAME alone does not turn TLS on. Empty values count as not set.
 * The files are read now and kept: after a rotation, call it and `connectFluid` again.
 *
 * @throws Error naming the variable when its file cannot be read, or naming both when
 *   only one of the certificate and the key is set
 */
export function tlsFromEnv(
  env: Record<string, string | undefined> = process.env,
): FluidTls | undefined {
  const certPath = env[CERT_VARIABLE] ?? "";
  const keyPath = env[KEY_VARIABLE] ?? "";
  const caPath = env[CA_VARIABLE] ?? "";
  const serverName = env[SERVER_NAME_VARIABLE] ?? "";
  if (Boolean(certPath) !== Boolean(keyPath)) {
    const [present, missing] = certPath
      ? [CERT_VARIABLE, KEY_VARIABLE]
      : [KEY_VARIABLE, CERT_VARIABLE];
    throw new Error(`${present} is set but ${missing} is not: set both or neither`);
  }
  if (!certPath && !caPath) return undefined;
  const tls: FluidTls = {};
  if (certPath) {
    tls.cert = readPem(CERT_VARIABLE, certPath);
    tls.key = readPem(KEY_VARIABLE, keyPath);
  }
  if (caPath) tls.ca = readPem(CA_VARIABLE, caPath);
  if (serverName) tls.serverName = serverName;
  return tls;
}

/** http2.connect's options for `tls`; Node checks the certificate against `servername`. */
function sessionOptions(tls: FluidTls): SecureClientSessionOptions {
  // Node takes either alone without complaint: the mistake would surface only as a
  // refused handshake, far from its cause.
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    throw new Error("tls.cert and tls.key go together: set both or neither");
  }
  const options: SecureClientSessionOptions = {};
  if (tls.ca !== undefined) options.ca = tls.ca;
  if (tls.cert !== undefined) options.cert = tls.cert;
  if (tls.key !== undefined) options.key = tls.key;
  if (tls.serverName !== undefined) options.servername = tls.serverName;
  return options;
}

/**
 * Clients of a fluid system. `fluid dev` serves every service on one port, so one
 * address is enough there; a deployment gives history its own address.
 *
 * @param dispatcherAddress host:port of the dispatcher, e.g. "localhost:50051"
 * @param historyAddress host:port of history (default: the dispatcher's)
 * @param options `{ token, tls }` (see `ConnectFluidOptions`; `tlsFromEnv()` gives the
 *   `tls` of the FLUID_TLS_* variables), or the token alone as a string
 */
export function connectFluid(
  dispatcherAddress: string,
  historyAddress: string = dispatcherAddress,
  options: ConnectFluidOptions | string = {},
): FluidClients {
  // A bare string is the token: the form callers used before TLS existed.
  const { token, tls } = typeof options === "string" ? { token: options, tls: undefined } : options;
  const bearer: Interceptor = (next) => async (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return await next(request);
  };
  const interceptors = token ? [bearer] : [];
  // Without tls, plaintext HTTP/2, like the services' own channels without FLUID_TLS_*.
  const nodeOptions = tls === undefined ? undefined : sessionOptions(tls);
  const scheme = tls === undefined ? "http" : "https";
  const transport = (address: string) =>
    createGrpcTransport({ baseUrl: `${scheme}://${address}`, interceptors, nodeOptions });
  const dispatcher = transport(dispatcherAddress);
  return {
    dispatcher: createClient(DispatcherService, dispatcher),
    history: createClient(
      HistoryService,
      historyAddress === dispatcherAddress ? dispatcher : transport(historyAddress),
    ),
  };
}
