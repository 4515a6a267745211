using Homeserver.Streams;
using Homeserver.Tests.Infrastructure;

namespace Homeserver.Tests.Http.Accounts;

internal static class CrossSilo
{
    /// <summary>Waits until <paramref name="follower"/>'s reader has applied everything <paramref name="leader"/>'s had
    /// applied when called (in the <c>caches</c> stream): after a write answered by the leader, the follower has
    /// applied it too.</summary>
    public static async Task WaitForAsync(TestSilo leader, TestSilo follower)
    {
        var target = StreamToken.Zero.With(StreamNames.Caches, leader.Get<StreamNotifier>().Current[StreamNames.Caches]);
        Assert.True(await follower.Get<StreamNotifier>().WaitForTokenAsync(target, TimeSpan.FromSeconds(10)),
            "The follower's reader did not reach the leader's caches position");
    }
}
