using Microsoft.Extensions.Logging;
using Npgsql;
using Orleans.Placement;
using Orleans.Runtime.Placement;

namespace Homeserver.Streams;

/// <summary>
/// Where stream writers live: each writer key has a home among the active silos, chosen by rendezvous hashing
/// (<see cref="StreamWriterHome"/>), so writers spread over the cluster and a silo joining or leaving moves only the
/// writers whose home it is. An operator may pin a writer to a silo (<see cref="StreamWriterPins"/>): while that silo
/// is active it is the writer's home instead. New activations go to their home (<see cref="StreamWriterPlacementDirector"/>);
/// running writers move there when the membership has settled (<see cref="HomeserverOptions.WriterRebalanceDelay"/>).
/// </summary>
[Serializable, GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class StreamWriterPlacement : PlacementStrategy
{
    public static readonly StreamWriterPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class StreamWriterPlacementAttribute() : PlacementAttribute(StreamWriterPlacement.Instance);

public sealed class StreamWriterPlacementDirector(StreamWriterPins pins) : IPlacementDirector
{
    public async Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var silos = context.GetCompatibleSilos(target);
        // A writer moved on purpose (MoveToAsync) goes where it was sent.
        if (IPlacementDirector.GetPlacementHint(target.RequestContextData, silos) is { } hint) return hint;
        var key = target.GrainIdentity.Key.ToString()!;
        return StreamWriterHome.Choose(key, silos, await pins.GetAsync(key));
    }
}

public static class StreamWriterHome
{
    /// <summary>The silo whose endpoint is <paramref name="pinnedTo"/> if it is among <paramref name="silos"/>; else the
    /// silo with the highest hash of (writer key, silo): the same answer on every silo for the same membership, and a
    /// change of membership changes the answer only for the writers of the silos that came or went.</summary>
    public static SiloAddress Choose(string writerKey, IReadOnlyCollection<SiloAddress> silos, string? pinnedTo = null) =>
        (pinnedTo is null ? null : silos.FirstOrDefault(s => Endpoint(s) == pinnedTo))
        ?? silos.MaxBy(s => Fnv1a.Hash64(writerKey + "@" + s.ToParsableString()))
        ?? throw new InvalidOperationException("No silo to place a stream writer on");

    /// <summary>How a pin names a silo: its address and port without the generation, so a pin outlives the silo's restart.</summary>
    public static string Endpoint(SiloAddress silo) => silo.Endpoint.ToString();
}

/// <summary>
/// Operators' placements of stream writers (<c>stream_writers.pinned_to</c>, migration 0022). Read by placement
/// when a writer activates (rare: a start, a failover, a move), and by the writer itself when it takes its epoch.
/// </summary>
public sealed class StreamWriterPins(NpgsqlDataSource db, ILogger<StreamWriterPins> logger)
{
    private static readonly TimeSpan ReadTimeout = TimeSpan.FromSeconds(2);

    /// <summary>The endpoint <paramref name="writerKey"/> is pinned to, or null (also when the database does not answer:
    /// placement then falls back to the hash, and the activation itself needs the database to take its epoch).</summary>
    public async Task<string?> GetAsync(string writerKey)
    {
        var (stream, writer) = StreamNames.ParseWriterKey(writerKey);
        try
        {
            using var timeout = new CancellationTokenSource(ReadTimeout);
            await using var cmd = db.CreateCommand("SELECT pinned_to FROM stream_writers WHERE stream = $1 AND writer = $2");
            cmd.Parameters.AddWithValue(stream);
            cmd.Parameters.AddWithValue(writer);
            return await cmd.ExecuteScalarAsync(timeout.Token) as string;
        }
        catch (Exception e) when (e is NpgsqlException or OperationCanceledException)
        {
            logger.LogWarning("Placing {Writer} without reading its pin: {Message}", writerKey, e.Message);
            return null;
        }
    }

    /// <summary>Pins a writer to the silo at <paramref name="endpoint"/> (see <see cref="StreamWriterHome.Endpoint"/>).</summary>
    public async Task SetAsync(string stream, int writer, string endpoint)
    {
        await using var cmd = db.CreateCommand(
            """
            INSERT INTO stream_writers (stream, writer, pinned_to) VALUES ($1, $2, $3)
            ON CONFLICT (stream, writer) DO UPDATE SET pinned_to = $3
            """);
        cmd.Parameters.AddWithValue(stream);
        cmd.Parameters.AddWithValue(writer);
        cmd.Parameters.AddWithValue(endpoint);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Removes a writer's pin (the row stays: it holds the writer's epoch); answers the endpoint it was pinned
    /// to, or null when it was not pinned (the self-join reads the value from before the update).</summary>
    public async Task<string?> RemoveAsync(string stream, int writer)
    {
        await using var cmd = db.CreateCommand(
            """
            UPDATE stream_writers w SET pinned_to = NULL FROM stream_writers old
            WHERE w.stream = $1 AND w.writer = $2 AND old.stream = w.stream AND old.writer = w.writer
            RETURNING old.pinned_to
            """);
        cmd.Parameters.AddWithValue(stream);
        cmd.Parameters.AddWithValue(writer);
        return await cmd.ExecuteScalarAsync() as string;
    }

    /// <summary>Every pinned writer (by <see cref="StreamNames.WriterKey"/>) and the endpoint it is pinned to.</summary>
    public async Task<IReadOnlyDictionary<string, string>> ListAsync()
    {
        await using var cmd = db.CreateCommand("SELECT stream, writer, pinned_to FROM stream_writers WHERE pinned_to IS NOT NULL");
        await using var reader = await cmd.ExecuteReaderAsync();
        var pins = new Dictionary<string, string>(StringComparer.Ordinal);
        while (await reader.ReadAsync()) pins[StreamNames.WriterKey(reader.GetString(0), reader.GetInt32(1))] = reader.GetString(2);
        return pins;
    }
}
