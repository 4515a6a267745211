using Homeserver.Bench;

// dotnet run -c Release --project bench/Homeserver.Bench -- streams [seconds] [callers]
var mode = args.FirstOrDefault() ?? "streams";
switch (mode)
{
    case "streams":
        var seconds = args.Length > 1 ? int.Parse(args[1]) : 10;
        var callers = args.Length > 2 ? int.Parse(args[2]) : 256;
        await StreamBenchmark.RunAsync(TimeSpan.FromSeconds(seconds), callers);
        return 0;
    case "send":
        // dotnet run -c Release --project bench/Homeserver.Bench -- send [seconds] [connections] [users] [rooms] [latency samples]
        int Arg(int i, int fallback) => args.Length > i ? int.Parse(args[i]) : fallback;
        await SendBenchmark.RunAsync(TimeSpan.FromSeconds(Arg(1, 10)), Arg(2, 64), Arg(3, 64), Arg(4, 32), Arg(5, 500));
        return 0;
    case "send-latency":
        // dotnet run -c Release --project bench/Homeserver.Bench -- send-latency [seconds] [rounds] [connections, comma-separated] [baseline settings Key=Value;...]
        await SendLatencyBenchmark.RunAsync(TimeSpan.FromSeconds(args.Length > 1 ? int.Parse(args[1]) : 5), args.Length > 2 ? int.Parse(args[2]) : 3,
            (args.Length > 3 ? args[3] : "1,10,64").Split(',').Select(int.Parse).ToArray(), args.Length > 4 ? args[4] : null);
        return 0;
    case "metrics-cost":
        // dotnet run -c Release --project bench/Homeserver.Bench -- metrics-cost [rounds] [seconds] [connections] [users] [rooms] [excluded meters, comma-separated]...
        int CostArg(int i, int fallback) => args.Length > i ? int.Parse(args[i]) : fallback;
        await MetricsCostBenchmark.RunAsync(CostArg(1, 5), TimeSpan.FromSeconds(CostArg(2, 10)), CostArg(3, 64), CostArg(4, 64), CostArg(5, 32), args.Skip(6).ToList());
        return 0;
    case "fanout":
        // dotnet run -c Release --project bench/Homeserver.Bench -- fanout [members] [rounds]
        await FanoutBenchmark.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 100, args.Length > 2 ? int.Parse(args[2]) : 30);
        return 0;
    case "bigroom":
        // dotnet run -c Release --project bench/Homeserver.Bench -- bigroom [members] [pollers] [rounds] [presence: on|off]
        await BigRoomBenchmark.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 10_000, args.Length > 2 ? int.Parse(args[2]) : 1_000,
            args.Length > 3 ? int.Parse(args[3]) : 30, args.Length <= 4 || args[4] != "off");
        return 0;
    case "idle":
        // dotnet run -c Release --project bench/Homeserver.Bench -- idle [binaries folder] [warm-up s] [measure s] [events/s]
        await IdleBenchmark.RunAsync(args.Length > 1 ? Path.GetFullPath(args[1]) : Directory.GetCurrentDirectory(),
            TimeSpan.FromSeconds(args.Length > 2 ? int.Parse(args[2]) : 90), TimeSpan.FromSeconds(args.Length > 3 ? int.Parse(args[3]) : 60),
            args.Length > 4 ? int.Parse(args[4]) : 40);
        return 0;
    case "cluster":
        // dotnet run -c Release --project bench/Homeserver.Bench -- cluster [binaries folder] [seconds per configuration] [senders] [warm-up s]
        await ClusterBenchmark.RunAsync(args.Length > 1 ? Path.GetFullPath(args[1]) : Directory.GetCurrentDirectory(),
            TimeSpan.FromSeconds(args.Length > 2 ? int.Parse(args[2]) : 20), args.Length > 3 ? int.Parse(args[3]) : 16,
            TimeSpan.FromSeconds(args.Length > 4 ? int.Parse(args[4]) : 10));
        return 0;
    case "bare-silo":
        // Started by `idle` as a child process: an Orleans silo with the homeserver's clustering and nothing else.
        await IdleBenchmark.RunBareSiloAsync(args[1], int.Parse(args[2]), int.Parse(args[3]), args[4], args[5..]);
        return 0;
    case "orleans-floor":
        // dotnet run -c Release --project bench/Homeserver.Bench -- orleans-floor [warm-up s] [measure s]
        await OrleansFloorBenchmark.RunAsync(TimeSpan.FromSeconds(args.Length > 1 ? int.Parse(args[1]) : 60),
            TimeSpan.FromSeconds(args.Length > 2 ? int.Parse(args[2]) : 60));
        return 0;
    case "media":
        // dotnet run -c Release --project bench/Homeserver.Bench -- media [seconds per phase] [connections] [file KiB]
        await MediaSearchBenchmark.RunMediaAsync(TimeSpan.FromSeconds(args.Length > 1 ? int.Parse(args[1]) : 10),
            args.Length > 2 ? int.Parse(args[2]) : 32, (args.Length > 3 ? int.Parse(args[3]) : 1024) * 1024);
        return 0;
    case "send-features":
        // dotnet run -c Release --project bench/Homeserver.Bench -- send-features [seconds] [connections] [users] [rooms] [rounds]
        await SendFeaturesBenchmark.RunAsync(TimeSpan.FromSeconds(args.Length > 1 ? int.Parse(args[1]) : 10), args.Length > 2 ? int.Parse(args[2]) : 64,
            args.Length > 3 ? int.Parse(args[3]) : 64, args.Length > 4 ? int.Parse(args[4]) : 32, args.Length > 5 ? int.Parse(args[5]) : 3);
        return 0;
    case "search":
        // dotnet run -c Release --project bench/Homeserver.Bench -- search [messages] [rooms] [queries per kind]
        await MediaSearchBenchmark.RunSearchAsync(args.Length > 1 ? int.Parse(args[1]) : 1_000_000, args.Length > 2 ? int.Parse(args[2]) : 50,
            args.Length > 3 ? int.Parse(args[3]) : 200);
        return 0;
    case "joins":
        // dotnet run -c Release --project bench/Homeserver.Bench -- joins [users] [rooms] [connections] [pairs of phases] [rooms-first|users-first]
        int JoinsArg(int i, int fallback) => args.Length > i ? int.Parse(args[i]) : fallback;
        await JoinsBenchmark.RunAsync(JoinsArg(1, 300), JoinsArg(2, 300), JoinsArg(3, 32), JoinsArg(4, 1), args.Length <= 5 || args[5] != "users-first");
        return 0;
    case "scale":
        // dotnet run -c Release --project bench/Homeserver.Bench -- scale [rooms] [members] [messages per room] [runs] [warm repeats]
        await ScaleBenchmark.RunAsync(args.Length > 1 ? int.Parse(args[1]) : 300, args.Length > 2 ? int.Parse(args[2]) : 300,
            args.Length > 3 ? int.Parse(args[3]) : 3, args.Length > 4 ? int.Parse(args[4]) : 3, args.Length > 5 ? int.Parse(args[5]) : 3);
        return 0;
    case "scale-process":
        // dotnet run -c Release --project bench/Homeserver.Bench -- scale-process [binaries folder] [rooms] [members] [messages per room] [runs] [warm repeats]
        await ScaleProcessBenchmark.RunAsync(args.Length > 1 ? args[1] : ".", args.Length > 2 ? int.Parse(args[2]) : 300, args.Length > 3 ? int.Parse(args[3]) : 300,
            args.Length > 4 ? int.Parse(args[4]) : 3, args.Length > 5 ? int.Parse(args[5]) : 2, args.Length > 6 ? int.Parse(args[6]) : 3);
        return 0;
    default:
        Console.Error.WriteLine($"unknown benchmark '{mode}'; known: streams, send, metrics-cost, fanout, idle, cluster, orleans-floor, media, search, send-features, joins, send-latency, scale, scale-process, bigroom");
        return 2;
}
