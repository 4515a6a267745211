using Orleans.Concurrency;

namespace Homeserver.Pushers;

/// <summary>
/// One user's pushers (spec "Push notifications"): their settings, and the delivery of what the user's push rules say
/// notify to each pusher's push gateway. Key: the user id. Woken (one-way) by the room grains after a commit that
/// concerns the user, by the user's read receipts (a badge update) and by each silo's sweep; each delivery reads the
/// events stream from the pusher's own stored position, so a lost wake delays a push but never loses it.
/// </summary>
public interface IPushersGrain : IGrainWithStringKey
{
    /// <summary>Adds, replaces (<see cref="PusherSettings.Append"/> false: the same app id and pushkey of other users
    /// go) or, with a null kind, deletes a pusher. Throws <c>MatrixException</c> 400 for invalid settings.</summary>
    [Idempotent]
    Task SetAsync(PusherSettings settings);

    [Idempotent]
    Task<PusherInfo[]> ListAsync();

    /// <summary>Events up to <paramref name="position"/> (of the events stream) may be new for the user.</summary>
    [OneWay]
    Task WakeAsync(long position);

    /// <summary>The user's read receipt moved in <paramref name="roomId"/>: their badge count may have dropped.</summary>
    [OneWay]
    Task ReceiptMovedAsync(string roomId);
}

/// <summary>The body of <c>POST /pushers/set</c>, checked by the grain. <see cref="DataJson"/> is the <c>data</c> object.</summary>
[GenerateSerializer, Immutable]
public sealed record PusherSettings(
    [property: Id(0)] string? Kind,
    [property: Id(1)] string AppId,
    [property: Id(2)] string PushKey,
    [property: Id(3)] string? AppDisplayName,
    [property: Id(4)] string? DeviceDisplayName,
    [property: Id(5)] string? ProfileTag,
    [property: Id(6)] string? Lang,
    [property: Id(7)] string? DataJson,
    [property: Id(8)] bool Append,
    [property: Id(9)] string? DeviceId);

/// <summary>A pusher as <c>GET /pushers</c> lists it.</summary>
[GenerateSerializer, Immutable]
public sealed record PusherInfo(
    [property: Id(0)] string Kind,
    [property: Id(1)] string AppId,
    [property: Id(2)] string PushKey,
    [property: Id(3)] string AppDisplayName,
    [property: Id(4)] string DeviceDisplayName,
    [property: Id(5)] string? ProfileTag,
    [property: Id(6)] string Lang,
    [property: Id(7)] string DataJson,
    [property: Id(8)] string? DeviceId,
    [property: Id(9)] long PushKeyTs,
    [property: Id(10)] long Position);
