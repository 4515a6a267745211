using System.Collections.Concurrent;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Metadata;
using Orleans.Serialization.TypeSystem;

namespace Homeserver.Hosting;

/// <summary>
/// Orleans 10 resolves a grain interface's type name again on every <c>GetGrain</c>: its attribute provider reads the
/// interface's custom attributes by reflection and the fallback formats the interface's name, together 3.4 % of all
/// CPU while one user sends at <c>-c10</c> (two lookups a send, front end → room → writer; docs/benchmarks.md,
/// sixteenth session). A type's name never changes while the process runs, so this provider, asked before the others,
/// answers from a cache that the same resolution (Orleans' own resolver over the other providers) fills once per type.
/// Only the interface's name is cached: which grain class serves it is still Orleans' to decide from the cluster's
/// manifest, which a front end without a silo learns only once connected.
/// </summary>
public sealed class GrainInterfaceTypeCache(IServiceProvider services) : IGrainInterfaceTypeProvider
{
    private readonly ConcurrentDictionary<Type, GrainInterfaceType> _names = new();
    private GrainInterfaceTypeResolver? _resolver;

    /// <summary>Whether <paramref name="type"/>'s name has been resolved (and is answered from the cache).</summary>
    public bool Holds(Type type) => _names.ContainsKey(type);

    public bool TryGetGrainInterfaceType(Type type, out GrainInterfaceType grainInterfaceType)
    {
        if (_names.TryGetValue(type, out grainInterfaceType)) return true;
        // Built on first use, not in the constructor: the other providers are resolved from the same container.
        _resolver ??= new GrainInterfaceTypeResolver(
            services.GetServices<IGrainInterfaceTypeProvider>().Where(p => !ReferenceEquals(p, this)),
            services.GetRequiredService<TypeConverter>());
        grainInterfaceType = _names.GetOrAdd(type, _resolver.GetGrainInterfaceType(type));
        return true;
    }

    /// <summary>Registers the cache ahead of every other provider (the resolver asks them in registration order).</summary>
    public static void AddTo(IServiceCollection services)
    {
        services.AddSingleton<GrainInterfaceTypeCache>();
        services.Insert(0, ServiceDescriptor.Singleton<IGrainInterfaceTypeProvider>(sp => sp.GetRequiredService<GrainInterfaceTypeCache>()));
    }
}
