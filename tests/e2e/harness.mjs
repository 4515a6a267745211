// Shared helpers for the end-to-end scenarios: numbered steps with their own timeouts, SDK clients whose HTTP traffic
// is recorded (so a failure shows the exact request and response), registration through the user-interactive flow,
// and bounded waits. The polyfill must be imported before the SDK evaluates.
import "./polyfill.mjs";
import * as sdk from "matrix-js-sdk";
import { logger as sdkLogger } from "matrix-js-sdk/lib/logger.js";

const started = Date.now();
const elapsed = () => `+${((Date.now() - started) / 1000).toFixed(1)}s`;
const verbose = !!process.env.E2E_VERBOSE;

// The SDK logs every sync and request at debug level; the steps below say what matters. E2E_VERBOSE=1 brings it back.
const silent = () => {};
const quietLogger = {
    trace: silent,
    debug: silent,
    info: silent,
    log: silent,
    warn: verbose ? (...a) => console.error("[sdk warn]", ...a) : silent,
    error: verbose ? (...a) => console.error("[sdk error]", ...a) : silent,
    getChild: () => quietLogger,
};
if (!verbose) {
    // Modules that log through the global logger (not the client's) create children that copy this factory.
    sdkLogger.methodFactory = () => silent;
    sdkLogger.setLevel("silent");
}

export { sdk };

/** Base URLs of the silos under test: `node scenario.mjs <baseUrlSilo0> [<baseUrlSilo1> ...]`. */
export function baseUrls(min) {
    const urls = process.argv.slice(2);
    if (urls.length < min) {
        console.error(`usage: node ${process.argv[1]} <baseUrlSilo0>${min > 1 ? " <baseUrlSilo1>" : ""} ...`);
        process.exit(2);
    }
    return urls.map((u) => u.replace(/\/+$/, ""));
}

