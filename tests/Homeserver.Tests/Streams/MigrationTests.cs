using Homeserver.Storage;
using Homeserver.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Homeserver.Tests.Streams;

public sealed class MigrationTests
{
    [Fact]
    public async Task Silos_starting_at_once_apply_each_migration_exactly_once()
    {
        var cs = await TestPostgres.CreateDatabaseAsync();
        var sources = Enumerable.Range(0, 4).Select(_ => NpgsqlDataSource.Create(cs)).ToList();
        try
        {
            await Task.WhenAll(sources.Select(db => MigrationRunner.ApplyAsync(db, NullLogger.Instance)));
            await using var cmd = sources[0].CreateCommand("SELECT version FROM schema_migrations ORDER BY version");
            var applied = new List<int>();
            await using (var reader = await cmd.ExecuteReaderAsync())
                while (await reader.ReadAsync()) applied.Add(reader.GetInt32(0));
            Assert.Equal(MigrationRunner.Load().Select(m => m.Version), applied);

            // Running again is a no-op.
            await MigrationRunner.ApplyAsync(sources[1], NullLogger.Instance);
        }
        finally
        {
            foreach (var s in sources) await s.DisposeAsync();
        }
    }

    [Fact]
    public void Migrations_are_numbered_without_gaps()
    {
        var versions = MigrationRunner.Load().Select(m => m.Version).ToList();
        Assert.NotEmpty(versions);
        Assert.Equal(Enumerable.Range(1, versions.Count), versions);
    }
}
