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

    private static readonly System.Collections.Concurrent.ConcurrentDictionary<int, Lazy<Task<string>>> DummyHashes = new();
    private static long _dummyVerifications;

    /// <summary>How many times <see cref="VerifyDummyAsync"/> ran in this process (tests show it runs).</summary>
    public static long DummyVerifications => Interlocked.Read(ref _dummyVerifications);

    /// <summary>
    /// Verifies <paramref name="password"/> against a hash no password matches, made once per process at the
    /// configured cost: the time a wrong password takes, for a login to an account that does not exist (or has no
    /// password), so that the answer's time does not tell an attacker which accounts exist. Always false.
    /// </summary>
    public static async Task<bool> VerifyDummyAsync(string password, int cost)
    {
        var cut = Math.Clamp(cost, 4, 31);
        var hash = await DummyHashes.GetOrAdd(cut, c => new Lazy<Task<string>>(() => HashAsync(Guid.NewGuid().ToString("N"), c))).Value;
        Interlocked.Increment(ref _dummyVerifications);
        await VerifyAsync(password, hash);
        return false;
    }

    public static Task<bool> VerifyAsync(string password, string hash) =>
        Task.Run(() =>
        {
            try { return BCrypt.Net.BCrypt.Verify(password, hash); }
            catch (BCrypt.Net.SaltParseException) { return false; }
        });
}
