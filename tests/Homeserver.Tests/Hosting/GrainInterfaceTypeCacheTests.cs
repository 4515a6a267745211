using Homeserver.Hosting;
using Homeserver.Rooms;
using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Metadata;
using Orleans.Serialization.TypeSystem;

namespace Homeserver.Tests.Hosting;

/// <summary>The grain interface names a silo resolves through <see cref="GrainInterfaceTypeCache"/> are the ones Orleans'
/// own providers give, and the cache is what the silo's resolver asks.</summary>
public sealed class GrainInterfaceTypeCacheTests
{
    [Fact]
    public async Task Every_grain_interface_resolves_to_the_name_Orleans_gives_it_and_through_the_cache()
    {
        await using var cluster = await HomeserverTestCluster.StartAsync(1);
        var silo = cluster.Silos[0];
        var cache = silo.Get<GrainInterfaceTypeCache>();
        var resolver = silo.Get<GrainInterfaceTypeResolver>();
        var uncached = new GrainInterfaceTypeResolver(
            silo.App.Services.GetServices<IGrainInterfaceTypeProvider>().Where(p => p is not GrainInterfaceTypeCache),
            silo.Get<TypeConverter>());

        var interfaces = typeof(IRoomGrain).Assembly.GetTypes()
            .Where(t => t.IsInterface && typeof(IAddressable).IsAssignableFrom(t) && !t.ContainsGenericParameters)
            .Append(typeof(IGrainWithStringKey)) // an interface of Orleans' own
            .ToList();
        Assert.Contains(typeof(IStreamWriterGrain), interfaces);
        foreach (var type in interfaces)
        {
            var resolved = resolver.GetGrainInterfaceType(type);
            Assert.Equal(uncached.GetGrainInterfaceType(type), resolved);
            Assert.True(cache.Holds(type), $"{type} did not go through the cache");
            Assert.Equal(resolved, resolver.GetGrainInterfaceType(type)); // again, from the cache
        }

        // A reference made through the cache reaches its grain.
        var writer = silo.Grains.GetGrain<IStreamWriterGrain>(StreamNames.WriterKey(StreamNames.Typing, 0));
        Assert.Equal(StreamNames.Typing, (await writer.GetPositionAsync()).Stream);
    }
}
