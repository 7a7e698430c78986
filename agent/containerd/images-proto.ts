/**
 * containerd's own image metadata service (containerd.services.images.v1), by hand with the
 * upstream field numbers. containerd before 1.6.22 / 1.7.3 never reports an image as pinned
 * through the CRI, so the `io.cri-containerd.pinned` label has to be read here, on the same
 * socket, instead.
 *
 * Each string holds one proto package; they are parsed into one protobufjs root, where the
 * fully qualified type names resolve across them as imports would.
 */
export const containerdImagesProto = `
syntax = "proto3";

package containerd.services.images.v1;

service Images {
  rpc List(ListImagesRequest) returns (ListImagesResponse);
}

message Image {
  string name = 1;
  map<string, string> labels = 2;
  containerd.types.Descriptor target = 3;
  google.protobuf.Timestamp created_at = 7;
  google.protobuf.Timestamp updated_at = 8;
}

message ListImagesRequest {
  repeated string filters = 1;
}

message ListImagesResponse {
  repeated Image images = 1;
}
`;

export const containerdTypesProto = `
syntax = "proto3";

package containerd.types;

message Descriptor {
  string media_type = 1;
  string digest = 2;
  int64 size = 3;
  map<string, string> annotations = 5;
}
`;

export const timestampProto = `
syntax = "proto3";

package google.protobuf;

message Timestamp {
  int64 seconds = 1;
  int32 nanos = 2;
}
`;
