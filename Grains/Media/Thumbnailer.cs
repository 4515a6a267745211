using Homeserver.Errors;
using SkiaSharp;

namespace Homeserver.Media;

/// <summary>One of the sizes thumbnails are made in (spec "Thumbnails": <c>crop</c> fills the box exactly, cutting
/// what overflows; <c>scale</c> fits inside it keeping the aspect ratio).</summary>
public sealed record ThumbnailSize(int Width, int Height, string Method);

/// <summary>
/// Thumbnails with SkiaSharp (Skia's codecs and resampling; no hand-written decoders). As Synapse without dynamic
/// thumbnails, only the standard sizes are made, each once per upload and stored: a request is answered with the
/// standard size that suits it best, so a client asking for every size in turn cannot make the server decode the
/// image more than five times. An image's dimensions are read from its header first and an image of more than
/// <see cref="MediaOptions.MaxImagePixels"/> is refused before any pixel is decoded; JPEGs decode at a reduced scale
/// when the thumbnail is much smaller than the image.
/// </summary>
public static class Thumbnailer
{
    /// <summary>Synapse's default <c>thumbnail_sizes</c>.</summary>
    public static readonly ThumbnailSize[] StandardSizes =
    [
        new(32, 32, "crop"), new(96, 96, "crop"), new(320, 240, "scale"), new(640, 480, "scale"), new(800, 600, "scale"),
    ];

    /// <summary>Content types thumbnails are made of (what Skia decodes that Synapse thumbnails).</summary>
    public static bool CanThumbnail(string? contentType) =>
        contentType?.Split(';')[0].Trim().ToLowerInvariant() is "image/jpeg" or "image/jpg" or "image/png" or "image/gif" or "image/webp" or "image/bmp";

    /// <summary>
    /// The standard size that answers a request for <paramref name="width"/>×<paramref name="height"/> by
    /// <paramref name="method"/>, as Synapse chooses: for crop, the smallest crop size at least as large in both
    /// dimensions with the closest aspect ratio (else the largest); for scale, the smallest at least as large in one
    /// dimension (else the largest).
    /// </summary>
    public static ThumbnailSize Select(int width, int height, string method)
    {
        if (method == "crop")
        {
            return StandardSizes.Where(s => s.Method == "crop")
                .OrderBy(s => s.Width < width || s.Height < height ? 1 : 0)
                .ThenBy(s => Math.Abs((long)width * s.Height - (long)height * s.Width))
                .ThenBy(s => s.Width < width || s.Height < height ? -(long)s.Width * s.Height : (long)s.Width * s.Height)
                .First();
        }
        return StandardSizes.Where(s => s.Method == "scale")
            .OrderBy(s => s.Width >= width || s.Height >= height ? 0 : 1)
            .ThenBy(s => s.Width >= width || s.Height >= height ? (long)s.Width * s.Height : -(long)s.Width * s.Height)
            .First();
    }

    /// <summary>413 <c>M_TOO_LARGE</c> when the image's header (its first bytes) declares more than
    /// <paramref name="maxPixels"/> pixels: checked before the rest of the image is even read.</summary>
    public static void CheckDimensions(byte[] head, long maxPixels)
    {
        using var data = SKData.CreateCopy(head);
        using var codec = SKCodec.Create(data);
        if (codec is not null && (long)codec.Info.Width * codec.Info.Height > maxPixels)
            throw new MatrixException(ErrorCodes.TooLarge, "The image is too large to thumbnail", 413);
    }

