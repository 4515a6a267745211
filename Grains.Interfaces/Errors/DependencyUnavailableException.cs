namespace Homeserver.Errors;

/// <summary>
/// Something the server depends on (PostgreSQL) could not be reached while a grain served a call: nothing of the call
/// was acknowledged, and the same request may succeed once it is back. Grains throw this instead of the driver's own
/// exception, which Orleans cannot carry to another silo; the front end answers it 503 with <c>Retry-After</c>.
/// </summary>
[GenerateSerializer]
public sealed class DependencyUnavailableException(string message) : Exception(message);
