using System.Buffers;
using System.Data;
using System.Security.Cryptography;
using Homeserver.Errors;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace Homeserver.Media;

/// <summary>What the repository knows of one upload; <see cref="Size"/> is null while an asynchronous upload waits
/// for its content.</summary>
public sealed record MediaInfo(string MediaId, string Uploader, string? UploadName, string? ContentType, long? Size, DateTimeOffset CreatedAt)
{
    public bool Uploaded => Size is not null;
}

/// <summary>A stored thumbnail (small: kept whole).</summary>
public sealed record StoredThumbnail(int Width, int Height, string Method, string ContentType, byte[] Data);

/// <summary>
/// The <c>media</c>, <c>media_chunks</c> and <c>media_thumbnails</c> tables. Content is written and read one chunk at a
/// time through pooled buffers, so neither an upload nor a download holds a file in memory; an upload's chunks and its
/// completion commit together, so a failed or abandoned upload leaves nothing behind. Media needs no grain: ids are
/// random, an upload is written once, and the row lock decides between two uploads to one reserved id.
/// </summary>
public sealed class MediaStore(NpgsqlDataSource db, IOptions<HomeserverOptions> options)
{
    /// <summary>Size of a stored chunk: small enough that a download holds one at a time, large enough that a 50 MB file
    /// is 200 rows.</summary>
    public const int ChunkBytes = 256 * 1024;

