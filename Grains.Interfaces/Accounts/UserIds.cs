using Homeserver.Errors;

namespace Homeserver.Accounts;

/// <summary>User id grammar (spec: Appendices, "User Identifiers").</summary>
public static class UserIds
{
    public const int MaxLength = 255;

    /// <summary>The localpart grammar for new accounts: a-z, 0-9 and <c>._=-/+</c>.</summary>
    public static bool IsValidLocalpart(string localpart)
    {
        if (localpart.Length == 0) return false;
        foreach (var c in localpart)
            if (c is not ((>= 'a' and <= 'z') or (>= '0' and <= '9') or '.' or '_' or '=' or '-' or '/' or '+'))
                return false;
        return true;
    }

    public static string Format(string localpart, string serverName) => $"@{localpart}:{serverName}";

    /// <summary>Throws 400 <c>M_INVALID_USERNAME</c> unless <paramref name="localpart"/> may name a new account here.</summary>
    public static string ValidateNewLocalpart(string localpart, string serverName)
    {
        // Registration takes the requested name in lower case, as Synapse does: user ids are lower case, and login
        // is case-insensitive already.
        localpart = localpart.ToLowerInvariant();
        if (!IsValidLocalpart(localpart))
            throw new MatrixException(ErrorCodes.InvalidUsername,
                "User ID can only contain characters a-z, 0-9, or '._=-/+'", 400);
        var userId = Format(localpart, serverName);
        if (userId.Length > MaxLength)
            throw new MatrixException(ErrorCodes.InvalidUsername, $"User ID may not be longer than {MaxLength} characters", 400);
        return userId;
    }

    /// <summary>The localpart of a login identifier: a bare localpart or a full <c>@user:server</c> id of this server
    /// (null when it names another server). Login is case-insensitive, as in Synapse.</summary>
    public static string? LocalpartForLogin(string user, string serverName)
    {
        if (user.StartsWith('@'))
        {
            var colon = user.IndexOf(':');
            if (colon < 0 || user[(colon + 1)..] != serverName) return null;
            user = user[1..colon];
        }
        return user.ToLowerInvariant();
    }
}
