/**
 * Everything that needs gRPC and protobufjs, behind one entry. Callers load it with a dynamic
 * `import('../cri/index.js')`; the build compiles it from embedded text only on that first use,
 * so commands that never talk to containerd do not pay for parsing it.
 */
export { createCriClient, withCriClient } from './client.js';
export { listContainerdImages, listPinnedImageNames } from '../containerd/images.js';
