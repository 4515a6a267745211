using Homeserver.Errors;
using Homeserver.Profile;
using Homeserver.Streams;
using Microsoft.Extensions.Options;
using Npgsql;

namespace Homeserver.Accounts;

/// <summary>An account as Synapse's admin API shows it. <see cref="CreationTs"/> is in milliseconds;
/// <see cref="LastSeenTs"/> is the latest connection of any of its devices (null when none was recorded).</summary>
public sealed record AdminUser(string Name, string? DisplayName, string? AvatarUrl, bool Admin, bool Deactivated, bool Erased,
    bool IsGuest, long CreationTs, string? UserType, long? LastSeenTs);

/// <summary>The filters and order of <c>GET /_synapse/admin/v2/users</c> (Synapse's <c>get_users_paginate</c>).
/// <see cref="Deactivated"/> and <see cref="Admins"/>: null for both, else only those with that value.</summary>
public sealed record UserListQuery(int From, int Limit, string? UserId, string? Name, bool Guests, bool? Deactivated,
    bool? Admins, string OrderBy, bool Descending);

public sealed record UserPage(IReadOnlyList<AdminUser> Users, long Total);

/// <summary>What <c>PUT /_synapse/admin/v2/users/{userId}</c> asks for; a null flag leaves that field alone.
/// <see cref="DisplayName"/> and <see cref="AvatarUrl"/> are set when their <c>Set…</c> flag is.</summary>
public sealed record UserChanges(
    string? Password, bool LogoutDevices,
    bool SetDisplayName, string? DisplayName,
    bool SetAvatarUrl, string? AvatarUrl,
    bool? Admin, bool? Deactivated,
    bool SetUserType, string? UserType);

/// <summary>
/// The users half of Synapse's admin API (docs/admin_api/user_admin_api.md): lists and reads accounts from the
/// database (reads only: every change goes through the account's <see cref="IUserGrain"/>, which keeps its state in
/// memory, or the <see cref="IProfileGrain"/>), and applies an admin's changes in Synapse's order. Every change
/// returns after this process has applied its effects (revoked tokens refused here, profile changes visible).
/// </summary>
public sealed class UserAdministration(NpgsqlDataSource db, IGrainFactory grains, StreamNotifier notifier, IOptions<HomeserverOptions> options)
{
    private static readonly TimeSpan ReadYourWritesTimeout = TimeSpan.FromSeconds(10);

    /// <summary>Synapse's <c>UserSortOrder</c> values and the column each sorts by (those we do not have, such as
    /// <c>shadow_banned</c> and <c>locked</c>, are false for everyone: the tie-break by name decides).</summary>
    public static readonly IReadOnlyDictionary<string, string> OrderColumns = new Dictionary<string, string>
    {
        ["name"] = "u.user_id",
        ["displayname"] = "displayname",
        ["is_guest"] = "u.is_guest",
        ["admin"] = "admin",
        ["deactivated"] = "u.deactivated",
        ["user_type"] = "u.user_type",
        ["avatar_url"] = "p.avatar_url",
        ["shadow_banned"] = "u.user_id",
        ["creation_ts"] = "u.created_at",
        ["last_seen_ts"] = "ci.last_seen_ts",
        ["locked"] = "u.user_id",
    };

    // A user without a profile row shows its localpart as display name, as the profile API does.
    private const string DisplayName = "CASE WHEN p.user_id IS NULL THEN substring(u.user_id FROM 2 FOR position(':' IN u.user_id) - 2) ELSE p.displayname END";

    private const string UserColumns =
        $"""
        SELECT u.user_id, {DisplayName} AS displayname,
               p.avatar_url, u.admin OR u.user_id = ANY($1) AS admin, u.deactivated, u.erased, u.is_guest,
               (extract(epoch FROM u.created_at) * 1000)::bigint, u.user_type, ci.last_seen_ts
        """;

