using System.Text;
using System.Text.RegularExpressions;
using Homeserver.PushRules;

namespace Homeserver.Tests.Unit;

public sealed class PushGlobTests
{
    // The meaning the matcher replaced: a glob as a regular expression, over the whole value or between word boundaries.
    // The oracle runs on the backtracking interpreter, cheap to construct for these short globs and texts (the
    // non-backtracking engine's construction, 40,000 times over, took the test suite's cores from the clustered tests
    // running beside it).
    private static readonly Dictionary<(string, bool), Regex> Oracles = [];

    private static bool ByRegex(string glob, bool words, string text)
    {
        if (!Oracles.TryGetValue((glob, words), out var regex))
        {
            var body = string.Concat(glob.Select(ch => ch switch { '*' => ".*", '?' => ".", _ => Regex.Escape(ch.ToString()) }));
            Oracles[(glob, words)] = regex = new Regex(words ? $@"(^|\W){body}(\W|$)" : $@"\A{body}\z",
                RegexOptions.IgnoreCase | RegexOptions.CultureInvariant | RegexOptions.Singleline);
        }
        return regex.IsMatch(text);
    }

    [Theory]
    [InlineData("m.room.message", false, "m.room.message", true)]
    [InlineData("m.room.message", false, "M.ROOM.MESSAGE", true)]
    [InlineData("m.room.message", false, "m.room.messages", false)]
    [InlineData("m.room.*", false, "m.room.anything.at.all", true)]
    [InlineData("ye?", false, "yes", true)]
    [InlineData("ye?", false, "ye", false)]
    [InlineData("", false, "", true)]
    [InlineData("*", false, "", true)]
    [InlineData("bob", true, "hey bob, look", true)]
    [InlineData("bob", true, "bobcat", false)]
    [InlineData("bob", true, "BOB", true)]
    [InlineData("bob*", true, "bobcat here", true)]
    [InlineData("b?b", true, "a bib.", true)]
    [InlineData("*", true, "", true)]
    [InlineData("*", true, "x", true)]
    [InlineData("", true, "x", false)]
    [InlineData("a*b", true, "ab b", true)]
    [InlineData("a*b", true, "abc", false)]
    [InlineData("über", true, "Grüße ÜBER alles", true)]
    [InlineData("a.b", false, "a.b", true)]
    [InlineData("a.b", false, "axb", false)]
    public void Matches_as_the_spec_reads_a_glob(string glob, bool words, string text, bool expected)
    {
        Assert.Equal(expected, new PushGlob(glob, words).IsMatch(text));
        Assert.Equal(expected, ByRegex(glob, words, text));
    }

    [Fact]
    public void Agrees_with_the_regular_expression_form_on_random_globs_and_texts()
    {
        var random = new Random(1306);
        const string patternChars = "ab*?A .é_-", textChars = "abAB .,é_-\n";
        for (var i = 0; i < 10_000; i++)
        {
            var glob = Random(random, patternChars, random.Next(0, 7));
            var text = Random(random, textChars, random.Next(0, 12));
            foreach (var words in new[] { false, true })
                Assert.True(ByRegex(glob, words, text) == new PushGlob(glob, words).IsMatch(text),
                    $"glob '{glob}' (words: {words}) over '{text}'");
        }
    }

    [Fact]
    public void A_literal_is_found_between_word_boundaries_only()
    {
        Assert.True(PushGlob.ContainsWords("thanks BOBBY!", "Bobby"));
        Assert.True(PushGlob.ContainsWords("Bobby", "bobby"));
        Assert.False(PushGlob.ContainsWords("Bobbyx Bobby_", "Bobby"));
        Assert.True(PushGlob.ContainsWords("xBobby Bobby", "Bobby")); // the second occurrence
        Assert.True(PushGlob.ContainsWords("hi a*b!", "a*b")); // the name's characters are literal
        Assert.False(PushGlob.ContainsWords("hi axxb!", "a*b"));
        Assert.False(PushGlob.ContainsWords("anything", ""));
    }

    [Fact]
    public void A_hostile_glob_costs_at_most_text_times_pattern()
    {
        var glob = new PushGlob(string.Concat(Enumerable.Repeat("*a", 30)) + "b", wordBoundary: true);
        var text = new string('a', 50_000);
        var started = System.Diagnostics.Stopwatch.StartNew();
        Assert.False(glob.IsMatch(text));
        Assert.True(glob.IsMatch(text + "b"));
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(5), $"took {started.Elapsed}");
    }

    private static string Random(Random random, string alphabet, int length)
    {
        var text = new StringBuilder(length);
        for (var i = 0; i < length; i++) text.Append(alphabet[random.Next(alphabet.Length)]);
        return text.ToString();
    }
}
