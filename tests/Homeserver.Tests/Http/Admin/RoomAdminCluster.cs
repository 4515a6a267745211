using System.Diagnostics;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Admin;

/// <summary>A 2-silo cluster with one server admin named in configuration, for the Synapse admin API's rooms half.</summary>
public sealed class RoomAdminCluster : TwoSiloCluster
{
    public const string AdminLocalpart = "rooms-admin";

    protected override IDictionary<string, string?> Settings => new Dictionary<string, string?>
    {
        ["Homeserver:AdminUsers:0"] = $"@{AdminLocalpart}:localhost",
    };

    private MatrixTestClient? _admin;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>The admin, registered once on silo A.</summary>
    public async Task<MatrixTestClient> AdminAsync()
    {
        await _gate.WaitAsync();
        try { return _admin ??= await MatrixTestClient.RegisterAsync(A, AdminLocalpart); }
        finally { _gate.Release(); }
    }

    public const string V1 = "/_synapse/admin/v1";
    public const string V2 = "/_synapse/admin/v2";

    /// <summary>Polls the deletion's status until it is complete or failed (at most 30 s).</summary>
    public static async Task<MatrixResponse> WaitForDeletionAsync(MatrixTestClient admin, string deleteId)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var status = (await admin.GetAsync($"{V2}/rooms/delete_status/{MatrixTestClient.Escape(deleteId)}")).EnsureSuccess();
            var value = status["status"].GetValue<string>();
            if (value is "complete" or "failed" || clock.Elapsed > TimeSpan.FromSeconds(30)) return status;
            await Task.Delay(100);
        }
    }
}
