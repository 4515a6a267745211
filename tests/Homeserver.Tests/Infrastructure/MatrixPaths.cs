namespace Homeserver.Tests.Infrastructure;

/// <summary>Client-Server API paths and the error assertion every HTTP test area uses (<c>using static</c>).</summary>
public static class MatrixPaths
{
    public const string V3 = "/_matrix/client/v3";

    public static string E(string segment) => MatrixTestClient.Escape(segment);

    public static string Room(string roomId) => $"{V3}/rooms/{E(roomId)}";

    public static string Event(string roomId, string eventId) => $"{Room(roomId)}/event/{E(eventId)}";

    public static void AssertError(MatrixResponse r, int status, string errcode) =>
        Assert.True(r.StatusCode == status && r.ErrCode == errcode, $"expected {status} {errcode}, got {r.StatusCode}: {r.Text}");
}
