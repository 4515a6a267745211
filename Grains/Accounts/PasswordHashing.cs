using Homeserver.Errors;

namespace Homeserver.Accounts;

/// <summary>
/// Password hashes (BCrypt, deliberately slow: always off the caller's thread). The account grain hashes what it is
/// given; registration hashes a password before a user-interactive session remembers it, so no plaintext password
/// is ever stored, not even for the seconds between a challenge and its answer.
/// </summary>
public static class PasswordHashing
{
    public const int MaxPasswordLength = 512;

    /// <summary>400 <c>M_INVALID_PARAM</c> for a password longer than <see cref="MaxPasswordLength"/>.</summary>
    public static void CheckLength(string password)
    {
        if (password.Length > MaxPasswordLength)
            throw MatrixException.InvalidParam($"Password too long (at most {MaxPasswordLength} characters)");
    }

    public static Task<string> HashAsync(string password, int cost) =>
        Task.Run(() => BCrypt.Net.BCrypt.HashPassword(password, Math.Clamp(cost, 4, 31)));

    public static Task<bool> VerifyAsync(string password, string hash) =>
        Task.Run(() =>
        {
            try { return BCrypt.Net.BCrypt.Verify(password, hash); }
            catch (BCrypt.Net.SaltParseException) { return false; }
        });
}
