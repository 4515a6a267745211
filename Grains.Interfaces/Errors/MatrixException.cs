namespace Homeserver.Errors;

/// <summary>
/// The one error type of the homeserver. It crosses grain calls (Orleans serialises it) and the front end turns it
/// into <c>{"errcode","error"}</c> with <see cref="Status"/> in exactly one place (Api/Errors).
/// </summary>
[GenerateSerializer]
public sealed class MatrixException : Exception
{
    [Id(0)] public string ErrCode { get; }
    [Id(1)] public int Status { get; }
    /// <summary>Extra top-level fields of the error body (e.g. <c>retry_after_ms</c>, UIA <c>flows</c>), as JSON object text.</summary>
    [Id(2)] public string? ExtraJson { get; }

    public MatrixException(string errCode, string message, int status = 400, string? extraJson = null) : base(message)
    {
        ErrCode = errCode;
        Status = status;
        ExtraJson = extraJson;
    }

    public static MatrixException Forbidden(string message) => new(ErrorCodes.Forbidden, message, 403);
    public static MatrixException NotFound(string message) => new(ErrorCodes.NotFound, message, 404);
    public static MatrixException BadJson(string message) => new(ErrorCodes.BadJson, message, 400);
    public static MatrixException InvalidParam(string message) => new(ErrorCodes.InvalidParam, message, 400);
    public static MatrixException MissingParam(string message) => new(ErrorCodes.MissingParam, message, 400);
    public static MatrixException Unknown(string message, int status = 500) => new(ErrorCodes.Unknown, message, status);
}

/// <summary>The Matrix error codes the homeserver uses (spec: Client-Server API, "Standard error response").</summary>
public static class ErrorCodes
{
    public const string Forbidden = "M_FORBIDDEN";
    public const string UnknownToken = "M_UNKNOWN_TOKEN";
    public const string MissingToken = "M_MISSING_TOKEN";
    public const string BadJson = "M_BAD_JSON";
    public const string NotJson = "M_NOT_JSON";
    public const string NotFound = "M_NOT_FOUND";
    public const string LimitExceeded = "M_LIMIT_EXCEEDED";
    public const string Unrecognized = "M_UNRECOGNIZED";
    public const string Unknown = "M_UNKNOWN";
    public const string Unauthorized = "M_UNAUTHORIZED";
    public const string UserDeactivated = "M_USER_DEACTIVATED";
    public const string UserInUse = "M_USER_IN_USE";
    public const string InvalidUsername = "M_INVALID_USERNAME";
    public const string RoomInUse = "M_ROOM_IN_USE";
    public const string InvalidRoomState = "M_INVALID_ROOM_STATE";
    public const string UnsupportedRoomVersion = "M_UNSUPPORTED_ROOM_VERSION";
    public const string IncompatibleRoomVersion = "M_INCOMPATIBLE_ROOM_VERSION";
    public const string BadState = "M_BAD_STATE";
    public const string GuestAccessForbidden = "M_GUEST_ACCESS_FORBIDDEN";
    public const string MissingParam = "M_MISSING_PARAM";
    public const string InvalidParam = "M_INVALID_PARAM";
    public const string TooLarge = "M_TOO_LARGE";
    public const string Exclusive = "M_EXCLUSIVE";
    public const string ResourceLimitExceeded = "M_RESOURCE_LIMIT_EXCEEDED";
    public const string CannotLeaveServerNoticeRoom = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM";
    public const string ThreepidNotFound = "M_THREEPID_NOT_FOUND";
    public const string ThreepidMediumNotSupported = "M_THREEPID_MEDIUM_NOT_SUPPORTED";
    public const string ThreepidAuthFailed = "M_THREEPID_AUTH_FAILED";
    public const string ServerNotTrusted = "M_SERVER_NOT_TRUSTED";
    public const string WeakPassword = "M_WEAK_PASSWORD";
    public const string WrongRoomKeysVersion = "M_WRONG_ROOM_KEYS_VERSION";
    public const string CannotOverwriteMedia = "M_CANNOT_OVERWRITE_MEDIA";
    public const string NotYetUploaded = "M_NOT_YET_UPLOADED";
}
