using Homeserver.Caches;
using Homeserver.Storage;
using Homeserver.Errors;
using Homeserver.Streams;
using Microsoft.Extensions.Options;

namespace Homeserver.Accounts;

/// <summary>
/// One account (see <see cref="IUserGrain"/>). State is read from the database on activation and kept in step with
/// every write this grain makes; the database is the referee between activations (the users primary key decides
/// registration races).
/// </summary>
public sealed class UserGrain(AccountRepository repository, Rooms.RoomEventStore rooms, Media.MediaStore media, IOptions<HomeserverOptions> options)
    : Grain, IUserGrain
{
    private sealed class Device(string id, string? displayName)
    {
        public readonly string Id = id;
        public string? DisplayName = displayName;
        public readonly List<byte[]> TokenHashes = [];
    }

    private string _userId = "";
    private bool _exists;
    private string? _passwordHash;
    private bool _isGuest;
    private bool _deactivated;
    private bool _admin;
    private readonly Dictionary<string, Device> _devices = new(StringComparer.Ordinal);

    public override async Task OnActivateAsync(CancellationToken ct)
    {
        _userId = this.GetPrimaryKeyString();
        var (user, devices) = await StorageOutage.DuringActivationAsync(() => repository.LoadAsync(_userId));
        _exists = user is not null;
        _passwordHash = user?.PasswordHash;
        _isGuest = user?.IsGuest ?? false;
        _deactivated = user?.Deactivated ?? false;
        _admin = user?.Admin ?? false;
        foreach (var d in devices)
        {
            var device = new Device(d.DeviceId, d.DisplayName);
            device.TokenHashes.AddRange(d.TokenHashes);
            _devices[d.DeviceId] = device;
        }
    }

    public async Task<LoginResult> RegisterAsync(RegisterRequest request)
    {
        if (_exists) throw UserInUse();
        var hash = request.PasswordHash;
        if (request.Password is not null) hash = await HashAsync(request.Password);

        AccountRepository.NewSession? session = null;
        string? token = null;
        if (!request.InhibitLogin)
        {
            token = AccessTokens.NewToken();
            var deviceId = string.IsNullOrEmpty(request.DeviceId) ? AccessTokens.NewDeviceId() : request.DeviceId;
            session = new AccountRepository.NewSession(deviceId, request.InitialDeviceDisplayName, AccessTokens.Hash(token), DeviceExists: false);
        }
        if (!await repository.InsertUserAsync(_userId, hash, request.IsGuest, request.Admin, request.UserType, session))
        {
            // Another activation (or a direct insert) got there first: our view is stale, so reload next time.
            this.DeactivateOnIdle();
            throw UserInUse();
        }
        _exists = true;
        _passwordHash = hash;
        _isGuest = request.IsGuest;
        _admin = request.Admin;
        if (session is not null) Remember(session);
        return new LoginResult(_userId, session?.DeviceId, token, 0);
    }

    public async Task<LoginResult> UpgradeGuestAsync(RegisterRequest request)
    {
        if (!_exists || !_isGuest || _deactivated) throw MatrixException.Forbidden("Only a guest account can be upgraded");
        var hash = request.PasswordHash;
        if (request.Password is not null) hash = await HashAsync(request.Password);
        if (hash is null) throw MatrixException.MissingParam("Missing 'password'");
        if (!await repository.UpgradeGuestAsync(_userId, hash)) throw MatrixException.Forbidden("Only a guest account can be upgraded");
        _isGuest = false;
        _passwordHash = hash;
        // The guest's tokens are cached everywhere as a guest's: they go, and the full account starts a new session.
        var revoked = await DeleteAllDevicesAsync();
        if (request.InhibitLogin) return new LoginResult(_userId, null, null, revoked);
        var session = await OpenSessionAsync(request.DeviceId, request.InitialDeviceDisplayName);
        return session with { CachesPosition = Math.Max(revoked, session.CachesPosition) };
    }

    public async Task<LoginResult> LoginAsync(LoginRequest request)
    {
        if (_deactivated)
        {
            // Said as Synapse says it (the hash went with the account), but only after as long as a password check takes.
            await PasswordHashing.VerifyDummyAsync(request.Password, options.Value.PasswordHashCost);
            throw new MatrixException(ErrorCodes.UserDeactivated, "This account has been deactivated", 403);
        }
        if (!await CheckPasswordAsync(request.Password))
            throw MatrixException.Forbidden("Invalid username or password");
        return await OpenSessionAsync(request.DeviceId, request.InitialDeviceDisplayName);
    }

    public async Task<LoginResult> OpenSessionAsync(string? requestedDeviceId, string? initialDeviceDisplayName)
    {
        if (!_exists || _deactivated) throw MatrixException.Forbidden("Invalid username or password");
        long position = 0;
        var deviceId = string.IsNullOrEmpty(requestedDeviceId) ? AccessTokens.NewDeviceId() : requestedDeviceId;
        var exists = _devices.TryGetValue(deviceId, out var device);
        if (exists && device!.TokenHashes.Count > 0)
        {
            // Logging in again on a device replaces its session: the old token stops working everywhere.
            position = await AppendAsync(AccountRows.RevokeTokens(_userId, device.TokenHashes));
            device.TokenHashes.Clear();
        }
        var token = AccessTokens.NewToken();
        var session = new AccountRepository.NewSession(deviceId, exists ? device!.DisplayName : initialDeviceDisplayName,
            AccessTokens.Hash(token), exists);
        await repository.InsertSessionAsync(_userId, session);
        Remember(session);
        if (!exists) await GrainFactory.GetGrain<Keys.IDeviceKeysGrain>(_userId).DevicesChangedAsync([deviceId], deleted: false);
        return new LoginResult(_userId, deviceId, token, position);
    }

    public Task<bool> ExistsAsync() => Task.FromResult(_exists);

    public Task<bool> IsAdminAsync() => Task.FromResult(_exists && !_deactivated && _admin);

    public async Task SetAdminAsync(bool admin)
    {
        if (!_exists) throw MatrixException.NotFound("Unknown user");
        await repository.SetAdminAsync(_userId, admin);
        _admin = admin;
    }

    public async Task SetUserTypeAsync(string? userType)
    {
        if (!_exists) throw MatrixException.NotFound("Unknown user");
        await repository.SetUserTypeAsync(_userId, userType);
    }

    public async Task ReactivateAsync(string password)
    {
        if (!_exists) throw MatrixException.NotFound("Unknown user");
        var hash = await HashAsync(password);
        await repository.ReactivateAsync(_userId, hash);
        _deactivated = false;
        _passwordHash = hash;
    }

    public async Task<bool> CheckPasswordAsync(string password)
    {
        // No account, or one without a password: checked against a stand-in hash, so that the answer takes as long as
        // for a wrong password and its time does not tell which accounts exist.
        if (!_exists || _passwordHash is null) return await PasswordHashing.VerifyDummyAsync(password, options.Value.PasswordHashCost);
        return await PasswordHashing.VerifyAsync(password, _passwordHash);
    }

    public async Task<long> ChangePasswordAsync(string newPassword, bool logoutDevices, string? keepDeviceId)
    {
        if (!_exists) throw MatrixException.NotFound("Unknown user");
        var hash = await HashAsync(newPassword);
        await repository.UpdatePasswordAsync(_userId, hash);
        _passwordHash = hash;
        if (!logoutDevices) return 0;
        return await DeleteDevicesAsync(_devices.Keys.Where(id => id != keepDeviceId).ToArray());
    }

    public Task<DeviceInfo[]> GetDevicesAsync() =>
        Task.FromResult(_devices.Values.OrderBy(d => d.Id, StringComparer.Ordinal).Select(d => new DeviceInfo(d.Id, d.DisplayName)).ToArray());

    public Task<DeviceInfo?> GetDeviceAsync(string deviceId) =>
        Task.FromResult(_devices.TryGetValue(deviceId, out var d) ? new DeviceInfo(d.Id, d.DisplayName) : null);

    public async Task<bool> UpdateDeviceAsync(string deviceId, string? displayName)
    {
        if (!_devices.TryGetValue(deviceId, out var device)) return false;
        await repository.UpdateDisplayNameAsync(_userId, deviceId, displayName);
        device.DisplayName = displayName;
        // The display name is part of what /keys/query shows: those who share a room with the user hear of the change
        // through device_lists.changed (as in Synapse), and query again.
        await GrainFactory.GetGrain<Keys.IDeviceKeysGrain>(_userId).DevicesChangedAsync([deviceId], deleted: false);
        return true;
    }

    public async Task<long> DeleteDevicesAsync(string[] deviceIds)
    {
        var doomed = deviceIds.Distinct(StringComparer.Ordinal).Where(_devices.ContainsKey).ToArray();
        if (doomed.Length == 0) return 0;
        var position = await AppendAsync(AccountRows.DeleteDevices(_userId, doomed, doomed.SelectMany(id => _devices[id].TokenHashes)));
        foreach (var id in doomed) _devices.Remove(id);
        await GrainFactory.GetGrain<Keys.IDeviceKeysGrain>(_userId).DevicesChangedAsync(doomed, deleted: true);
        return position;
    }

    public Task<long> DeleteAllDevicesAsync() => DeleteDevicesAsync(_devices.Keys.ToArray());

    public async Task<long> DeactivateAsync(bool erase)
    {
        if (!_exists) throw MatrixException.NotFound("Unknown user");
        // No new login from the first step on; each later step is safe to repeat, so a deactivation cut short by a
        // failure finishes when it is asked again.
        await repository.DeactivateAsync(_userId, erase);
        _deactivated = true;
        _passwordHash = null;
        var position = await DeleteAllDevicesAsync();
        foreach (var membership in await rooms.GetMembershipsForUserAsync(_userId))
        {
            if (membership.Membership is not ("join" or "invite" or "knock")) continue;
            try
            {
                await GrainFactory.GetGrain<Rooms.IRoomGrain>(membership.RoomId).SetMembershipAsync(
                    new Rooms.MembershipCommand(_userId, _userId, Rooms.MembershipAction.Leave, "Account deactivated"));
            }
            catch (MatrixException)
            {
                // A room that refuses the leave (its state moved on meanwhile) does not stop the rest.
            }
        }
        if (erase)
        {
            var cleared = await GrainFactory.GetGrain<Profile.IProfileGrain>(_userId).SetAsync(new Profile.ProfileUpdate(true, null, true, null));
            position = Math.Max(position, cleared.CachesPosition);
            var invalidated = await GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Caches, 0))
                .AppendAsync([CacheInvalidator.Row(Rooms.ErasedSenders.Cache, _userId)]);
            position = Math.Max(position, invalidated.LastPosition);
            // Their uploads go too, as their messages' content does (avatars and files are personal data).
            await media.DeleteUploadsOfAsync(_userId);
        }
        return position;
    }

    private void Remember(AccountRepository.NewSession session)
    {
        if (!_devices.TryGetValue(session.DeviceId, out var device))
            _devices[session.DeviceId] = device = new Device(session.DeviceId, session.DisplayName);
        device.TokenHashes.Add(session.TokenHash);
    }

    private async Task<long> AppendAsync(StreamRow[] rows)
    {
        var result = await GrainFactory.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Caches, 0)).AppendAsync(rows);
        return result.LastPosition;
    }

    // BCrypt is deliberately slow: PasswordHashing keeps it off the grain scheduler's threads.
    private Task<string> HashAsync(string password) => PasswordHashing.HashAsync(password, options.Value.PasswordHashCost);

    private MatrixException UserInUse() => new(ErrorCodes.UserInUse, "User ID already taken.", 400);
}