/** Unique per run, so a scenario can also be pointed at a long-lived server. */
export function uniqueName(prefix) {
    return `${prefix}-${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
}

// ---- HTTP trace ---------------------------------------------------------------------------------------------------

const trace = [];
const reportedFailures = new Set();
// Every request as "label METHOD /path status", kept whole (the trace above keeps only the recent ones).
const requestLog = [];

/** Requests made so far by the client labelled `label` whose method and path match, e.g. ("alice", "POST", /keys\/claim/). */
export function requestsMade(label, method, pathPattern) {
    return requestLog.filter((r) => r.label === label && r.method === method && pathPattern.test(r.path));
}

function shortUrl(url) {
    const u = new URL(url);
    const params = [...u.searchParams.entries()]
        .map(([k, v]) => `${k}=${k === "filter" || v.length > 60 ? v.slice(0, 60) + "…" : v}`);
    return `${u.host} ${u.pathname}${params.length ? "?" + params.join("&") : ""}`;
}

/** A fetch that records every request and prints each distinct failing one (method, path, status) once. */
function tracingFetch(label) {
    return async (input, init = {}) => {
        const method = (init.method ?? "GET").toUpperCase();
        const url = typeof input === "string" ? input : input instanceof URL ? input.href : input.url;
        const sentAt = Date.now();
        let response;
        try {
            response = await fetch(input, init);
        } catch (err) {
            const line = `${label} ${method} ${shortUrl(url)} -> network error: ${err.message}`;
            record(line);
            throw err;
        }
        const ok = response.status < 400;
        requestLog.push({ label, method, path: decodeURIComponent(new URL(url).pathname), status: response.status });
        let line = `${label} ${method} ${shortUrl(url)} -> ${response.status} (${Date.now() - sentAt} ms)`;
        if (!ok) {
            const body = await response.clone().text().catch(() => "");
            line += ` content-type=${response.headers.get("content-type")} body=${body.slice(0, 400)}`;
            const key = `${label} ${method} ${new URL(url).pathname} ${response.status}`;
            if (!reportedFailures.has(key)) {
                reportedFailures.add(key);
                console.log(`    http: ${line}`);
            }
        }
        record(line);
        return response;
    };
}

function record(line) {
    trace.push(`${elapsed()} ${line}`);
    if (trace.length > 60) trace.shift();
}

// ---- Steps ------------------------------------------------------------------------------------------------------

let stepNumber = 0;
let currentStep = "(start)";

/** Runs one named step with its own timeout and prints its outcome; a failure ends the scenario. */
export async function step(name, fn, timeoutMs = 15000) {
    stepNumber++;
    currentStep = `${stepNumber}. ${name}`;
    console.log(`${elapsed()} STEP ${currentStep}`);
    const t0 = Date.now();
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
        const result = await Promise.race([fn(), timeout]);
        console.log(`${elapsed()}   ok ${currentStep} (${Date.now() - t0} ms)`);
        return result;
    } catch (err) {
        err.step = currentStep;
        throw err;
    } finally {
        clearTimeout(timer);
    }
}

/** Runs a scenario: prints PASS, or FAIL with the step, the error and the recent HTTP traffic, and sets the exit code. */
export async function run(name, scenario) {
    console.log(`${elapsed()} SCENARIO ${name} (matrix-js-sdk, node ${process.version})`);
    const clients = [];
    try {
        await scenario(clients);
        console.log(`${elapsed()} PASS ${name}`);
        process.exitCode = 0;
    } catch (err) {
        console.log(`${elapsed()} FAIL ${name} at step ${err.step ?? currentStep}: ${describe(err)}`);
        if (err.stack && !(err instanceof sdk.MatrixError)) console.log(err.stack.split("\n").slice(1, 6).join("\n"));
        console.log("  recent HTTP traffic (oldest first):");
        for (const line of trace) console.log(`    ${line}`);
        process.exitCode = 1;
    } finally {
        for (const c of clients) {
            try { c.stopClient(); } catch { /* already stopped */ }
        }
    }
    // The SDK keeps timers (retries, keep-alives) alive; the scenario is over either way.
    setTimeout(() => process.exit(process.exitCode ?? 1), 50);
}

/** Describes an error, with the HTTP status, errcode and body for a Matrix error. */
export function describe(err) {
    if (err instanceof sdk.MatrixError || err?.httpStatus) {
        return `HTTP ${err.httpStatus} ${err.errcode ?? ""} ${JSON.stringify(err.data ?? {})} (${err.url ?? "no url"})`;
    }
    return err?.message ?? String(err);
}

export function assert(condition, message) {
    if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertEqual(actual, expected, message) {
    const a = JSON.stringify(actual);
    const e = JSON.stringify(expected);
    if (a !== e) throw new Error(`assertion failed: ${message}\n      expected: ${e}\n      actual:   ${a}`);
}

/** Expects `promise` to fail with a Matrix error of the given status (and errcode, if given). */
export async function expectMatrixError(promise, status, errcode, what) {
    try {
        await promise;
    } catch (err) {
        assert(err instanceof sdk.MatrixError,
            `${what}: expected a Matrix error (JSON with errcode), got ${err?.constructor?.name}: ${describe(err)}`);
        assertEqual([err.httpStatus, err.errcode], [status, errcode ?? err.errcode], `${what}: status and errcode`);
        return err;
    }
    throw new Error(`${what}: expected HTTP ${status} ${errcode ?? ""}, but the request succeeded`);
}

/**
 * Waits until `check()` returns a truthy value (returned), re-checking on a short interval. State that the SDK
 * builds from sync (memberships, names) is easiest to read this way without racing the events that change it.
 * On timeout, `explain()` says what was seen instead.
 */
export async function waitUntil(what, check, timeoutMs = 15000, explain = () => "") {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
        const value = await check();
        if (value) return value;
        if (Date.now() > deadline) {
            const seen = explain();
            throw new Error(`waited ${timeoutMs} ms for ${what}${seen ? `; saw: ${seen}` : ""}`);
        }
        await new Promise((r) => setTimeout(r, 25));
    }
}

// ---- Clients ----------------------------------------------------------------------------------------------------

/** A client for one silo; `label` names it in the HTTP trace. */
export function newClient(baseUrl, label, credentials = {}) {
    const client = sdk.createClient({
        baseUrl,
        fetchFn: tracingFetch(label),
        logger: quietLogger,
        ...credentials,
    });
    client.label = label;
    return client;
}

/**
 * Registers through the user-interactive flow, as a client would: the first request (no `auth`) must be answered
 * 401 with the flows and a session; the second completes `m.login.dummy` with that session.
 */
export async function registerWithUiaFlow(baseUrl, label, username, password) {
    const anon = newClient(baseUrl, `${label}(anon)`);
    const body = { username, password, initial_device_display_name: `${label} e2e` };
    const challenge = await expectMatrixError(anon.registerRequest(body), 401, undefined, "register without auth");
    const { session, flows } = challenge.data;
    assert(typeof session === "string" && session.length > 0, `401 carries a session: ${JSON.stringify(challenge.data)}`);
    assert(Array.isArray(flows) && flows.some((f) => f.stages?.includes("m.login.dummy")),
        `401 offers an m.login.dummy flow: ${JSON.stringify(flows)}`);
    const response = await anon.registerRequest({ ...body, auth: { type: "m.login.dummy", session } });
    return checkSession(response, username, `register ${username} (UIA)`);
}

/** Registers in one request with a bare `m.login.dummy` (no session), as many test suites do. */
export async function registerWithDummy(baseUrl, label, username, password) {
    const anon = newClient(baseUrl, `${label}(anon)`);
    const response = await anon.registerRequest({
        username,
        password,
        initial_device_display_name: `${label} e2e`,
        auth: { type: "m.login.dummy" },
    });
    return checkSession(response, username, `register ${username} (one request)`);
}

function checkSession(response, localpart, what) {
    assert(response.user_id?.startsWith(`@${localpart}:`), `${what}: user_id ${response.user_id}`);
    assert(typeof response.access_token === "string" && response.access_token.length > 0, `${what}: access_token`);
    assert(typeof response.device_id === "string" && response.device_id.length > 0, `${what}: device_id`);
    return { userId: response.user_id, accessToken: response.access_token, deviceId: response.device_id };
}

/**
 * Starts syncing and waits for the first PREPARED or SYNCING state; on timeout says which state and error were last seen.
 * Pending events are detached (as Element does): a room's timeline then holds events in the order sync delivered them,
 * and a sender's own event enters it only when its remote echo (matched by `unsigned.transaction_id`) arrives.
 */
export async function startSyncing(client, timeoutMs = 30000, initialSyncLimit = 20, options = {}) {
    let last = "none";
    let lastError = "";
    const ready = new Promise((resolve) => {
        const onSync = (state, _prev, data) => {
            last = state;
            if (data?.error) lastError = describe(data.error);
            if (state === sdk.SyncState.Prepared || state === sdk.SyncState.Syncing) {
                client.off(sdk.ClientEvent.Sync, onSync);
                resolve();
            }
        };
        client.on(sdk.ClientEvent.Sync, onSync);
    });
    await client.startClient({ initialSyncLimit, pendingEventOrdering: sdk.PendingEventOrdering.Detached, ...options });
    let timer;
    const timeout = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(
            `${client.label} did not reach sync state PREPARED/SYNCING in ${timeoutMs} ms; last state ${last}` +
            `${lastError ? `, last sync error ${lastError}` : ""} (failing requests are listed above as "http:")`)), timeoutMs);
    });
    try {
        await Promise.race([ready, timeout]);
    } finally {
        clearTimeout(timer);
    }
}