    private const string UserTables =
        """
          FROM users u
          LEFT JOIN profiles p ON p.user_id = u.user_id
          LEFT JOIN (SELECT user_id, max(last_seen) AS last_seen_ts FROM client_ips GROUP BY user_id) ci ON ci.user_id = u.user_id
        """;

    /// <summary>The account, or null when there is none.</summary>
    public async Task<AdminUser?> GetAsync(string userId)
    {
        await using var cmd = db.CreateCommand($"{UserColumns} {UserTables} WHERE u.user_id = $2");
        cmd.Parameters.AddWithValue(options.Value.AdminUsers);
        cmd.Parameters.AddWithValue(userId);
        await using var reader = await cmd.ExecuteReaderAsync();
        return await reader.ReadAsync() ? Read(reader) : null;
    }

    /// <summary>One page of accounts and how many match in all.</summary>
    public async Task<UserPage> ListAsync(UserListQuery query)
    {
        var filters = new List<string>();
        var parameters = new List<NpgsqlParameter> { new() { Value = options.Value.AdminUsers } };
        string Parameter(object value)
        {
            parameters.Add(new NpgsqlParameter { Value = value });
            return $"${parameters.Count}";
        }
        // As Synapse: `name` matches the localpart or the display name, else `user_id` any part of the id.
        if (query.Name is { Length: > 0 } name)
            filters.Add($"(u.user_id LIKE {Parameter("@%" + Like(name.ToLowerInvariant()) + "%:%")} " +
                        $"OR lower({DisplayName}) LIKE {Parameter("%" + Like(name.ToLowerInvariant()) + "%")})");
        else if (query.UserId is { Length: > 0 } userId)
            filters.Add($"u.user_id LIKE {Parameter("%" + Like(userId.ToLowerInvariant()) + "%")}");
        if (!query.Guests) filters.Add("NOT u.is_guest");
        if (query.Deactivated is { } deactivated) filters.Add($"u.deactivated = {Parameter(deactivated)}");
        if (query.Admins is { } admins) filters.Add($"(u.admin OR u.user_id = ANY($1)) = {Parameter(admins)}");
        var where = filters.Count > 0 ? "WHERE " + string.Join(" AND ", filters) : "";
        var order = OrderColumns[query.OrderBy];
        var direction = query.Descending ? "DESC" : "ASC";

        await using var batch = db.CreateBatch();
        var count = new NpgsqlBatchCommand($"SELECT count(*) {UserTables} {where}");
        var page = new NpgsqlBatchCommand(
            $"{UserColumns} {UserTables} {where} ORDER BY {order} {direction}, u.user_id ASC LIMIT {Parameter(query.Limit)} OFFSET {Parameter(query.From)}");
        // Both commands number their parameters the same way; the count simply does not use the last two.
        foreach (var p in parameters) page.Parameters.Add(p.Clone());
        foreach (var p in parameters.Take(parameters.Count - 2)) count.Parameters.Add(p.Clone());
        batch.BatchCommands.Add(count);
        batch.BatchCommands.Add(page);
        await using var reader = await batch.ExecuteReaderAsync();
        await reader.ReadAsync();
        var total = reader.GetInt64(0);
        await reader.NextResultAsync();
        var users = new List<AdminUser>();
        while (await reader.ReadAsync()) users.Add(Read(reader));
        return new UserPage(users, total);
    }

    /// <summary>Creates the account when there is none (<c>Created</c>) or changes it, as Synapse's
    /// <c>UserRestServletV2.on_PUT</c>, and answers the account as it is now.</summary>
    /// <param name="requester">The admin asking: they may not demote themselves, and a new password of their own
    /// keeps the device they asked from.</param>
    public async Task<(bool Created, AdminUser User)> PutAsync(Requester requester, string userId, UserChanges changes, CancellationToken ct)
    {
        var created = await ApplyAsync(requester, userId, changes, ct);
        return (created, await GetAsync(userId) ?? throw MatrixException.NotFound("User not found"));
    }

