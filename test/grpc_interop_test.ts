/**
 * A stock gRPC client (@grpc/grpc-js, not Connect) lists workers from the manager and gets its
 * errors as gRPC statuses: proof that a gRPC client in any language can use the API with
 * nothing but the .proto file.
 */
import assert from "node:assert/strict";
import * as grpc from "@grpc/grpc-js";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import {
  type GetTaskRequest,
  GetTaskRequestSchema,
  type GetTaskResponse,
  GetTaskResponseSchema,
  type ListWorkersRequest,
  ListWorkersRequestSchema,
  type ListWorkersResponse,
  ListWorkersResponseSchema,
  WorkerState,
} from "../shared/gen/goschedule/v1/goschedule_pb.ts";
import { Cluster } from "./harness/processes.ts";

Deno.test("a plain @grpc/grpc-js client lists workers and gets errors as gRPC statuses", async () => {
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

    // An error comes as a gRPC status with the manager's message.
    const error = await new Promise<grpc.ServiceError | null>((resolve) => {
      client.makeUnaryRequest(
        "/goschedule.v1.OperatorService/GetTask",
        (m: GetTaskRequest) => Buffer.from(toBinary(GetTaskRequestSchema, m)),
        (b: Buffer) => fromBinary(GetTaskResponseSchema, b),
        create(GetTaskRequestSchema, { id: "no-such-task" }),
        (e: grpc.ServiceError | null, _value?: GetTaskResponse) => resolve(e),
      );
    });
    assert.equal(error?.code, grpc.status.NOT_FOUND);
    assert.equal(error?.details, 'task "no-such-task" not found');
  } finally {
    client.close();
  }
});
