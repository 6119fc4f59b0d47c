// Runs the body of an actions/github-script step as the action does: an async function of
// (require, github, context, core, process), with a `github` client that records every call
// and answers from the recorded answers it is given. Used by tests/gitops.py.
//
//   node github-script.js SPEC.json
//
// SPEC: {script, context, answers: {"issues.listComments": [...], ...}, record: "calls.json"}
"use strict";
const fs = require("fs");

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const calls = [];

function endpoint(name) {
  return async (params) => {
    calls.push({ endpoint: name, params });
    const answer = spec.answers[name];
    return { status: 200, data: answer === undefined ? {} : answer };
  };
}

const rest = new Proxy(
  {},
  { get: (_, namespace) => new Proxy({}, { get: (__, method) => endpoint(`${namespace}.${method}`) }) },
);
const github = {
  rest,
  paginate: async (method, params) => {
    const { data } = await method(params);
    return Array.isArray(data) ? data : [];
  },
};

function command(name, message) {
  console.log(`::${name}::${String(message).replace(/%/g, "%25").replace(/\r/g, "%0D").replace(/\n/g, "%0A")}`);
}

const core = {
  setOutput: (name, value) => fs.appendFileSync(process.env.GITHUB_OUTPUT, `${name}=${value}\n`),
  info: (message) => console.log(message),
  notice: (message) => command("notice", message),
  warning: (message) => command("warning", message),
  error: (message) => command("error", message),
  setFailed: (message) => {
    command("error", message);
    process.exitCode = 1;
  },
};

const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
const body = new AsyncFunction("require", "github", "context", "core", "process", spec.script);
body(require, github, spec.context, core, process)
  .catch((error) => {
    command("error", `Unhandled error: ${error && error.stack ? error.stack : error}`);
    process.exitCode = 1;
  })
  .finally(() => fs.writeFileSync(spec.record, JSON.stringify(calls)));
