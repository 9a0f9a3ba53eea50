// herald called by the Node clients ZITADEL users have (docs/API.md §6 and §9):
// @zitadel/client over gRPC (HTTP/2), and @connectrpc/connect-node's Connect
// transport in its default binary format (application/proto). Each does
// create → resend → verify, the code read from the mail herald sends to an SMTP
// server this test runs. The test starts target/debug/herald (HERALD_BIN to change
// it) on its own database and queue prefix, with free ports.
//
// Run: (cd tests/node && npm ci && npm test), after `cargo build`.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { createServerTransport } from "@zitadel/client/node";
import { createOrganizationServiceClient, createUserServiceClient } from "@zitadel/client/v2";
import { ErrorDetailSchema } from "@zitadel/proto/zitadel/message_pb.js";
import { UserService } from "@zitadel/proto/zitadel/user/v2/user_service_pb.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const hex = randomBytes(8).toString("hex");
const token = `node-${hex}-bootstrap-token`;
const database = `herald_test_node${hex}`;
const prefix = `herald-test-node${hex}`;
const WAIT_MS = 30_000;

let herald;
let smtp;
let httpUrl;
let grpcUrl;
const mails = [];

/** A minimal SMTP sink: accepts every message and keeps its raw text. */
function startSmtp() {
  return new Promise((resolve) => {
    const server = net.createServer((socket) => {
      let buffer = "";
      let inData = false;
      socket.write("220 sink ESMTP\r\n");
      socket.on("data", (chunk) => {
        buffer += chunk.toString("latin1");
        for (;;) {
          if (inData) {
            const end = buffer.indexOf("\r\n.\r\n");
            if (end < 0) return;
            mails.push(buffer.slice(0, end));
            buffer = buffer.slice(end + 5);
            inData = false;
            socket.write("250 queued\r\n");
            continue;
          }
          const eol = buffer.indexOf("\r\n");
          if (eol < 0) return;
          const line = buffer.slice(0, eol);
          buffer = buffer.slice(eol + 2);
          const verb = line.slice(0, 4).toUpperCase();
          if (verb === "EHLO") socket.write("250-sink\r\n250 8BITMIME\r\n");
          else if (verb === "DATA") {
            inData = true;
            socket.write("354 go on\r\n");
          } else if (verb === "QUIT") socket.end("221 bye\r\n");
          else socket.write("250 ok\r\n");
        }
      });
      socket.on("error", () => {});
    });
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

/** The text/plain part of a mail, decoded. */
function textOf(raw) {
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(raw)?.[1];
  const parts = boundary ? raw.split(`--${boundary}`) : [raw];
  for (const part of parts) {
    const split = part.replace(/^\r\n/, "").indexOf("\r\n\r\n");
    if (split < 0) continue;
    const trimmed = part.replace(/^\r\n/, "");
    const head = trimmed.slice(0, split).toLowerCase();
    const body = trimmed.slice(split + 4);
    if (boundary && !head.includes("text/plain")) continue;
    if (head.includes("quoted-printable")) {
      return body.replace(/=\r\n/g, "").replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
    }
    if (head.includes("base64")) return Buffer.from(body.replace(/\s/g, ""), "base64").toString("utf8");
    return body;
  }
  throw new Error(`no text/plain part in:\n${raw}`);
}

/** The code of the `n`-th mail to `address` (1-based), waiting for it. */
async function codeFromMail(address, n) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const to = mails.filter((m) => m.includes(address));
    if (to.length >= n) {
      const text = textOf(to[n - 1]);
      const code = /code=([A-Za-z0-9]+)/.exec(text)?.[1];
      assert.ok(code, `a link with code= in:\n${text}`);
      return code;
    }
    if (Date.now() > deadline) throw new Error(`mail ${n} to ${address} did not arrive in ${WAIT_MS} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

before(async () => {
  smtp = await startSmtp();
  const bin = process.env.HERALD_BIN ?? path.join(root, "target/debug/herald");
  herald = spawn(bin, ["serve"], {
    cwd: root,
    env: {
      ...process.env,
      HERALD__HTTP__ADDR: "127.0.0.1:0",
      HERALD__GRPC__ADDR: "127.0.0.1:0",
      HERALD__DATABASE__URL: `postgres://postgres@127.0.0.1:5432/${database}`,
      HERALD__AMQP__PREFIX: prefix,
      HERALD__AUTH__BOOTSTRAP_TOKEN: token,
      HERALD__ROLES: "api,worker",
      HERALD__EMAIL__TRANSPORT: "smtp",
      HERALD__EMAIL__SMTP_URL: `smtp://127.0.0.1:${smtp.address().port}`,
      HERALD__LOG__LEVEL: "info",
      HERALD__SHUTDOWN__GRACE: "1s",
      NO_COLOR: "1",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let log = "";
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`herald did not start:\n${log}`)), WAIT_MS);
    const read = (chunk) => {
      log += chunk.toString().replace(/\x1b\[[0-9;]*m/g, "");
      httpUrl ??= /\blistening addr=(127\.0\.0\.1:\d+)/.exec(log)?.[1];
      grpcUrl ??= /gRPC listening addr=(127\.0\.0\.1:\d+)/.exec(log)?.[1];
      if (httpUrl && grpcUrl) {
        clearTimeout(timer);
        resolve();
      }
    };
    herald.stdout.on("data", read);
    herald.stderr.on("data", read);
    herald.on("exit", (code) => reject(new Error(`herald exited (${code}):\n${log}`)));
  });
  httpUrl = `http://${httpUrl}`;
  grpcUrl = `http://${grpcUrl}`;
});

