"""ImageDecoder on images Pillow encodes here (or that are built here byte by byte): PNG, WebP, BMP, PNM,
TIFF and JPEG 2000 exactly as Pillow decodes them (Pillow produced the ONNX node tests' data, and onnx.reference's
ImageDecoder is Pillow), JPEG against Pillow's own decode of the same bytes, in RGB, BGR and Grayscale;
then streams that are empty, truncated, corrupt, random, of another format or claim an absurd size,
each refused with a clear error instead of a crash.
"""
import io
import struct
import zlib

import numpy as np
import pytest
from onnx import TensorProto, helper
from PIL import Image

from conftest import run_error, run_model

# JPEG decoders may round differently from Pillow's (both are libjpeg-turbo here, which agree exactly);
# a couple of levels is the most a conforming decoder is expected to differ by.
JPEG_LEVELS = 2


def decoder_model(pixel_format):
    graph = helper.make_graph(
        [helper.make_node("ImageDecoder", ["stream"], ["image"], pixel_format=pixel_format)], "decode",
        [helper.make_tensor_value_info("stream", TensorProto.UINT8, ["bytes"])],
        [helper.make_tensor_value_info("image", TensorProto.UINT8, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def decode(binary, tmp_path, data, pixel_format="RGB"):
    path = tmp_path / "model.onnx"
    path.write_bytes(decoder_model(pixel_format).SerializeToString())
    (image,) = run_model(binary, str(path), {"stream": np.frombuffer(data, np.uint8)}, str(tmp_path))
    return image


def decode_error(binary, tmp_path, data, pixel_format="RGB"):
    return run_error(binary, tmp_path, decoder_model(pixel_format), {"stream": np.frombuffer(data, np.uint8)})


def picture(height=37, width=23, channels=3):
    """Smooth gradients with a few sharp edges: what photos and drawings hold."""
    rows, columns = np.mgrid[0:height, 0:width]
    planes = [(rows * 7 + columns * 3) % 256, (rows * columns) % 256, np.where((rows // 5 + columns // 4) % 2 == 0, 230, 20),
              (255 - rows * 6) % 256]
    return np.stack(planes[:channels], axis=-1).astype(np.uint8)


def encode(array, format_, **options):
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[array.shape[-1]]
    with io.BytesIO() as f:
        Image.fromarray(array[..., 0] if mode == "L" else array, mode).save(f, format=format_, **options)
        return f.getvalue()


def pillow(data, mode):
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode))


@pytest.mark.parametrize("channels", [3, 4, 1])
def test_png_decodes_exactly(binary, tmp_path, channels):
    original = picture(channels=channels)
    data = encode(original, "PNG")
    rgb = decode(binary, tmp_path, data)
    assert rgb.shape == (37, 23, 3) and rgb.dtype == np.uint8
    # Alpha is dropped, gray is repeated in each channel: Pillow's convert("RGB").
    expected = np.repeat(original, 3, axis=-1) if channels == 1 else original[..., :3]
    np.testing.assert_array_equal(rgb, expected)
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "BGR"), expected[..., ::-1])
    gray = decode(binary, tmp_path, data, "Grayscale")
    assert gray.shape == (37, 23, 1)
    np.testing.assert_array_equal(gray[..., 0], pillow(data, "L"))


def test_palette_png_decodes_to_its_colors(binary, tmp_path):
    original = picture()
    with io.BytesIO() as f:
        Image.fromarray(original).quantize(colors=16).save(f, format="PNG")
        data = f.getvalue()
    np.testing.assert_array_equal(decode(binary, tmp_path, data), pillow(data, "RGB"))


@pytest.mark.parametrize("channels,options", [
    (3, {"quality": 90}),                                 # 4:2:0 chroma
    (3, {"quality": 75, "subsampling": 0, "progressive": True}),
    (1, {"quality": 85}),
])
def test_jpeg_matches_pillow(binary, tmp_path, channels, options):
    data = encode(picture(channels=channels), "JPEG", **options)
    expected = pillow(data, "RGB").astype(int)
    rgb = decode(binary, tmp_path, data)
    assert rgb.shape == (37, 23, 3) and rgb.dtype == np.uint8
    assert np.abs(rgb.astype(int) - expected).max() <= JPEG_LEVELS
    assert np.abs(decode(binary, tmp_path, data, "BGR").astype(int) - expected[..., ::-1]).max() <= JPEG_LEVELS
    gray = decode(binary, tmp_path, data, "Grayscale")
    assert gray.shape == (37, 23, 1)
    assert np.abs(gray[..., 0].astype(int) - pillow(data, "L").astype(int)).max() <= JPEG_LEVELS


def png_chunk(kind, payload):
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_claiming(width, height):
    """A well-formed PNG header for a width × height RGB image, followed by one row of data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + png_chunk(b"IEND", b""))


def jpeg_claiming(width, height):
    """A Pillow JPEG whose frame header (SOF0) is rewritten to width × height."""
    data = bytearray(encode(picture(), "JPEG"))
    frame = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, frame + 5, height, width)
    return bytes(data)


def test_bad_streams_are_refused_with_a_clear_error(binary, tmp_path):
    jpeg, png = encode(picture(), "JPEG"), encode(picture(), "PNG")
    readable = "JPEG, PNG, WebP, BMP, binary PNM (P5, P6), TIFF or JPEG 2000"
    assert f"is not a {readable} image" in decode_error(binary, tmp_path, b"")
    random = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert f"the encoded stream (4096 bytes) is not a {readable} image" in decode_error(binary, tmp_path, random)
    assert "the JPEG image cannot be decoded" in decode_error(binary, tmp_path, jpeg[:len(jpeg) // 2])
    assert "the JPEG image cannot be decoded (header" in decode_error(binary, tmp_path, jpeg[:20])
    assert "the JPEG image cannot be decoded" in decode_error(binary, tmp_path, jpeg[:3] + random)
    assert "the PNG image cannot be decoded" in decode_error(binary, tmp_path, png[:len(png) // 2])
    corrupt = bytearray(png)
    corrupt[png.index(b"IDAT") + 10] ^= 0xFF
    assert "the PNG image cannot be decoded" in decode_error(binary, tmp_path, bytes(corrupt))
    err = decode_error(binary, tmp_path, png_claiming(100000, 100000))
    assert "the PNG image claims 100000 × 100000 pixels; ImageDecoder decodes at most 67108864 pixels" in err
    err = decode_error(binary, tmp_path, jpeg_claiming(65500, 65500), "Grayscale")
    assert "the JPEG image claims 65500 × 65500 pixels" in err
    assert f"the encoded image is GIF; ImageDecoder reads {readable}" in decode_error(binary, tmp_path, encode(picture(), "GIF"))


@pytest.mark.parametrize("channels", [3, 4, 1])
@pytest.mark.parametrize("options", [{"quality": 80}, {"lossless": True}], ids=["lossy", "lossless"])
def test_webp_decodes_as_pillow_does(binary, tmp_path, channels, options):
    # libwebp decodes lossy streams exactly the same way in every version, so even lossy WebP is exact.
    data = encode(picture(channels=channels), "WEBP", **options)
    expected = pillow(data, "RGB")
    assert expected.shape == (37, 23, 3)
    np.testing.assert_array_equal(decode(binary, tmp_path, data), expected)
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "BGR"), expected[..., ::-1])
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "Grayscale")[..., 0], pillow(data, "L"))
    if channels == 4 and "lossless" in options:
        np.testing.assert_array_equal(expected, picture(channels=4)[..., :3])     # alpha dropped, not composited


def bmp16(array, masks=None, top_down=False):
    """A 16-bit BMP of an RGB array: 5-5-5 (no compression) or the bit fields `masks` (5-6-5 here)."""
    height, width, _ = array.shape
    r, g, b = (array[..., i].astype(np.uint32) for i in range(3))
    pixel = (r >> 3) << 10 | (g >> 3) << 5 | (b >> 3) if masks is None else (r >> 3) << 11 | (g >> 2) << 5 | (b >> 3)
    stride = (width * 2 + 3) // 4 * 4
    rows = [struct.pack(f"<{width}H", *pixel[y]).ljust(stride, b"\0") for y in range(height)]
    data = b"".join(rows if top_down else rows[::-1])
    fields = struct.pack("<III", *masks) if masks else b""
    offset = 14 + 40 + len(fields)
    header = struct.pack("<IiiHHIIiiII", 40, width, -height if top_down else height, 1, 16, 3 if masks else 0, len(data),
                         2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(data), 0, 0, offset) + header + fields + data


def pillow_encoded(image, format_, **options):
    with io.BytesIO() as f:
        image.save(f, format=format_, **options)
        return f.getvalue()


@pytest.mark.parametrize("name", ["rgb", "rgba", "gray", "palette16", "bilevel", "555", "565", "555-top-down"])
def test_bmp_decodes_as_pillow_does(binary, tmp_path, name):
    rgb = picture()
    data = {
        "rgb": lambda: encode(rgb, "BMP"),
        "rgba": lambda: encode(picture(channels=4), "BMP"),       # 32 bits, alpha dropped
        "gray": lambda: encode(picture(channels=1), "BMP"),       # 8-bit palette of grays
        "palette16": lambda: pillow_encoded(Image.fromarray(rgb).quantize(colors=16), "BMP"),
        "bilevel": lambda: pillow_encoded(Image.fromarray(rgb).convert("1"), "BMP"),
        # 16-bit channels: Pillow scales v·255/31 (or /63), stb_image repeats the bits; the decoder must give Pillow's.
        "555": lambda: bmp16(rgb),
        "565": lambda: bmp16(rgb, (0xF800, 0x07E0, 0x001F)),
        "555-top-down": lambda: bmp16(rgb, top_down=True),
    }[name]()
    expected = pillow(data, "RGB")
    assert expected.shape == (37, 23, 3)
    np.testing.assert_array_equal(decode(binary, tmp_path, data), expected)
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "Grayscale")[..., 0], pillow(data, "L"))


def pnm(array, maxval):
    height, width, channels = array.shape
    return (b"P6" if channels == 3 else b"P5") + b"\n# made by a test\n" + b"%d %d\n%d\n" % (width, height, maxval) + array.tobytes()


@pytest.mark.parametrize("name", ["ppm", "pgm", "ppm-maxval-100", "pgm-maxval-7", "ppm-over-maxval"])
def test_pnm_decodes_as_pillow_does(binary, tmp_path, name):
    rgb = picture()
    data = {
        "ppm": lambda: encode(rgb, "PPM"),
        "pgm": lambda: encode(picture(channels=1), "PPM"),
        # Pillow scales samples to 0...255 by round(v / maxval * 255) (half to even), clamped to 255.
        "ppm-maxval-100": lambda: pnm((rgb.astype(int) * 100 // 255).astype(np.uint8), 100),
        "pgm-maxval-7": lambda: pnm((rgb[..., :1].astype(int) * 7 // 255).astype(np.uint8), 7),
        "ppm-over-maxval": lambda: pnm(rgb, 200),
    }[name]()
    expected = pillow(data, "RGB")
    assert expected.shape == (37, 23, 3)
    np.testing.assert_array_equal(decode(binary, tmp_path, data), expected)
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "BGR"), expected[..., ::-1])


def test_bad_webp_bmp_and_pnm_streams_are_refused(binary, tmp_path):
    webp = encode(picture(), "WEBP", quality=80)
    lossless = encode(picture(), "WEBP", lossless=True)
    for data in (webp[:len(webp) // 2], webp[:30], lossless[:len(lossless) // 2]):
        assert "the WebP image cannot be decoded" in decode_error(binary, tmp_path, data)
    huge = bytearray(webp)
    struct.pack_into("<HH", huge, huge.index(b"\x9d\x01\x2a") + 3, 16383, 16383)    # the VP8 key frame's size
    err = decode_error(binary, tmp_path, bytes(huge))
    assert "the WebP image claims 16383 × 16383 pixels; ImageDecoder decodes at most 67108864 pixels" in err
    frames = [Image.fromarray(picture()), Image.fromarray(255 - picture())]
    animated = pillow_encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:])
    assert "the WebP image is animated" in decode_error(binary, tmp_path, animated)

    bmp = encode(picture(), "BMP")
    assert "the BMP image cannot be decoded (truncated: 23 × 37 pixels at 24 bits need the stream to reach byte 2718, it has" \
        " 1359)" in decode_error(binary, tmp_path, bmp[:len(bmp) // 2])
    assert "the BMP image cannot be decoded (truncated header)" in decode_error(binary, tmp_path, bmp[:40])
    big = bytearray(bmp)
    struct.pack_into("<ii", big, 18, 8000, 8000)        # within the pixel bound, but no data: refused before allocating
    assert "the BMP image cannot be decoded (truncated: 8000 × 8000 pixels" in decode_error(binary, tmp_path, bytes(big))
    struct.pack_into("<ii", big, 18, 100000, -100000)
    err = decode_error(binary, tmp_path, bytes(big))
    assert "the BMP image claims 100000 × 100000 pixels; ImageDecoder decodes at most 67108864 pixels" in err
    other_header = bytearray(bmp)
    struct.pack_into("<I", other_header, 14, 64)
    assert "a 64-byte info header" in decode_error(binary, tmp_path, bytes(other_header))
    rle = bytearray(encode(picture(channels=1), "BMP"))
    struct.pack_into("<I", rle, 30, 1)
    assert "compression 1 with 8 bits per pixel" in decode_error(binary, tmp_path, bytes(rle))

    ppm = encode(picture(), "PPM")
    assert "the PNM image cannot be decoded (truncated: 23 × 37 × 3 samples need 2566 bytes, the stream has 1283)" \
        in decode_error(binary, tmp_path, ppm[:len(ppm) // 2])
    assert "the PNM image cannot be decoded (truncated header)" in decode_error(binary, tmp_path, ppm[:9])
    err = decode_error(binary, tmp_path, b"P6\n100000 100000\n255\n" + bytes(64))
    assert "the PNM image claims 100000 × 100000 pixels" in err
    assert "the width has more than 9 digits" in decode_error(binary, tmp_path, b"P6\n1000000000 1\n255\n" + bytes(64))
    assert "the width is not a decimal number" in decode_error(binary, tmp_path, b"P6\n2x 2\n255\n" + bytes(12))
    assert "maxval 65535: 16-bit samples are not decoded" in decode_error(binary, tmp_path, b"P6\n2 2\n65535\n" + bytes(24))
    assert "(maxval 0)" in decode_error(binary, tmp_path, b"P5\n2 2\n0\n" + bytes(4))
    err = decode_error(binary, tmp_path, b"P3\n2 2\n255\n" + b"1 " * 12)
    assert "the PNM image is P3 (plain text, bitmap or PAM); ImageDecoder reads the binary graymap and pixmap forms" in err


TIFF_IMAGES = {
    "RGB": lambda: Image.fromarray(picture()),
    "RGBA": lambda: Image.fromarray(picture(channels=4)),       # unassociated alpha: dropped, not multiplied in
    "L": lambda: Image.fromarray(picture(channels=1)[..., 0]),
    "P": lambda: Image.fromarray(picture()).quantize(colors=16),
    "1": lambda: Image.fromarray(picture()).convert("1"),
}


@pytest.mark.parametrize("mode,compression", [
    (mode, compression) for mode in TIFF_IMAGES for compression in [None, "tiff_lzw", "tiff_adobe_deflate", "packbits", "jpeg"]
    if compression != "jpeg" or mode in ("RGB", "L")      # Pillow writes JPEG-compressed TIFF for RGB and L only
])
def test_tiff_decodes_as_pillow_does(binary, tmp_path, mode, compression):
    data = pillow_encoded(TIFF_IMAGES[mode](), "TIFF", compression=compression)
    expected = pillow(data, "RGB")
    assert expected.shape == (37, 23, 3)
    np.testing.assert_array_equal(decode(binary, tmp_path, data), expected)
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "BGR"), expected[..., ::-1])
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "Grayscale")[..., 0], pillow(data, "L"))
    if mode == "RGBA" and compression != "jpeg":
        np.testing.assert_array_equal(expected, picture(channels=4)[..., :3])


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
@pytest.mark.parametrize("options", [{}, {"no_jp2": True}, {"irreversible": True, "quality_mode": "rates", "quality_layers": [20]},
                                     {"tile_size": (16, 16)}], ids=["jp2", "j2k", "lossy", "tiled"])
def test_jpeg2000_decodes_as_pillow_does(binary, tmp_path, mode, options):
    # Lossy (irreversible 9/7 wavelet) too: OpenJPEG's integer decoding is the same in every 2.5 release.
    data = pillow_encoded(TIFF_IMAGES[mode](), "JPEG2000", **options)
    assert data[:4] == (b"\xff\x4f\xff\x51" if options.get("no_jp2") else b"\x00\x00\x00\x0c")
    expected = pillow(data, "RGB")
    assert expected.shape == (37, 23, 3)
    np.testing.assert_array_equal(decode(binary, tmp_path, data), expected)
    np.testing.assert_array_equal(decode(binary, tmp_path, data, "Grayscale")[..., 0], pillow(data, "L"))


def tiff_claiming(data, width, height):
    """A little-endian TIFF with its first directory's ImageWidth and ImageLength rewritten (as LONGs)."""
    data = bytearray(data)
    directory = struct.unpack_from("<I", data, 4)[0]
    for entry in range(struct.unpack_from("<H", data, directory)[0]):
        at = directory + 2 + 12 * entry
        tag = struct.unpack_from("<H", data, at)[0]
        if tag in (256, 257):
            struct.pack_into("<HHII", data, at, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def test_bad_tiff_and_jpeg2000_streams_are_refused(binary, tmp_path):
    tiff = pillow_encoded(TIFF_IMAGES["RGB"](), "TIFF")
    assert "the TIFF image cannot be decoded (data: TIFFFillStrip: Read error" in decode_error(binary, tmp_path, tiff[:len(tiff) // 2])
    assert "the TIFF image cannot be decoded (header: TIFFFetchDirectory" in decode_error(binary, tmp_path, tiff[:8])
    err = decode_error(binary, tmp_path, tiff_claiming(tiff, 100000, 100000))
    assert "the TIFF image claims 100000 × 100000 pixels; ImageDecoder decodes at most 67108864 pixels" in err
    lzw = pillow_encoded(TIFF_IMAGES["RGB"](), "TIFF", compression="tiff_lzw")
    corrupt = bytearray(lzw)
    corrupt[8:len(lzw) // 2] = bytes(len(lzw) // 2 - 8)    # the LZW data zeroed
    assert "the TIFF image cannot be decoded (data" in decode_error(binary, tmp_path, bytes(corrupt))

    jp2 = pillow_encoded(TIFF_IMAGES["RGB"](), "JPEG2000")
    assert "the JPEG 2000 image cannot be decoded (data: " in decode_error(binary, tmp_path, jp2[:len(jp2) // 2])
    assert "the JPEG 2000 image cannot be decoded (header: " in decode_error(binary, tmp_path, jp2[:60])
    j2k = bytearray(pillow_encoded(TIFF_IMAGES["RGB"](), "JPEG2000", no_jp2=True))
    assert "the JPEG 2000 image cannot be decoded (data: " in decode_error(binary, tmp_path, bytes(j2k[:len(j2k) // 2]))
    struct.pack_into(">IIIIII", j2k, 8, 100000, 100000, 0, 0, 100000, 100000)     # SIZ: image and tile size
    err = decode_error(binary, tmp_path, bytes(j2k))
    assert "the JPEG 2000 image claims 100000 × 100000 pixels; ImageDecoder decodes at most 67108864 pixels" in err
