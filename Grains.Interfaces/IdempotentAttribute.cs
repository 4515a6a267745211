namespace Homeserver;

/// <summary>
/// A grain method that may be called again with the same arguments without a second effect (a send with its
/// transaction id, a typing or receipt update, a read). When the silo serving such a call dies before it answers, the
/// caller's <c>SiloLossRetryFilter</c> calls it again, and the new activation answers: the client sees no failure.
/// </summary>
[AttributeUsage(AttributeTargets.Method)]
public sealed class IdempotentAttribute : Attribute;
