using System.Text;
using Homeserver.Api.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Routing.Patterns;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Homeserver.Tests.Infrastructure;

/// <summary>One method of one endpoint the app maps, with the body limit its <see cref="ClientBodyPolicy"/> sets.</summary>
public sealed record MappedEndpoint(string Method, RoutePattern Pattern, int MaxBodyBytes)
{
    public string Name => $"{Method} {Pattern.RawText}";

    /// <summary>The path with each parameter's value from <paramref name="valueOf"/> (already escaped as a segment).</summary>
    public string Path(Func<string, string> valueOf)
    {
        var segments = new List<string>();
        foreach (var segment in Pattern.PathSegments)
        {
            var text = new StringBuilder();
            foreach (var part in segment.Parts)
                text.Append(part switch
                {
                    RoutePatternLiteralPart literal => literal.Content,
                    RoutePatternSeparatorPart separator => separator.Content,
                    RoutePatternParameterPart parameter => valueOf(parameter.Name),
                    _ => "",
                });
            segments.Add(text.ToString());
        }
        return "/" + string.Join('/', segments);
    }
}

/// <summary>
/// The endpoints a silo's app maps, read from its own endpoint data source: tests that must cover every endpoint
/// cover a new one without being edited. The fallback (which reads no body and has no method) is left out.
/// </summary>
public static class RouteTable
{
    public static IReadOnlyList<MappedEndpoint> Of(TestSilo silo)
    {
        var defaultLimit = silo.Get<IOptions<HomeserverOptions>>().Value.MaxRequestBodyBytes;
        var list = new List<MappedEndpoint>();
        foreach (var endpoint in silo.Services.GetRequiredService<EndpointDataSource>().Endpoints.OfType<RouteEndpoint>())
        {
            if (endpoint.Metadata.GetMetadata<IHttpMethodMetadata>() is not { } methods) continue;
            var policy = endpoint.Metadata.GetMetadata<ClientBodyPolicy>();
            if (policy is { NotRead: true }) continue;
            foreach (var method in methods.HttpMethods)
                list.Add(new MappedEndpoint(method, endpoint.RoutePattern, policy?.MaxBytes ?? defaultLimit));
        }
        return list;
    }
}
