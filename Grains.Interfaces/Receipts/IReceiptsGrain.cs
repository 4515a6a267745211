namespace Homeserver.Receipts;

/// <summary>
/// Receipts and read markers of one room. Key: the room id. Checks membership and the event, keeps each user's
/// receipts moving forward only, and appends them to the <c>receipts</c> stream keyed by the room; <c>m.fully_read</c>
/// goes to the user's room account data. Results carry the positions to wait for.
/// </summary>
public interface IReceiptsGrain : IGrainWithStringKey
{
    /// <summary><paramref name="receiptType"/> is <c>m.read</c> or <c>m.read.private</c>; <paramref name="threadId"/>
    /// null for an unthreaded receipt.</summary>
    [Idempotent]
    Task<ReadMarkersResult> SetReceiptAsync(string userId, string receiptType, string eventId, string? threadId);

    /// <summary>Any of the three may be null.</summary>
    [Idempotent]
    Task<ReadMarkersResult> SetReadMarkersAsync(string userId, string? fullyRead, string? read, string? readPrivate);
}

[GenerateSerializer, Immutable]
public sealed record ReadMarkersResult(
    [property: Id(0)] long ReceiptsPosition,
    [property: Id(1)] long AccountDataPosition);
