using System.Buffers;
using System.Globalization;

namespace Homeserver.PushRules;

/// <summary>
/// A push rule's glob (spec "Push rules" → <c>event_match</c>: <c>*</c> any run of characters, <c>?</c> any one, the
/// rest literal; case-insensitive), matched against the whole value, or, over <c>content.body</c>, against any run of the
/// body that starts and ends at a word boundary (as Synapse matches body rules).
/// </summary>
/// <remarks>
/// Matched by running the glob's automaton over the text (every position of the pattern the text so far can be at,
/// at once), so any pattern, a hostile <c>*a*a*a*…b</c> too, costs at most the text's length times the pattern's,
/// with nothing to build first. It replaces regular expressions on the non-backtracking engine, which kept the same
/// bound but cost a new process a tenth of its first initial sync to construct (the unread counts compile every
/// user's rules) and a cache of built expressions.
/// </remarks>
public sealed class PushGlob
{
    private const int AnyRun = -1, AnyOne = -2;

    // Each element a folded character, or AnyRun / AnyOne; runs of '*' are one AnyRun.
    private readonly int[] _tokens;
    private readonly bool _words;
    // Without wildcards, over the whole value: a case-insensitive comparison (most rules' `type` conditions).
    private readonly bool _literal;

    public PushGlob(string glob, bool wordBoundary)
    {
        var tokens = new List<int>(glob.Length);
        foreach (var ch in glob)
            if (ch == '*') { if (tokens.Count == 0 || tokens[^1] != AnyRun) tokens.Add(AnyRun); }
            else tokens.Add(ch == '?' ? AnyOne : Fold(ch));
        _tokens = tokens.ToArray();
        _words = wordBoundary;
        _literal = !wordBoundary && !tokens.Contains(AnyRun) && !tokens.Contains(AnyOne);
    }

    public bool IsMatch(string text)
    {
        var tokens = _tokens;
        if (_literal) return IsLiteral(text);

        // The automaton's states are 0..m (m: the whole pattern matched). A state is in a set at most once: its entry
        // in `seen` holds the number of the set that has it.
        var states = tokens.Length + 1;
        int[]? rented = null;
        var buffer = states * 3 <= 768 ? stackalloc int[states * 3] : (rented = ArrayPool<int>.Shared.Rent(states * 3)).AsSpan(0, states * 3);
        try
        {
            var seen = buffer[(2 * states)..];
            seen.Fill(-1);
            var (count, generation) = (0, 0);
            // The current set is the buffer's first or second third, by the generation's parity.
            if (!_words) Add(tokens, Set(buffer, states, generation), ref count, seen, generation, 0);
            for (var i = 0; ; i++)
            {
                var current = Set(buffer, states, generation);
                if (_words)
                {
                    if (i == 0 || !IsWordChar(text[i - 1])) Add(tokens, current, ref count, seen, generation, 0);
                    if (seen[tokens.Length] == generation && (i == text.Length || !IsWordChar(text[i]))) return true;
                }
                if (i == text.Length) return !_words && seen[tokens.Length] == generation;
                if (count == 0 && !_words) return false;

                var ch = Fold(text[i]);
                var next = Set(buffer, states, generation + 1);
                var nextCount = 0;
                for (var s = 0; s < count; s++)
                {
                    var state = current[s];
                    if (state == tokens.Length) continue;
                    var token = tokens[state];
                    if (token == AnyRun) Add(tokens, next, ref nextCount, seen, generation + 1, state);
                    else if (token == AnyOne || token == ch) Add(tokens, next, ref nextCount, seen, generation + 1, state + 1);
                }
                (count, generation) = (nextCount, generation + 1);
            }
        }
        finally
        {
            if (rented is not null) ArrayPool<int>.Shared.Return(rented);
        }
    }

    /// <summary>Whether <paramref name="text"/> holds <paramref name="literal"/> (case-insensitive) as a run starting
    /// and ending at word boundaries: the display name rule's test.</summary>
    public static bool ContainsWords(string text, string literal)
    {
        if (literal.Length == 0) return false;
        for (var from = 0; from <= text.Length - literal.Length;)
        {
            var at = text.AsSpan(from).IndexOf(literal, StringComparison.OrdinalIgnoreCase);
            if (at < 0) return false;
            at += from;
            var end = at + literal.Length;
            if ((at == 0 || !IsWordChar(text[at - 1])) && (end == text.Length || !IsWordChar(text[end]))) return true;
            from = at + 1;
        }
        return false;
    }

    private bool IsLiteral(string text)
    {
        if (text.Length != _tokens.Length) return false;
        for (var i = 0; i < _tokens.Length; i++)
            if (Fold(text[i]) != _tokens[i]) return false;
        return true;
    }

    private static Span<int> Set(Span<int> buffer, int states, int generation) => buffer.Slice((generation & 1) * states, states);

    // Adds a state and, for a '*' (which may match nothing), the state after it.
    private static void Add(int[] tokens, Span<int> set, ref int count, Span<int> seen, int generation, int state)
    {
        while (true)
        {
            if (seen[state] == generation) return;
            seen[state] = generation;
            set[count++] = state;
            if (state == tokens.Length || tokens[state] != AnyRun) return;
            state++;
        }
    }

    private static int Fold(char ch) => char.ToLowerInvariant(ch);

    /// <summary>A word character as regular expressions' <c>\w</c> has it: letters, decimal digits, non-spacing marks and
    /// connector punctuation (<c>_</c>).</summary>
    private static bool IsWordChar(char ch) => ch < 128
        ? char.IsAsciiLetterOrDigit(ch) || ch == '_'
        : char.GetUnicodeCategory(ch) is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter
            or UnicodeCategory.TitlecaseLetter or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
            or UnicodeCategory.NonSpacingMark or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.ConnectorPunctuation;
}