    private async Task<bool> ApplyAsync(Requester requester, string userId, UserChanges changes, CancellationToken ct)
    {
        var user = grains.GetGrain<IUserGrain>(userId);
        var profile = grains.GetGrain<IProfileGrain>(userId);
        var target = notifier.Current;
        var existing = await GetAsync(userId);
        if (existing is null)
        {
            var localpart = userId[1..userId.IndexOf(':')];
            if (!UserIds.IsValidLocalpart(localpart) || userId.Length > UserIds.MaxLength)
                throw new MatrixException(ErrorCodes.InvalidUsername, "User ID can only contain characters a-z, 0-9, or '._=-/+'", 400);
            await user.RegisterAsync(new RegisterRequest(changes.Password, IsGuest: false, null, null, InhibitLogin: true,
                Admin: changes.Admin ?? false, UserType: changes.UserType));
            if (changes.SetDisplayName || changes.SetAvatarUrl)
                target = Advance(target, await profile.SetAsync(new ProfileUpdate(changes.SetDisplayName, changes.DisplayName,
                    changes.SetAvatarUrl, changes.AvatarUrl)));
            await notifier.WaitForTokenAsync(target, ReadYourWritesTimeout, ct);
            return true;
        }

        if (changes.SetDisplayName || changes.SetAvatarUrl)
            target = Advance(target, await profile.SetAsync(new ProfileUpdate(changes.SetDisplayName, changes.DisplayName,
                changes.SetAvatarUrl, changes.AvatarUrl)));
        if (changes.Admin is { } admin && admin != existing.Admin)
        {
            if (userId == requester.UserId && !admin) throw new MatrixException(ErrorCodes.Unknown, "You may not demote yourself.", 400);
            await user.SetAdminAsync(admin);
        }
        var reactivate = changes.Deactivated == false && existing.Deactivated;
        if (reactivate)
        {
            // Deactivation removed the password: an account brought back without one could never log in.
            if (changes.Password is null)
                throw new MatrixException(ErrorCodes.Unknown, "Must provide a password to re-activate an account.", 400);
            await user.ReactivateAsync(changes.Password);
        }
        else if (changes.Password is not null)
            target = Advance(target, await user.ChangePasswordAsync(changes.Password, changes.LogoutDevices,
                userId == requester.UserId ? requester.DeviceId : null));
        if (changes.Deactivated == true && !existing.Deactivated)
            target = Advance(target, await user.DeactivateAsync(erase: false));
        if (changes.SetUserType) await user.SetUserTypeAsync(changes.UserType);
        await notifier.WaitForTokenAsync(target, ReadYourWritesTimeout, ct);
        return false;
    }

    private static StreamToken Advance(StreamToken target, long cachesPosition) =>
        cachesPosition > 0 ? target.Advance(StreamNames.Caches, 0, cachesPosition) : target;

    private static StreamToken Advance(StreamToken target, ProfileUpdateResult result)
    {
        target = Advance(target, result.CachesPosition);
        foreach (var write in result.RoomWrites.Where(w => w.Position > 0)) target = target.Advance(StreamNames.Events, write.Writer, write.Position);
        return target;
    }

    /// <summary>A LIKE pattern matching <paramref name="text"/> literally (PostgreSQL's default escape is the backslash).</summary>
    private static string Like(string text) => text.Replace(@"\", @"\\").Replace("%", @"\%").Replace("_", @"\_");

    private static AdminUser Read(NpgsqlDataReader r) => new(
        r.GetString(0), r.IsDBNull(1) ? null : r.GetString(1), r.IsDBNull(2) ? null : r.GetString(2), r.GetBoolean(3),
        r.GetBoolean(4), r.GetBoolean(5), r.GetBoolean(6), r.GetInt64(7), r.IsDBNull(8) ? null : r.GetString(8),
        r.IsDBNull(9) ? null : r.GetInt64(9));
}
