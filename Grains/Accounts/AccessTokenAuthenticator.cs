using Homeserver.Caches;

namespace Homeserver.Accounts;

/// <summary>
/// This silo's token lookups: a cache keyed by token hash in front of <c>access_tokens</c>. Revocations delete the row
/// and invalidate the cache on every silo in one <c>caches</c> stream append, so a miss always reads the truth and a
/// hit is dropped before this silo's reader passes the revocation. Unknown tokens are not cached: a flood of
/// made-up tokens must not evict real ones.
/// </summary>
public sealed class AccessTokenAuthenticator(AccountRepository accounts, CacheRegistry caches) : IAccessTokenAuthenticator
{
    private readonly SiloCache<Requester> _cache = caches.Get<Requester>(AccountRows.TokenCache, 50_000);

    public async ValueTask<Requester?> AuthenticateAsync(string accessToken)
    {
        if (accessToken.Length is 0 or > 512) return null;
        var hash = AccessTokens.Hash(accessToken);
        var key = AccessTokens.CacheKey(hash);
        if (_cache.TryGet(key, out var cached)) return cached;
        var generation = _cache.Generation;
        var requester = await accounts.FindRequesterAsync(hash);
        if (requester is not null) _cache.Store(key, requester, generation);
        return requester;
    }
}
