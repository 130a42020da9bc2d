// A Node client for imgclf.v1.Classifier built from protos/ alone (issue 4).
//
// It loads protos/imgclf/v1/classifier.proto from the repository at run time with
// @grpc/proto-loader (no generated code, no copy of the proto) and prints one JSON line:
//
//   node classify.mjs --target HOST:PORT --model cnn [--label L | --version N] [--top-k K] IMAGE
//     -> {"model": "cnn", "version": "2", "scores": [{"index": 3, "name": "cat", "probability": 0.41}, ...]}
//   node classify.mjs list-models --target HOST:PORT
//     -> {"models": [{"name": "cnn", "versions": [...], "labels": {"stable": "1"}}]}
//
// int64 fields (versions, label targets) are decoded with `longs: String`, so they are exact and
// appear as decimal strings, as in protobuf's canonical JSON mapping; `--version` is sent as a
// string too. A gRPC error prints {"error": {"code": 5, "codeName": "NOT_FOUND", "details": "..."}}
// and exits 1; a usage or file error prints a message on stderr and exits 2.
// Every call has a deadline (--deadline-ms, default 10000).

import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

const PROTO_ROOT = fileURLToPath(new URL("../../../protos/", import.meta.url));
const PROTO_FILE = "imgclf/v1/classifier.proto";
const DEFAULT_DEADLINE_MS = 10_000;
const EXIT_RPC_ERROR = 1;
const EXIT_USAGE = 2;
const UINT32_MAX = 0xffff_ffff;

const USAGE = `usage:
  node classify.mjs --target HOST:PORT --model NAME [--label L | --version N] [--top-k K]
                    [--deadline-ms MS] IMAGE
  node classify.mjs list-models --target HOST:PORT [--deadline-ms MS]`;

class UsageError extends Error {}

/** Parses the command line into {mode, target, model, label, version, topK, deadlineMs, image}. */
function parseCommandLine(argv) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      target: { type: "string" },
      model: { type: "string" },
      label: { type: "string" },
      version: { type: "string" },
      "top-k": { type: "string" },
      "deadline-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  if (!values.target) throw new UsageError("--target HOST:PORT is required");
  const deadlineMs = parseCount(values["deadline-ms"] ?? String(DEFAULT_DEADLINE_MS), "--deadline-ms");
  if (deadlineMs === 0) throw new UsageError("--deadline-ms must be positive");

  if (positionals.length === 1 && positionals[0] === "list-models") {
    return { mode: "list-models", target: values.target, deadlineMs };
  }
  if (positionals.length !== 1) throw new UsageError("expected exactly one IMAGE (or list-models)");
  if (!values.model) throw new UsageError("--model NAME is required");
  if (values.label !== undefined && values.version !== undefined) {
    throw new UsageError("give --label or --version, not both");
  }
  if (values.version !== undefined && !/^-?\d+$/.test(values.version)) {
    throw new UsageError("--version must be an integer");
  }
  return {
    mode: "classify",
    target: values.target,
    model: values.model,
    label: values.label,
    version: values.version,
    topK: values["top-k"] === undefined ? 0 : parseCount(values["top-k"], "--top-k", UINT32_MAX),
    deadlineMs,
    image: positionals[0],
  };
}

function parseCount(text, flag, max = Number.MAX_SAFE_INTEGER) {
  if (!/^\d+$/.test(text) || Number(text) > max) {
    throw new UsageError(`${flag} must be an integer from 0 to ${max}`);
  }
  return Number(text);
}

/** Builds a Classifier client from the proto in the repository's protos/ directory. */
function connect(target) {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: false, // camelCase field names: modelName, topK...
    longs: String, // int64 -> exact decimal strings
    enums: String, // VERSION_STATE_AVAILABLE rather than 3
    defaults: true,
    oneofs: true,
  });
  const { imgclf } = grpc.loadPackageDefinition(definition);
  return new imgclf.v1.Classifier(target, grpc.credentials.createInsecure());
}

/** Calls a unary method with a deadline; resolves with the response or rejects with the status. */
function callUnary(client, method, request, deadlineMs) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + deadlineMs }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

async function classify(client, options) {
  const imageBytes = await readFile(options.image);
  const selector = { name: options.model };
  if (options.label !== undefined) selector.label = options.label;
  if (options.version !== undefined) selector.version = options.version;
  const request = { encoded: imageBytes, model: selector, topK: options.topK };
  const response = await callUnary(client, "Classify", request, options.deadlineMs);
  return {
    model: response.modelName,
    version: response.modelVersion,
    scores: response.scores.map(({ index, name, probability }) => ({ index, name, probability })),
  };
}

async function listModels(client, options) {
  const response = await callUnary(client, "ListModels", {}, options.deadlineMs);
  return {
    models: response.models.map((model) => ({
      name: model.name,
      versions: model.versions.map(({ version, state, labels, errorMessage }) => ({
        version,
        state,
        labels,
        errorMessage,
      })),
      labels: model.labels,
    })),
  };
}

function describeRpcError(error) {
  return {
    error: {
      code: error.code,
      codeName: grpc.status[error.code] ?? "UNKNOWN",
      details: error.details ?? error.message,
    },
  };
}

async function main() {
  let options;
  try {
    options = parseCommandLine(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`classify.mjs: ${error.message}\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  const client = connect(options.target);
  try {
    const result = options.mode === "list-models"
      ? await listModels(client, options)
      : await classify(client, options);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return 0;
  } catch (error) {
    if (typeof error.code === "number" && "details" in error) {
      process.stdout.write(`${JSON.stringify(describeRpcError(error))}\n`);
      return EXIT_RPC_ERROR;
    }
    process.stderr.write(`classify.mjs: ${error.message}\n`);
    return EXIT_USAGE;
  } finally {
    client.close();
  }
}

process.exitCode = await main();
