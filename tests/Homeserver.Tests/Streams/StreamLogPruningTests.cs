using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using Npgsql;

namespace Homeserver.Tests.Streams;

/// <summary>Writers prune their log rows past the stream's retention, oldest first, and record how far.</summary>
public sealed class StreamLogPruningTests
{
    [Fact]
    public async Task Rows_older_than_the_retention_are_pruned_and_the_stream_goes_on()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(2, new Dictionary<string, string?> { ["Homeserver:StreamLogRetention"] = "00:01:00" });
        var writer = cluster.Silos[0].Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.AccountData, 0));
        static StreamRow Row(string p) => new("test", null, $"{{\"p\":\"{p}\"}}");

        var old = new List<long>();
        for (var i = 0; i < 20; i++) old.Add((await writer.AppendAsync([Row($"old{i}")])).LastPosition);
        var recent = new List<long>();
        for (var i = 0; i < 5; i++) recent.Add((await writer.AppendAsync([Row($"new{i}")])).LastPosition);

        // The first twenty are made an hour old; the retention is a minute.
        await using var db = NpgsqlDataSource.Create(cluster.ConnectionString);
        await using (var age = db.CreateCommand("UPDATE stream_log SET created_at = now() - interval '1 hour' WHERE stream = 'account_data' AND position = ANY($1)"))
        {
            age.Parameters.AddWithValue(old.ToArray());
            Assert.Equal(old.Count, await age.ExecuteNonQueryAsync());
        }
        async Task<List<long>> LoggedAsync()
        {
            await using var cmd = db.CreateCommand("SELECT position FROM stream_log WHERE stream = 'account_data' AND kind = 'test' ORDER BY position");
            var positions = new List<long>();
            await using var reader = await cmd.ExecuteReaderAsync();
            while (await reader.ReadAsync()) positions.Add(reader.GetInt64(0));
            return positions;
        }
        // The housekeeping runs every five seconds.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while ((await LoggedAsync()).Intersect(old).Any() && DateTime.UtcNow < deadline) await Task.Delay(250);
        var left = await LoggedAsync();
        Assert.Empty(left.Intersect(old));
        Assert.Equal(recent, left);

        await using (var pruned = db.CreateCommand("SELECT pruned_upto FROM stream_pruned WHERE stream = 'account_data'"))
        {
            var upTo = (long)(await pruned.ExecuteScalarAsync())!;
            Assert.Equal(old.Max(), upTo);
        }

        var after = await writer.AppendAsync([Row("after")]);
        var target = StreamToken.Zero.Advance(StreamNames.AccountData, 0, after.LastPosition);
        foreach (var silo in cluster.Silos)
            Assert.True(await silo.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)));
    }
}
