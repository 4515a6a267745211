namespace Homeserver.Errors;

/// <summary>
/// Quoting a client's value in an error message: at most a short prefix, so that a hostile value cannot make the
/// error as large as the request (a 900 KiB login type once came back in a 900 KB error).
/// </summary>
public static class Quote
{
    public const int MaxQuotedLength = 64;

    public static string Short(string? value)
    {
        if (value is null) return "";
        if (value.Length <= MaxQuotedLength) return value;
        // Do not cut a surrogate pair in half.
        var cut = char.IsHighSurrogate(value[MaxQuotedLength - 1]) ? MaxQuotedLength - 1 : MaxQuotedLength;
        return string.Concat(value.AsSpan(0, cut), "…");
    }
}