after(async () => {
  if (herald) {
    herald.kill("SIGTERM");
    await new Promise((r) => (herald.exitCode !== null ? r() : herald.on("exit", r)));
  }
  smtp?.close();
  try {
    execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-qc", `DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`]);
    const queues = execFileSync("rabbitmqctl", ["list_queues", "-q", "--no-table-headers", "name"]).toString();
    for (const q of queues.split("\n").filter((q) => q.startsWith(prefix))) {
      execFileSync("rabbitmqctl", ["delete_queue", q]);
    }
  } catch {
    // .ci/run removes what a failed cleanup leaves.
  }
});

/** A user with an e-mail address in a new organization, over gRPC. */
async function newUser(orgs, users, email) {
  const org = await orgs.addOrganization({ name: `Node ${randomBytes(4).toString("hex")}` });
  assert.equal(org.details.resourceOwner, org.organizationId);
  const user = await users.addHumanUser({
    organization: { org: { case: "orgId", value: org.organizationId } },
    username: email,
    profile: { givenName: "Ada", familyName: "Lovelace" },
    email: { email, verification: { case: "isVerified", value: false } },
  });
  assert.equal(user.details.resourceOwner, org.organizationId);
  return user.userId;
}

/** create → resend → verify through `users` (any client of UserService). */
async function inviteFlow(users, userId, email) {
  const created = await users.createInviteCode({ userId, verification: { case: "sendCode", value: {} } });
  assert.equal(created.details.sequence, 2n);
  assert.equal(created.inviteCode, undefined);
  await codeFromMail(email, 1);
  const resent = await users.resendInviteCode({ userId });
  assert.equal(resent.details.sequence, 3n);
  const code = await codeFromMail(email, 2);
  const verified = await users.verifyInviteCode({ userId, verificationCode: code });
  assert.ok(verified.details.sequence > 3n);
  const read = await users.getUserByID({ userId });
  assert.equal(read.user.userId, userId);
  assert.equal(read.details.sequence, verified.details.sequence);
}

test("@zitadel/client over gRPC: create, resend, verify", async () => {
  const transport = createServerTransport(token, { baseUrl: grpcUrl, httpVersion: "2" });
  const users = createUserServiceClient(transport);
  const email = `grpc-${hex}@example.com`;
  const userId = await newUser(createOrganizationServiceClient(transport), users, email);
  await inviteFlow(users, userId, email);

  // An unknown user: NOT_FOUND, with the error id REST answers in the gRPC status
  // details (zitadel.v1.ErrorDetail).
  await assert.rejects(users.resendInviteCode({ userId: "999999" }), (e) => {
    assert.equal(e.code, 5);
    const [detail] = e.findDetails(ErrorDetailSchema);
    assert.equal(detail?.id, "COMMAND-Wgvn4", e.message);
    return true;
  });
});

test("@connectrpc/connect-node, binary Connect: create, resend, verify", async () => {
  const auth = (next) => (req) => {
    req.header.set("authorization", `Bearer ${token}`);
    return next(req);
  };
  const transport = createConnectTransport({ baseUrl: httpUrl, httpVersion: "1.1", interceptors: [auth] });
  let sawProto = false;
  const watching = createConnectTransport({
    baseUrl: httpUrl,
    httpVersion: "1.1",
    interceptors: [
      auth,
      (next) => async (req) => {
        const res = await next(req);
        sawProto ||= res.header.get("content-type") === "application/proto";
        return res;
      },
    ],
  });
  const users = createClient(UserService, watching);
  const grpc = createServerTransport(token, { baseUrl: grpcUrl, httpVersion: "2" });
  const email = `connect-${hex}@example.com`;
  const userId = await newUser(createOrganizationServiceClient(grpc), createClient(UserService, transport), email);
  await inviteFlow(users, userId, email);
  assert.ok(sawProto, "the answers were binary (application/proto)");

  // An unknown user: not_found with herald's error id, as REST says it.
  await assert.rejects(users.resendInviteCode({ userId: "999999" }), (e) => {
    assert.equal(e.code, 5);
    assert.match(e.rawMessage, /\(COMMAND-Wgvn4\)$/);
    assert.equal(e.findDetails(ErrorDetailSchema)[0]?.id, "COMMAND-Wgvn4");
    return true;
  });
});
