import { stat } from 'node:fs/promises';
import {
  Client,
  credentials,
  Metadata,
  status as grpcStatus,
  type ServiceError,
} from '@grpc/grpc-js';
import { EnvironmentError, StepError } from '../errors.js';
import type { RpcMethod } from './schema.js';

export const DEFAULT_SOCKET = '/run/containerd/containerd.sock';
export const DEFAULT_TIMEOUT_MS = 5_000;

/** What the connection logs; a pino logger fits. */
export interface DebugLogger {
  debug(fields: object, message: string): void;
}

export interface ConnectionOptions {
  /** Path of containerd's gRPC socket; CRI and containerd's own services share it. */
  socket?: string;
  /** Deadline of each call unless the call names its own. */
  timeoutMs?: number;
  logger?: DebugLogger;
}

export interface UnaryOptions {
  timeoutMs?: number;
  /** gRPC metadata, such as containerd's `containerd-namespace`. */
  metadata?: Record<string, string>;
}

export interface CallStats {
  calls: number;
  totalMs: number;
}

export interface GrpcConnection {
  readonly socket: string;
  readonly timeoutMs: number;
  readonly stats: CallStats;
  unary<Response>(method: RpcMethod, request: object, options?: UnaryOptions): Promise<Response>;
  close(): void;
}

/**
 * A call that containerd answered with an error. The gRPC code lets a caller tell an expected
 * answer (NOT_FOUND for an image already gone) from a real failure.
 */
export class GrpcCallError extends StepError {
  readonly method: string;
  readonly code: number;
  readonly codeName: string;
  readonly details: string;

  constructor(method: string, socket: string, error: ServiceError) {
    const codeName = grpcStatus[error.code] ?? String(error.code);
    super(`${method} on ${socket} failed (${codeName}): ${error.details}`, { cause: error });
    this.method = method;
    this.code = error.code;
    this.codeName = codeName;
    this.details = error.details;
  }
}

const HINT = 'is containerd running, and is this its socket?';

/**
 * Refuses at once, with the path in the message, when there is no socket to talk to. gRPC would
 * say much the same, but as "No connection established" with the path buried in a cause.
 */
async function checkSocket(socket: string): Promise<void> {
  const info = await stat(socket).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') {
      throw new EnvironmentError(`no containerd socket at ${socket}`, { hint: HINT, cause: error });
    }
    throw new EnvironmentError(`cannot reach containerd socket ${socket}: ${error.message}`, {
      cause: error,
    });
  });
  if (!info.isSocket()) {
    throw new EnvironmentError(`${socket} is not a unix socket`, { hint: HINT });
  }
}

function methodName(method: RpcMethod): string {
  return method.path.split('/').slice(-2).join('/');
}

function toError(
  error: ServiceError,
  method: string,
  socket: string,
  timeoutMs: number,
): EnvironmentError | GrpcCallError {
  switch (error.code) {
    case grpcStatus.UNAVAILABLE:
      return new EnvironmentError(`containerd is not answering on ${socket}: ${error.details}`, {
        hint: HINT,
        cause: error,
      });
    case grpcStatus.DEADLINE_EXCEEDED:
      // A listener that accepts and never speaks lands here as well as a wedged containerd.
      return new EnvironmentError(
        `containerd did not answer ${method} on ${socket} within ${timeoutMs} ms`,
        { hint: 'containerd may be hung or still starting', cause: error },
      );
    case grpcStatus.UNIMPLEMENTED:
      return new EnvironmentError(
        `the server on ${socket} does not implement ${method}: ${error.details}`,
        { hint: "is containerd's CRI plugin disabled?", cause: error },
      );
    default:
      return new GrpcCallError(method, socket, error);
  }
}

/**
 * A gRPC channel to a containerd socket. Every call carries a deadline, so a containerd that is
 * gone, hung or something else entirely ends in an EnvironmentError rather than a wait.
 */
export async function openConnection(options: ConnectionOptions = {}): Promise<GrpcConnection> {
  const socket = options.socket ?? DEFAULT_SOCKET;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  await checkSocket(socket);
  const client = new Client(`unix:${socket}`, credentials.createInsecure(), {
    // A node with thousands of images answers ListImages with more than gRPC's 4 MiB default.
    'grpc.max_receive_message_length': 256 << 20,
    // Every call here is either read-only or one the caller decides to repeat.
    'grpc.enable_retries': 0,
  });
  const stats: CallStats = { calls: 0, totalMs: 0 };

  function unary<Response>(
    rpc: RpcMethod,
    request: object,
    callOptions: UnaryOptions = {},
  ): Promise<Response> {
    const name = methodName(rpc);
    const ms = callOptions.timeoutMs ?? timeoutMs;
    const metadata = new Metadata();
    for (const [key, value] of Object.entries(callOptions.metadata ?? {})) {
      metadata.set(key, value);
    }
    const started = performance.now();
    return new Promise<Response>((resolve, reject) => {
      client.makeUnaryRequest<object, object>(
        rpc.path,
        rpc.requestSerialize,
        rpc.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + ms },
        (error, response) => {
          const elapsed = performance.now() - started;
          stats.calls += 1;
          stats.totalMs += elapsed;
          options.logger?.debug(
            { method: name, ms: Math.round(elapsed), code: error?.code ?? 0 },
            'cri call',
          );
          if (error) reject(toError(error, name, socket, ms));
          else resolve(response as Response);
        },
      );
    });
  }

  return { socket, timeoutMs, stats, unary, close: () => client.close() };
}
