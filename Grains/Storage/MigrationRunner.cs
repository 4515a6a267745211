using System.Reflection;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Homeserver.Storage;

/// <summary>
/// Applies the numbered, append-only migrations embedded from <c>Storage/Migrations/NNNN_name.sql</c>. Each runs in
/// its own transaction under a cluster-wide advisory lock, so silos starting at once apply each exactly once.
/// Never edit an applied migration: add a new one.
/// </summary>
public static partial class MigrationRunner
{
    // Any constant works; it only has to be the same for every silo of this homeserver.
    private const long AdvisoryLockKey = 0x486f6d6573727672;

    [GeneratedRegex(@"\.Migrations\.(\d{4})_([A-Za-z0-9_]+)\.sql$")]
    private static partial Regex MigrationName();

    public sealed record Migration(int Version, string Name, string Sql);

    public static IReadOnlyList<Migration> Load()
    {
        var asm = typeof(MigrationRunner).Assembly;
        var list = new List<Migration>();
        foreach (var resource in asm.GetManifestResourceNames())
        {
            var m = MigrationName().Match(resource);
            if (!m.Success) continue;
            using var stream = asm.GetManifestResourceStream(resource)!;
            using var reader = new StreamReader(stream);
            list.Add(new Migration(int.Parse(m.Groups[1].Value), m.Groups[2].Value, reader.ReadToEnd()));
        }
        list.Sort((a, b) => a.Version.CompareTo(b.Version));
        for (var i = 1; i < list.Count; i++)
            if (list[i].Version == list[i - 1].Version)
                throw new InvalidOperationException($"Two migrations share version {list[i].Version}");
        return list;
    }

    public static async Task ApplyAsync(NpgsqlDataSource db, ILogger logger, CancellationToken ct = default)
    {
        await using var conn = await db.OpenConnectionAsync(ct);
        // Under the same lock as the migrations: concurrent CREATE TABLE IF NOT EXISTS races on the table's type.
        await using (var setup = await conn.BeginTransactionAsync(ct))
        {
            await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1)", conn, setup))
            {
                lockCmd.Parameters.AddWithValue(AdvisoryLockKey);
                await lockCmd.ExecuteNonQueryAsync(ct);
            }
            await using (var create = new NpgsqlCommand(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version    integer PRIMARY KEY,
                    name       text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, conn, setup))
                await create.ExecuteNonQueryAsync(ct);
            await setup.CommitAsync(ct);
        }

        foreach (var migration in Load())
        {
            await using var tx = await conn.BeginTransactionAsync(ct);
            await using (var lockCmd = new NpgsqlCommand("SELECT pg_advisory_xact_lock($1)", conn, tx))
            {
                lockCmd.Parameters.AddWithValue(AdvisoryLockKey);
                await lockCmd.ExecuteNonQueryAsync(ct);
            }
            await using (var check = new NpgsqlCommand("SELECT 1 FROM schema_migrations WHERE version = $1", conn, tx))
            {
                check.Parameters.AddWithValue(migration.Version);
                if (await check.ExecuteScalarAsync(ct) is not null)
                {
                    await tx.RollbackAsync(ct);
                    continue;
                }
            }
            await using (var apply = new NpgsqlCommand(migration.Sql, conn, tx))
                await apply.ExecuteNonQueryAsync(ct);
            await using (var record = new NpgsqlCommand("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", conn, tx))
            {
                record.Parameters.AddWithValue(migration.Version);
                record.Parameters.AddWithValue(migration.Name);
                await record.ExecuteNonQueryAsync(ct);
            }
            await tx.CommitAsync(ct);
            logger.LogInformation("Applied migration {Version:D4}_{Name}", migration.Version, migration.Name);
        }
    }
}
