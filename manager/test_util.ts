/** For tests: what the manager's stream tests send as a worker. */
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { ConnectRequestSchema } from "../shared/gen/goschedule/v1/goschedule_pb.ts";

/** A worker's first message on its stream. */
export function hello(workerId: string): MessageInitShape<typeof ConnectRequestSchema> {
  return {
    msg: {
      case: "hello",
      value: {
        workerId,
        hostname: `${workerId}.example`,
        capabilities: { cpuCores: 2, memoryBytes: 1n << 30n, os: "linux", arch: "x86_64" },
        version: "0.1.0",
      },
    },
  };
}
