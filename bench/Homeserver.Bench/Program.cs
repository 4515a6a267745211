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
    default:
        Console.Error.WriteLine($"unknown benchmark '{mode}'; known: streams");
        return 2;
}
