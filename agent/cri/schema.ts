import type { MethodDefinition } from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import {
  containerdImagesProto,
  containerdTypesProto,
  timestampProto,
} from '../containerd/images-proto.js';
import { criApiProto } from './api-proto.js';

/**
 * Turns the embedded proto texts into gRPC method definitions that both the client and the
 * fake runtime of the tests use, so that the two can never disagree about the wire format.
 *
 * Messages become plain objects with camelCase fields. 64-bit integers become JS numbers: the
 * sizes and timestamps they carry stay far below 2^53, and a number is what callers do
 * arithmetic with. (protobufjs would otherwise hand out Long objects under tsx, where the
 * `long` package can be found, and plain numbers in the bundle, where it cannot.) Enums become
 * their names, which read better in logs and errors than their numbers.
 */
const conversion: protobuf.IConversionOptions = {
  longs: Number,
  enums: String,
  defaults: true,
  arrays: true,
  objects: true,
};

export type RpcMethod = MethodDefinition<object, object>;
export type ServiceMethods = Record<string, RpcMethod>;

export interface Schema {
  runtimeService: ServiceMethods;
  imageService: ServiceMethods;
  containerdImages: ServiceMethods;
}

function codec(type: protobuf.Type): {
  serialize: (value: object) => Buffer;
  deserialize: (bytes: Buffer) => object;
} {
  return {
    serialize: (value) => Buffer.from(type.encode(type.fromObject(value)).finish()),
    deserialize: (bytes) => type.toObject(type.decode(bytes), conversion),
  };
}

function serviceMethods(root: protobuf.Root, fullName: string): ServiceMethods {
  const service = root.lookupService(fullName);
  const methods: ServiceMethods = {};
  for (const method of service.methodsArray) {
    method.resolve();
    const request = codec(method.resolvedRequestType as protobuf.Type);
    const response = codec(method.resolvedResponseType as protobuf.Type);
    methods[method.name] = {
      path: `/${fullName}/${method.name}`,
      requestStream: false,
      responseStream: false,
      requestSerialize: request.serialize,
      requestDeserialize: request.deserialize,
      responseSerialize: response.serialize,
      responseDeserialize: response.deserialize,
      originalName: method.name,
    };
  }
  return methods;
}

let cached: Schema | undefined;

/** Parses the protos on first use (a few milliseconds) and keeps the result. */
export function getSchema(): Schema {
  if (cached === undefined) {
    const root = new protobuf.Root();
    for (const text of [timestampProto, containerdTypesProto, containerdImagesProto, criApiProto]) {
      protobuf.parse(text, root, { keepCase: false });
    }
    root.resolveAll();
    cached = {
      runtimeService: serviceMethods(root, 'runtime.v1.RuntimeService'),
      imageService: serviceMethods(root, 'runtime.v1.ImageService'),
      containerdImages: serviceMethods(root, 'containerd.services.images.v1.Images'),
    };
  }
  return cached;
}

/** A method by name; a typo in ctrvol's own code should fail at once, not as UNIMPLEMENTED. */
export function method(service: ServiceMethods, name: string): RpcMethod {
  const found = service[name];
  if (found === undefined) throw new Error(`no ${name} in the embedded proto`);
  return found;
}