    /// <summary>A new media id: 24 random letters, as Synapse makes them.</summary>
    public static string NewMediaId()
    {
        Span<char> chars = stackalloc char[24];
        const string alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for (var i = 0; i < chars.Length; i++) chars[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        return new string(chars);
    }

    /// <summary>Reserves an id for content sent later (<c>POST /media/v1/create</c>); 429 <c>M_LIMIT_EXCEEDED</c> when the
    /// user already has <see cref="MediaOptions.MaxPendingUploads"/> waiting. Returns the id and when it expires.</summary>
    public async Task<(string MediaId, DateTimeOffset ExpiresAt)> ReserveAsync(string uploader)
    {
        var settings = options.Value.Media;
        var mediaId = NewMediaId();
        var expires = DateTimeOffset.UtcNow + settings.PendingUploadLifetime;
        // The user's expired reservations go first (so abandoned ones never pile up, with no sweeper to run); then the
        // count and the insert in one statement: concurrent reservations can overshoot by at most the number in flight,
        // which is what a per-user pending limit needs (it bounds abandoned rows, not a resource).
        await using var batch = db.CreateBatch();
        batch.BatchCommands.Add(new NpgsqlBatchCommand("DELETE FROM media WHERE uploader = $1 AND uploaded_at IS NULL AND unused_expires_at < now()")
        {
            Parameters = { new() { Value = uploader } },
        });
        batch.BatchCommands.Add(new NpgsqlBatchCommand(
            """
            INSERT INTO media (media_id, uploader, unused_expires_at)
            SELECT $1, $2, $3
             WHERE (SELECT count(*) FROM media WHERE uploader = $2 AND uploaded_at IS NULL) < $4
            """)
        {
            Parameters = { new() { Value = mediaId }, new() { Value = uploader }, new() { Value = expires }, new() { Value = settings.MaxPendingUploads } },
        });
        await batch.ExecuteNonQueryAsync();
        if (batch.BatchCommands[1].RecordsAffected == 0)
            throw new MatrixException(ErrorCodes.LimitExceeded, "Too many uploads are pending; send their content first", 429,
                """{"retry_after_ms":60000}""");
        return (mediaId, expires);
    }

    /// <summary>
    /// Stores <paramref name="content"/> as <paramref name="mediaId"/>: a new upload (<paramref name="reserved"/> false)
    /// or the content of a reserved id, which only its uploader may send and only once (409
    /// <c>M_CANNOT_OVERWRITE_MEDIA</c>). 413 <c>M_TOO_LARGE</c> once the content passes the configured maximum.
    /// </summary>
    public async Task<long> StoreAsync(string mediaId, string uploader, bool reserved, string? uploadName, string? contentType,
        Stream content, CancellationToken ct)
    {
        var max = options.Value.Media.MaxUploadBytes;
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var tx = await connection.BeginTransactionAsync(ct);
        if (reserved)
        {
            await using var check = new NpgsqlCommand(
                "SELECT uploader, uploaded_at IS NOT NULL, unused_expires_at < now() FROM media WHERE media_id = $1 FOR UPDATE", connection, tx);
            check.Parameters.AddWithValue(mediaId);
            await using var reader = await check.ExecuteReaderAsync(ct);
            if (!await reader.ReadAsync(ct)) throw MatrixException.NotFound("Unknown media id");
            if (reader.GetString(0) != uploader) throw MatrixException.Forbidden("This media id was reserved by another user");
            if (reader.GetBoolean(1)) throw new MatrixException(ErrorCodes.CannotOverwriteMedia, "This media has already been uploaded", 409);
            if (reader.GetBoolean(2)) throw MatrixException.NotFound("This media id has expired");
        }
        else
        {
            await using var insert = new NpgsqlCommand("INSERT INTO media (media_id, uploader) VALUES ($1, $2)", connection, tx);
            insert.Parameters.AddWithValue(mediaId);
            insert.Parameters.AddWithValue(uploader);
            await insert.ExecuteNonQueryAsync(ct);
        }

        await using var chunkInsert = new NpgsqlCommand("INSERT INTO media_chunks (media_id, chunk, data) VALUES ($1, $2, $3)", connection, tx);
        chunkInsert.Parameters.AddWithValue(mediaId);
        var chunkNumber = new NpgsqlParameter<int> { NpgsqlDbType = NpgsqlDbType.Integer };
        var data = new NpgsqlParameter<ReadOnlyMemory<byte>> { NpgsqlDbType = NpgsqlDbType.Bytea };
        chunkInsert.Parameters.Add(chunkNumber);
        chunkInsert.Parameters.Add(data);
        using var sha = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkBytes);
        long total = 0;
        try
        {
            for (var chunk = 0; ; chunk++)
            {
                var filled = await FillAsync(content, buffer.AsMemory(0, ChunkBytes), ct);
                if (filled == 0) break;
                total += filled;
                if (total > max)
                    throw new MatrixException(ErrorCodes.TooLarge, $"Uploads are limited to {max} bytes", 413);
                sha.AppendData(buffer, 0, filled);
                chunkNumber.TypedValue = chunk;
                data.TypedValue = buffer.AsMemory(0, filled);
                await chunkInsert.ExecuteNonQueryAsync(ct);
                if (filled < ChunkBytes) break;
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        await using var complete = new NpgsqlCommand(
            """
            UPDATE media SET uploaded_at = now(), unused_expires_at = NULL, upload_name = $2, content_type = $3, size_bytes = $4, sha256 = $5
             WHERE media_id = $1
            """, connection, tx);
        complete.Parameters.AddWithValue(mediaId);
        complete.Parameters.Add(new NpgsqlParameter { Value = (object?)uploadName ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        complete.Parameters.Add(new NpgsqlParameter { Value = (object?)contentType ?? DBNull.Value, NpgsqlDbType = NpgsqlDbType.Text });
        complete.Parameters.AddWithValue(total);
        complete.Parameters.AddWithValue(sha.GetHashAndReset());
        await complete.ExecuteNonQueryAsync(ct);
        await tx.CommitAsync(ct);
        return total;
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends (a request body arrives in pieces).</summary>
    private static async Task<int> FillAsync(Stream content, Memory<byte> buffer, CancellationToken ct)
    {
        var filled = 0;
        while (filled < buffer.Length)
        {
            var read = await content.ReadAsync(buffer[filled..], ct);
            if (read == 0) break;
            filled += read;
        }
        return filled;
    }

    /// <summary>The upload's metadata, or null when unknown (or a reservation that expired unused).</summary>
    public async Task<MediaInfo?> FindAsync(string mediaId)
    {
        await using var cmd = db.CreateCommand(
            """
            SELECT uploader, upload_name, content_type, size_bytes, created_at FROM media
             WHERE media_id = $1 AND (uploaded_at IS NOT NULL OR unused_expires_at > now())
            """);
        cmd.Parameters.AddWithValue(mediaId);
        await using var reader = await cmd.ExecuteReaderAsync();
        if (!await reader.ReadAsync()) return null;
        return new MediaInfo(mediaId, reader.GetString(0), reader.IsDBNull(1) ? null : reader.GetString(1),
            reader.IsDBNull(2) ? null : reader.GetString(2), reader.IsDBNull(3) ? null : reader.GetInt64(3),
            reader.GetFieldValue<DateTimeOffset>(4));
    }

    /// <summary>Writes the content to <paramref name="destination"/> chunk by chunk (the reader streams each column
    /// from the connection: one chunk is in memory at a time).</summary>
    public async Task CopyToAsync(string mediaId, Stream destination, CancellationToken ct)
    {
        await using var connection = await db.OpenConnectionAsync(ct);
        await using var cmd = new NpgsqlCommand("SELECT data FROM media_chunks WHERE media_id = $1 ORDER BY chunk", connection);
        cmd.Parameters.AddWithValue(mediaId);
        await using var reader = await cmd.ExecuteReaderAsync(CommandBehavior.SequentialAccess, ct);
        while (await reader.ReadAsync(ct))
        {
            await using var chunk = await reader.GetStreamAsync(0, ct);
            await chunk.CopyToAsync(destination, ct);
        }
    }

    /// <summary>The first chunk of the content (an image's header is in it), or null when there is none.</summary>
    public async Task<byte[]?> ReadHeadAsync(string mediaId)
    {
        await using var cmd = db.CreateCommand("SELECT data FROM media_chunks WHERE media_id = $1 AND chunk = 0");
        cmd.Parameters.AddWithValue(mediaId);
        return await cmd.ExecuteScalarAsync() as byte[];
    }

    /// <summary>The whole content of an upload the caller already looked up, in memory, for thumbnailing; null when it
    /// has no content yet or is larger than <paramref name="maxBytes"/>.</summary>
    public async Task<byte[]?> ReadAllAsync(MediaInfo info, long maxBytes, CancellationToken ct)
    {
        if (info.Size is not { } size || size > maxBytes) return null;
        using var memory = new MemoryStream((int)size);
        await CopyToAsync(info.MediaId, memory, ct);
        return memory.ToArray();
    }

    public async Task<List<StoredThumbnail>> GetThumbnailsAsync(string mediaId)
    {
        await using var cmd = db.CreateCommand("SELECT width, height, method, content_type, data FROM media_thumbnails WHERE media_id = $1");
        cmd.Parameters.AddWithValue(mediaId);
        await using var reader = await cmd.ExecuteReaderAsync();
        var thumbnails = new List<StoredThumbnail>();
        while (await reader.ReadAsync())
            thumbnails.Add(new StoredThumbnail(reader.GetInt32(0), reader.GetInt32(1), reader.GetString(2), reader.GetString(3), (byte[])reader[4]));
        return thumbnails;
    }

    /// <summary>Keeps a generated thumbnail; when two front ends generate the same one at once, the first stays.</summary>
    public async Task StoreThumbnailAsync(string mediaId, StoredThumbnail thumbnail)
    {
        await using var cmd = db.CreateCommand(
            """
            INSERT INTO media_thumbnails (media_id, width, height, method, content_type, data) VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT DO NOTHING
            """);
        cmd.Parameters.AddWithValue(mediaId);
        cmd.Parameters.AddWithValue(thumbnail.Width);
        cmd.Parameters.AddWithValue(thumbnail.Height);
        cmd.Parameters.AddWithValue(thumbnail.Method);
        cmd.Parameters.AddWithValue(thumbnail.ContentType);
        cmd.Parameters.AddWithValue(thumbnail.Data);
        await cmd.ExecuteNonQueryAsync();
    }

    /// <summary>Deletes an upload with its content and thumbnails; false when there was none.</summary>
    public async Task<bool> DeleteAsync(string mediaId)
    {
        await using var cmd = db.CreateCommand("DELETE FROM media WHERE media_id = $1");
        cmd.Parameters.AddWithValue(mediaId);
        return await cmd.ExecuteNonQueryAsync() > 0;
    }

    /// <summary>Deletes everything a user uploaded (an erased account); returns the ids deleted.</summary>
    public async Task<List<string>> DeleteUploadsOfAsync(string uploader)
    {
        await using var cmd = db.CreateCommand("DELETE FROM media WHERE uploader = $1 RETURNING media_id");
        cmd.Parameters.AddWithValue(uploader);
        await using var reader = await cmd.ExecuteReaderAsync();
        var deleted = new List<string>();
        while (await reader.ReadAsync()) deleted.Add(reader.GetString(0));
        return deleted;
    }
}
