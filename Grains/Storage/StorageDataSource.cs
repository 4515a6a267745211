using Npgsql;

namespace Homeserver.Storage;

/// <summary>The one <see cref="NpgsqlDataSource"/> of a silo, with the settings the hot paths rely on.</summary>
public static class StorageDataSource
{
    /// <summary>
    /// Builds the data source. Unless the connection string says otherwise, statements are prepared automatically
    /// once used a few times: every hot statement here (the events writer's batch, token lookups, sync queries) is a
    /// fixed SQL text, and without preparation PostgreSQL parses and plans each execution again, which measured as a
    /// third of its CPU per message sent.
    /// <para>
    /// Auto-preparation has one sharp edge (Npgsql 10.0.3, as on its main branch): on the run that prepares a statement
    /// Npgsql marks it prepared when ParseComplete arrives, before Bind succeeds; if Bind then fails (PostgreSQL
    /// refuses a text parameter holding NUL, 22021), the connection keeps the statement as prepared without a row
    /// description, and the next execution of that SQL on that connection reads its rows as unexpected ("Received
    /// unexpected backend message DataRow") and breaks the connection. So no parameter may hold NUL: client input is
    /// refused at the API boundary (<c>ClientJson</c>, <c>ClientRequestBoundary</c>) and stores that take ids check them.
    /// </para>
    /// <para>
    /// Pooled connections are not reset when returned (<c>No Reset On Close</c>): nothing here changes session state
    /// (no SET, LISTEN, temporary tables or session advisory locks; migrations lock per transaction), and the reset
    /// cost PostgreSQL seven extra statements each time the events writer returned a connection, twice per commit.
    /// </para>
    /// </summary>
    public static NpgsqlDataSource Build(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        if (!connectionString.Contains("Auto Prepare", StringComparison.OrdinalIgnoreCase))
            builder.ConnectionStringBuilder.MaxAutoPrepare = 128;
        if (!connectionString.Contains("Reset On Close", StringComparison.OrdinalIgnoreCase))
            builder.ConnectionStringBuilder.NoResetOnClose = true;
        return builder.Build();
    }
}
