using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Homeserver.Tests.Infrastructure;

/// <summary>
/// Keeps every log entry at Error or above that the silos write, so a test can assert that what it sent caused no
/// unhandled exception (the error middleware logs those at Error before answering 500).
/// </summary>
public sealed class ErrorLogCapture : ILoggerProvider
{
    public sealed record Entry(string Category, LogLevel Level, string Message, Exception? Exception);

    private readonly ConcurrentQueue<Entry> _entries = new();

    public IReadOnlyCollection<Entry> Entries => _entries;

    /// <summary>For <see cref="HomeserverTestCluster.StartAsync"/>'s <c>configure</c>.</summary>
    public void AddTo(WebApplicationBuilder builder) => builder.Logging.AddProvider(this);

    public ILogger CreateLogger(string categoryName) => new Logger(categoryName, this);

    public void Dispose() { }

    private sealed class Logger(string category, ErrorLogCapture owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Error;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (IsEnabled(logLevel)) owner._entries.Enqueue(new Entry(category, logLevel, formatter(state, exception), exception));
        }
    }
}
