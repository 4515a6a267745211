using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// Keeps every log entry from <see cref="MinimumLevel"/> up that passes the silos' configured filters, with its
/// structured values, so a test can look for a line and check what no line contains (see <see cref="ErrorLogCapture"/>
/// for errors only).
/// </summary>
public sealed class LogCapture(LogLevel minimumLevel = LogLevel.Trace) : ILoggerProvider
{
    public sealed record Entry(string Category, LogLevel Level, EventId EventId, string Message,
        IReadOnlyList<KeyValuePair<string, object?>> Values, Exception? Exception)
    {
        public object? this[string name] => Values.FirstOrDefault(v => v.Key == name).Value;

        /// <summary>Everything the entry would write anywhere: message, every value, the exception.</summary>
        public string AllText => string.Join("\n", [Message, .. Values.Select(v => $"{v.Key}={v.Value}"), Exception?.ToString() ?? ""]);
    }

    private readonly ConcurrentQueue<Entry> _entries = new();

    public LogLevel MinimumLevel { get; } = minimumLevel;
    public IReadOnlyCollection<Entry> Entries => _entries;

    /// <summary>For <see cref="HomeserverTestCluster.StartAsync"/>'s <c>configure</c>.</summary>
    public void AddTo(WebApplicationBuilder builder) => builder.Logging.AddProvider(this);

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void Dispose() { }

    private sealed class Logger(string category, LogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner.MinimumLevel;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel)) return;
            var values = state as IReadOnlyList<KeyValuePair<string, object?>> ?? [];
            owner._entries.Enqueue(new Entry(category, logLevel, eventId, formatter(state, exception), values.ToList(), exception));
        }
    }
}
