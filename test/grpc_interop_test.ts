/**
 * A stock gRPC client (@grpc/grpc-js, not Connect) lists workers from the manager: proof that
 * a gRPC client in any language can use the API with nothing but the .proto file.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type ListWorkersRequest,
  ListWorkersRequestSchema,
  type ListWorkersResponse,
  ListWorkersResponseSchema,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { Cluster } from "./harness/processes.ts";

Deno.test("a plain @grpc/grpc-js client lists workers", async () => {
  await using cluster = await Cluster.create();
  await cluster.startManager();
  await cluster.startWorker("grpc-w1");

  const client = new grpc.Client(
    cluster.managerUrl.replace("http://", ""),
    grpc.credentials.createInsecure(),
  );
  try {
    const response = await new Promise<ListWorkersResponse>((resolve, reject) => {
      client.makeUnaryRequest(
        "/goschedule.v1.OperatorService/ListWorkers",
        (m: ListWorkersRequest) => Buffer.from(toBinary(ListWorkersRequestSchema, m)),
        (b: Buffer) => fromBinary(ListWorkersResponseSchema, b),
        { $typeName: "goschedule.v1.ListWorkersRequest" } as ListWorkersRequest,
        (error: grpc.ServiceError | null, value?: ListWorkersResponse) =>
          error ? reject(error) : resolve(value!),
      );
    });
    assert.equal(response.workers.length, 1);
    assert.equal(response.workers[0].id, "grpc-w1");
    assert.equal(response.workers[0].state, WorkerState.CONNECTED);
    assert.match(response.workers[0].address, /^127\.0\.0\.1:\d+$/);
  } finally {
    client.close();
  }
});
