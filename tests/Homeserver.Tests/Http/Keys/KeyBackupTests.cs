using System.Text.Json.Nodes;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Keys;

/// <summary>Server-side key backups: versions, keys and the spec's replacement rules, across two silos.</summary>
public sealed class KeyBackupTests : IAsyncLifetime
{
    private const string Algorithm = "m.megolm_backup.v1.curve25519-aes-sha2";
    private const string Room = "!backup:localhost";
    private HomeserverTestCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await HomeserverTestCluster.StartAsync(2);
    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    private static JsonObject AuthData(string key = "abc") => new() { ["public_key"] = key, ["signatures"] = new JsonObject() };

    private static JsonObject Key(long first, long forwarded, bool verified, string marker) => new()
    {
        ["first_message_index"] = first,
        ["forwarded_count"] = forwarded,
        ["is_verified"] = verified,
        ["session_data"] = new JsonObject { ["ciphertext"] = marker },
    };

    private static string Keys(string version, string? room = null, string? session = null) =>
        $"{MatrixPaths.V3}/room_keys/keys{(room is null ? "" : "/" + Uri.EscapeDataString(room))}{(session is null ? "" : "/" + session)}?version={version}";

    [Fact]
    public async Task Auth_data_is_opaque_to_the_server()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var version = (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = "an opaque string" }))
            .EnsureSuccess()["version"].GetValue<string>();
        var read = (await alice.On(_cluster.Silos[1]).GetAsync($"{MatrixPaths.V3}/room_keys/version/{version}")).EnsureSuccess();
        Assert.Equal("an opaque string", read["auth_data"].GetValue<string>());
        // The version in an update's body may come as a number; the keys may name any room id the client has.
        (await alice.PutAsync($"{MatrixPaths.V3}/room_keys/version/{version}", new JsonObject
        {
            ["algorithm"] = Algorithm, ["auth_data"] = "another", ["version"] = long.Parse(version),
        })).EnsureSuccess();
        (await alice.PutAsync(Keys(version, "!abcd", "1234"), new JsonObject
        {
            ["first_message_index"] = 0, ["forwarded_count"] = 0, ["is_verified"] = false, ["session_data"] = new JsonObject { ["k"] = "v" },
        })).EnsureSuccess();
        Assert.Equal("v", (await alice.GetAsync(Keys(version, "!abcd", "1234"))).EnsureSuccess()["session_data"]["k"]!.GetValue<string>());
        (await alice.PutAsync(Keys(version, "!abcd", "5678"), new JsonObject
        {
            ["first_message_index"] = 0, ["forwarded_count"] = 0, ["is_verified"] = false, ["session_data"] = "opaque",
        })).EnsureSuccess();
        Assert.Equal("opaque", (await alice.GetAsync(Keys(version, "!abcd", "5678"))).EnsureSuccess()["session_data"].GetValue<string>());
    }

    [Fact]
    public async Task Versions_are_created_read_updated_and_deleted()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var none = await alice.GetAsync($"{MatrixPaths.V3}/room_keys/version");
        Assert.Equal(404, none.StatusCode);
        Assert.Equal("M_NOT_FOUND", none.ErrCode);

        Assert.Equal("M_MISSING_PARAM", (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["auth_data"] = AuthData() })).ErrCode);
        Assert.Equal("M_MISSING_PARAM", (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = null })).ErrCode);

        var v1 = (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = AuthData() }))
            .EnsureSuccess()["version"].GetValue<string>();
        var v2 = (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = AuthData("def") }))
            .EnsureSuccess()["version"].GetValue<string>();
        Assert.NotEqual(v1, v2);

        var onB = alice.On(_cluster.Silos[1]);
        var current = (await onB.GetAsync($"{MatrixPaths.V3}/room_keys/version")).EnsureSuccess();
        Assert.Equal(v2, current["version"].GetValue<string>());
        Assert.Equal(Algorithm, current["algorithm"].GetValue<string>());
        Assert.Equal("def", current["auth_data"]["public_key"]!.GetValue<string>());
        Assert.Equal(0, current["count"].GetValue<long>());
        Assert.Equal("abc", (await onB.GetAsync($"{MatrixPaths.V3}/room_keys/version/{v1}")).EnsureSuccess()["auth_data"]["public_key"]!.GetValue<string>());
        Assert.Equal(404, (await onB.GetAsync($"{MatrixPaths.V3}/room_keys/version/999")).StatusCode);
        Assert.Equal(404, (await onB.GetAsync($"{MatrixPaths.V3}/room_keys/version/nope")).StatusCode);

        (await alice.PutAsync($"{MatrixPaths.V3}/room_keys/version/{v2}", new JsonObject
        {
            ["algorithm"] = Algorithm, ["auth_data"] = AuthData("ghi"), ["version"] = v2,
        })).EnsureSuccess();
        Assert.Equal("ghi", (await onB.GetAsync($"{MatrixPaths.V3}/room_keys/version")).EnsureSuccess()["auth_data"]["public_key"]!.GetValue<string>());
        Assert.Equal("M_INVALID_PARAM", (await alice.PutAsync($"{MatrixPaths.V3}/room_keys/version/{v2}", new JsonObject
        {
            ["algorithm"] = Algorithm, ["auth_data"] = AuthData(), ["version"] = v1,
        })).ErrCode);
        Assert.Equal("M_INVALID_PARAM", (await alice.PutAsync($"{MatrixPaths.V3}/room_keys/version/{v2}", new JsonObject
        {
            ["algorithm"] = "m.other", ["auth_data"] = AuthData(),
        })).ErrCode);
        Assert.Equal(404, (await alice.PutAsync($"{MatrixPaths.V3}/room_keys/version/999", new JsonObject
        {
            ["algorithm"] = Algorithm, ["auth_data"] = AuthData(),
        })).StatusCode);

        (await alice.DeleteAsync($"{MatrixPaths.V3}/room_keys/version/{v2}")).EnsureSuccess();
        Assert.Equal(v1, (await onB.GetAsync($"{MatrixPaths.V3}/room_keys/version")).EnsureSuccess()["version"].GetValue<string>());
        Assert.Equal(404, (await alice.DeleteAsync($"{MatrixPaths.V3}/room_keys/version/{v2}")).StatusCode);
        // A deleted version's number is not handed out again.
        var v3 = (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = AuthData() }))
            .EnsureSuccess()["version"].GetValue<string>();
        Assert.NotEqual(v2, v3);

        // Another user sees none of it.
        var bob = await MatrixTestClient.RegisterAsync(_cluster.Silos[1]);
        Assert.Equal(404, (await bob.GetAsync($"{MatrixPaths.V3}/room_keys/version")).StatusCode);
    }

    [Fact]
    public async Task Keys_are_stored_replaced_only_by_better_ones_read_and_deleted()
    {
        var alice = await MatrixTestClient.RegisterAsync(_cluster.Silos[0]);
        var old = (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = AuthData() }))
            .EnsureSuccess()["version"].GetValue<string>();
        var version = (await alice.PostAsync($"{MatrixPaths.V3}/room_keys/version", new JsonObject { ["algorithm"] = Algorithm, ["auth_data"] = AuthData() }))
            .EnsureSuccess()["version"].GetValue<string>();

        // Keys go only to the newest version: the spec's 403 names it.
        var wrong = await alice.PutAsync(Keys(old, Room, "s1"), Key(5, 0, false, "a"));
        Assert.Equal(403, wrong.StatusCode);
        Assert.Equal("M_WRONG_ROOM_KEYS_VERSION", wrong.ErrCode);
        Assert.Equal(version, wrong["current_version"].GetValue<string>());
        Assert.Equal("M_MISSING_PARAM", (await alice.PutAsync($"{MatrixPaths.V3}/room_keys/keys/{Uri.EscapeDataString(Room)}/s1", Key(5, 0, false, "a"))).ErrCode);
        Assert.Equal("M_BAD_JSON", (await alice.PutAsync(Keys(version, Room, "s1"), new JsonObject { ["first_message_index"] = "x" })).ErrCode);

        var first = (await alice.PutAsync(Keys(version, Room, "s1"), Key(5, 1, false, "a"))).EnsureSuccess();
        Assert.Equal(1, first["count"].GetValue<long>());
        var etag = first["etag"].GetValue<string>();

        // Worse keys change nothing (and the etag stays); better ones replace.
        var worse = (await alice.PutAsync(Keys(version, Room, "s1"), Key(7, 0, false, "worse"))).EnsureSuccess();
        Assert.Equal(etag, worse["etag"].GetValue<string>());
        (await alice.PutAsync(Keys(version, Room, "s1"), Key(5, 2, false, "more-forwarded"))).EnsureSuccess();
        Assert.Equal("a", (await alice.GetAsync(Keys(version, Room, "s1"))).EnsureSuccess()["session_data"]["ciphertext"]!.GetValue<string>());
        var fewerForwards = (await alice.PutAsync(Keys(version, Room, "s1"), Key(5, 0, false, "fewer-forwards"))).EnsureSuccess();
        Assert.NotEqual(etag, fewerForwards["etag"].GetValue<string>());
        (await alice.PutAsync(Keys(version, Room, "s1"), Key(2, 0, false, "lower-index"))).EnsureSuccess();
        Assert.Equal("lower-index", (await alice.GetAsync(Keys(version, Room, "s1"))).EnsureSuccess()["session_data"]["ciphertext"]!.GetValue<string>());
        (await alice.PutAsync(Keys(version, Room, "s1"), Key(9, 3, true, "verified"))).EnsureSuccess();
        (await alice.PutAsync(Keys(version, Room, "s1"), Key(0, 0, false, "unverified"))).EnsureSuccess();
        var held = (await alice.On(_cluster.Silos[1]).GetAsync(Keys(version, Room, "s1"))).EnsureSuccess();
        Assert.Equal("verified", held["session_data"]["ciphertext"]!.GetValue<string>());
        Assert.True(held["is_verified"].GetValue<bool>());

        // Whole uploads: several rooms and sessions at once.
        var bulk = (await alice.PutAsync(Keys(version), new JsonObject
        {
            ["rooms"] = new JsonObject
            {
                [Room] = new JsonObject { ["sessions"] = new JsonObject { ["s2"] = Key(0, 0, false, "b") } },
                ["!other:localhost"] = new JsonObject { ["sessions"] = new JsonObject { ["s3"] = Key(0, 0, false, "c") } },
            },
        })).EnsureSuccess();
        Assert.Equal(3, bulk["count"].GetValue<long>());
        var all = (await alice.GetAsync(Keys(version))).EnsureSuccess();
        Assert.Equal(2, all["rooms"][Room]!["sessions"]!.AsObject().Count);
        Assert.Equal("c", all["rooms"]["!other:localhost"]!["sessions"]!["s3"]!["session_data"]!["ciphertext"]!.GetValue<string>());
        Assert.Equal(2, (await alice.GetAsync(Keys(version, Room))).EnsureSuccess()["sessions"].AsObject().Count);
        Assert.Empty((await alice.GetAsync(Keys(version, "!empty:localhost"))).EnsureSuccess()["sessions"].AsObject());
        Assert.Equal(404, (await alice.GetAsync(Keys(version, Room, "missing"))).StatusCode);
        Assert.Equal(3, (await alice.GetAsync($"{MatrixPaths.V3}/room_keys/version")).EnsureSuccess()["count"].GetValue<long>());

        Assert.Equal(2, (await alice.DeleteAsync(Keys(version, Room, "s2"))).EnsureSuccess()["count"].GetValue<long>());
        Assert.Equal(1, (await alice.DeleteAsync(Keys(version, Room))).EnsureSuccess()["count"].GetValue<long>());
        Assert.Equal(0, (await alice.DeleteAsync(Keys(version))).EnsureSuccess()["count"].GetValue<long>());
        Assert.Empty((await alice.GetAsync(Keys(version))).EnsureSuccess()["rooms"].AsObject());
        Assert.Equal(404, (await alice.GetAsync(Keys("999"))).StatusCode);
    }
}