    /// <summary>Makes the thumbnail of <paramref name="image"/> at <paramref name="size"/>: JPEG for JPEG sources, PNG
    /// otherwise (transparency survives). 400 for content Skia cannot decode, 413 <c>M_TOO_LARGE</c> for an image
    /// with too many pixels.</summary>
    public static StoredThumbnail Generate(byte[] image, ThumbnailSize size, long maxPixels)
    {
        using var data = SKData.CreateCopy(image);
        using var codec = SKCodec.Create(data) ?? throw Undecodable();
        var info = codec.Info;
        if (info.Width <= 0 || info.Height <= 0) throw Undecodable();
        if ((long)info.Width * info.Height > maxPixels)
            throw new MatrixException(ErrorCodes.TooLarge, "The image is too large to thumbnail", 413);

        var (targetWidth, targetHeight, cropFirst) = Geometry(info.Width, info.Height, size);
        using var decoded = Decode(codec, targetWidth, targetHeight) ?? throw Undecodable();
        using var oriented = Orient(decoded, codec.EncodedOrigin);
        var (w, h) = (oriented.Width, oriented.Height);
        // The orientation may have swapped the axes: compute the geometry again on what is now upright.
        (targetWidth, targetHeight, cropFirst) = Geometry(w, h, size);

        var outputInfo = new SKImageInfo(cropFirst ? size.Width : targetWidth, cropFirst ? size.Height : targetHeight, SKColorType.Rgba8888, SKAlphaType.Premul);
        using var surface = SKSurface.Create(outputInfo) ?? throw Undecodable();
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.Transparent);
        using var source = SKImage.FromBitmap(oriented);
        var sampling = new SKSamplingOptions(SKCubicResampler.Mitchell);
        if (cropFirst)
        {
            // Scale to cover the box, then cut the overflow equally from both sides.
            var scale = Math.Max((double)size.Width / w, (double)size.Height / h);
            var srcWidth = size.Width / scale;
            var srcHeight = size.Height / scale;
            var src = SKRect.Create((float)((w - srcWidth) / 2), (float)((h - srcHeight) / 2), (float)srcWidth, (float)srcHeight);
            canvas.DrawImage(source, src, SKRect.Create(size.Width, size.Height), sampling);
        }
        else
        {
            canvas.DrawImage(source, SKRect.Create(w, h), SKRect.Create(targetWidth, targetHeight), sampling);
        }
        using var snapshot = surface.Snapshot();
        var jpeg = codec.EncodedFormat == SKEncodedImageFormat.Jpeg;
        using var encoded = jpeg ? snapshot.Encode(SKEncodedImageFormat.Jpeg, 80) : snapshot.Encode(SKEncodedImageFormat.Png, 100);
        if (encoded is null) throw Undecodable();
        return new StoredThumbnail(size.Width, size.Height, size.Method, jpeg ? "image/jpeg" : "image/png", encoded.ToArray());
    }

    /// <summary>The drawn size: for scale, the largest that fits the box without enlarging the image; for crop, the box
    /// itself (an image smaller than the box is enlarged to cover it, as Synapse does).</summary>
    private static (int Width, int Height, bool Crop) Geometry(int width, int height, ThumbnailSize size)
    {
        if (size.Method == "crop") return (size.Width, size.Height, true);
        var scale = Math.Min(1.0, Math.Min((double)size.Width / width, (double)size.Height / height));
        return (Math.Max(1, (int)Math.Round(width * scale)), Math.Max(1, (int)Math.Round(height * scale)), false);
    }

    /// <summary>Decodes at the smallest scale the codec supports that is still at least twice the target (JPEG can
    /// decode at 1/2, 1/4, 1/8), which saves memory and time for large photos; other formats decode whole.</summary>
    private static SKBitmap? Decode(SKCodec codec, int targetWidth, int targetHeight)
    {
        var info = codec.Info;
        var desired = Math.Min(1f, Math.Max(2f * targetWidth / info.Width, 2f * targetHeight / info.Height));
        var dimensions = codec.GetScaledDimensions(desired);
        var decodeInfo = new SKImageInfo(dimensions.Width, dimensions.Height, SKColorType.Rgba8888, SKAlphaType.Premul);
        var bitmap = new SKBitmap(decodeInfo);
        var result = codec.GetPixels(decodeInfo, bitmap.GetPixels());
        if (result is SKCodecResult.Success or SKCodecResult.IncompleteInput) return bitmap;
        bitmap.Dispose();
        return null;
    }

    /// <summary>Applies the EXIF orientation, so a phone photo's thumbnail is upright as Synapse makes it.</summary>
    private static SKBitmap Orient(SKBitmap bitmap, SKEncodedOrigin origin)
    {
        if (origin is SKEncodedOrigin.TopLeft) return bitmap.Copy();
        var swap = origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;
        var rotated = new SKBitmap(swap ? bitmap.Height : bitmap.Width, swap ? bitmap.Width : bitmap.Height, bitmap.ColorType, bitmap.AlphaType);
        using var canvas = new SKCanvas(rotated);
        var (w, h) = (bitmap.Width, bitmap.Height);
        // Each maps the stored pixel (x, y) to where it is shown: x' = scaleX·x + skewX·y + transX, y' = skewY·x + scaleY·y + transY.
        canvas.SetMatrix(origin switch
        {
            SKEncodedOrigin.TopRight => new SKMatrix(-1, 0, w, 0, 1, 0, 0, 0, 1),     // mirrored
            SKEncodedOrigin.BottomRight => new SKMatrix(-1, 0, w, 0, -1, h, 0, 0, 1), // turned 180°
            SKEncodedOrigin.BottomLeft => new SKMatrix(1, 0, 0, 0, -1, h, 0, 0, 1),   // upside down, mirrored
            SKEncodedOrigin.LeftTop => new SKMatrix(0, 1, 0, 1, 0, 0, 0, 0, 1),       // transposed
            SKEncodedOrigin.RightTop => new SKMatrix(0, -1, h, 1, 0, 0, 0, 0, 1),     // turned 90° clockwise
            SKEncodedOrigin.RightBottom => new SKMatrix(0, -1, h, -1, 0, w, 0, 0, 1), // transversed
            _ => new SKMatrix(0, 1, 0, -1, 0, w, 0, 0, 1),                            // LeftBottom: turned 90° anticlockwise
        });
        canvas.DrawBitmap(bitmap, 0, 0);
        return rotated;
    }

    private static MatrixException Undecodable() => new(ErrorCodes.Unknown, "The content is not an image the server can thumbnail", 400);
}
