// Accounts through matrix-js-sdk across two silos: register (user-interactive flow and one-request dummy), log in,
// whoami, log out, and the errors a client must be able to read.
// Usage: node scenario-accounts.mjs <baseUrlSilo0> <baseUrlSilo1>
import {
    assert, assertEqual, baseUrls, expectMatrixError, newClient, registerWithDummy, registerWithUiaFlow, run, step,
    uniqueName,
} from "./harness.mjs";

const [silo0, silo1 = silo0] = baseUrls(1);

await run("accounts", async () => {
    const aliceName = uniqueName("alice");
    const bobName = uniqueName("bob");
    const password = "correct horse battery staple";

    await step("the server advertises client versions", async () => {
        const versions = await newClient(silo0, "anon").getVersions();
        assert(Array.isArray(versions.versions) && versions.versions.length > 0,
            `versions: ${JSON.stringify(versions)}`);
    });

    const alice = await step("alice registers on silo 0 through the user-interactive flow (401 + session, then m.login.dummy)",
        () => registerWithUiaFlow(silo0, "alice", aliceName, password));

    const bob = await step("bob registers on silo 1 in one request with a bare m.login.dummy",
        () => registerWithDummy(silo1, "bob", bobName, password));

    await step("registering alice's name again fails with M_USER_IN_USE", () =>
        expectMatrixError(newClient(silo1, "anon").registerRequest({
            username: aliceName, password, auth: { type: "m.login.dummy" },
        }), 400, "M_USER_IN_USE", "register a taken name"));

    await step("whoami with alice's registration token answers on both silos", async () => {
        for (const [url, label] of [[silo0, "alice@0"], [silo1, "alice@1"]]) {
            const me = await newClient(url, label, { accessToken: alice.accessToken }).whoami();
            assertEqual([me.user_id, me.device_id], [alice.userId, alice.deviceId], `whoami on ${label}`);
        }
        const me = await newClient(silo0, "bob@0", { accessToken: bob.accessToken }).whoami();
        assertEqual(me.user_id, bob.userId, "bob's whoami on silo 0");
    });

    const login = await step("alice logs in with her password on silo 1", async () => {
        const response = await newClient(silo1, "alice-login").loginRequest({
            type: "m.login.password",
            identifier: { type: "m.id.user", user: aliceName },
            password,
            initial_device_display_name: "alice second device",
        });
        assertEqual(response.user_id, alice.userId, "login user_id");
        assert(response.device_id && response.device_id !== alice.deviceId, `login makes a new device: ${response.device_id}`);
        assert(response.access_token && response.access_token !== alice.accessToken, "login makes a new access token");
        return response;
    });

    const second = newClient(silo1, "alice-2", {
        accessToken: login.access_token, userId: login.user_id, deviceId: login.device_id,
    });

    await step("whoami with the login's token names the new device", async () => {
        const me = await second.whoami();
        assertEqual([me.user_id, me.device_id], [alice.userId, login.device_id], "whoami after login");
    });

    await step("a wrong password is refused with M_FORBIDDEN", () =>
        expectMatrixError(newClient(silo0, "alice-bad").loginRequest({
            type: "m.login.password", identifier: { type: "m.id.user", user: aliceName }, password: "wrong",
        }), 403, "M_FORBIDDEN", "login with a wrong password"));

    await step("alice logs the second device out on silo 1", () => second.logout());

    await step("the logged-out token is refused on both silos (M_UNKNOWN_TOKEN); the first token still works", async () => {
        await expectMatrixError(newClient(silo0, "alice-2@0", { accessToken: login.access_token }).whoami(),
            401, "M_UNKNOWN_TOKEN", "whoami on silo 0 after logout");
        await expectMatrixError(newClient(silo1, "alice-2@1", { accessToken: login.access_token }).whoami(),
            401, "M_UNKNOWN_TOKEN", "whoami on silo 1 after logout");
        const me = await newClient(silo1, "alice@1", { accessToken: alice.accessToken }).whoami();
        assertEqual(me.device_id, alice.deviceId, "first device survives");
    });
});
