using System.Globalization;
using System.Text;

namespace Homeserver.Tests.Infrastructure;

/// <summary>One sample of a Prometheus text exposition: <c>name{label="value",...} 12.5</c>.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value)
{
    public string? this[string label] => Labels.TryGetValue(label, out var v) ? v : null;
}

/// <summary>
/// A parser of Prometheus' text format (version 0.0.4) strict enough that a malformed line fails the test: comments
/// and blank lines are skipped; every other line is a metric name, optional labels with escaped quoted values, a value
/// (a float, <c>+Inf</c>, <c>-Inf</c> or <c>NaN</c>) and an optional timestamp.
/// </summary>
public static class PrometheusText
{
    public static IReadOnlyList<PrometheusSample> Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r');
            if (line.Length == 0 || line[0] == '#') continue;
            samples.Add(ParseLine(line));
        }
        return samples;
    }

    private static PrometheusSample ParseLine(string line)
    {
        var i = 0;
        while (i < line.Length && (char.IsAsciiLetterOrDigit(line[i]) || line[i] is '_' or ':')) i++;
        if (i == 0 || char.IsAsciiDigit(line[0])) throw new FormatException($"no metric name: {line}");
        var name = line[..i];
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (line[i] != '}')
            {
                var start = i;
                while (char.IsAsciiLetterOrDigit(line[i]) || line[i] == '_') i++;
                var label = line[start..i];
                if (label.Length == 0 || line[i] != '=' || line[i + 1] != '"') throw new FormatException($"bad label at {i}: {line}");
                i += 2;
                var value = new StringBuilder();
                for (; line[i] != '"'; i++)
                {
                    if (line[i] != '\\') { value.Append(line[i]); continue; }
                    i++;
                    value.Append(line[i] switch { 'n' => '\n', '\\' => '\\', '"' => '"', _ => throw new FormatException($"bad escape: {line}") });
                }
                i++;
                if (!labels.TryAdd(label, value.ToString())) throw new FormatException($"label {label} twice: {line}");
                if (line[i] == ',') i++;
                else if (line[i] != '}') throw new FormatException($"expected , or }} at {i}: {line}");
            }
            i++;
        }
        if (i >= line.Length || line[i] != ' ') throw new FormatException($"expected a space before the value: {line}");
        var fields = line[(i + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length is < 1 or > 2) throw new FormatException($"expected a value and maybe a timestamp: {line}");
        var number = fields[0] switch
        {
            "+Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            var f => double.Parse(f, NumberStyles.Float, CultureInfo.InvariantCulture),
        };
        if (fields.Length == 2) _ = long.Parse(fields[1], CultureInfo.InvariantCulture);
        return new PrometheusSample(name, labels, number);
    }

    /// <summary>GET /metrics of a silo, parsed.</summary>
    public static async Task<IReadOnlyList<PrometheusSample>> ScrapeAsync(HttpClient http, string url = "/metrics")
    {
        using var response = await http.GetAsync(url);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"GET {url}: {(int)response.StatusCode} {body}");
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.MediaType);
        return Parse(body);
    }
}
