"""ImageDecoder on images Pillow encodes here: PNG exactly, JPEG against Pillow's own decode of the same
bytes, in RGB, BGR and Grayscale; then streams that are empty, truncated, corrupt, random, of another
format or claim an absurd size, each refused with a clear error instead of a crash.
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
    assert "is not a JPEG or PNG image" in decode_error(binary, tmp_path, b"")
    random = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert "the encoded stream (4096 bytes) is not a JPEG or PNG image" in decode_error(binary, tmp_path, random)
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
    assert "the encoded image is BMP; ImageDecoder reads JPEG and PNG" in decode_error(binary, tmp_path, encode(picture(), "BMP"))
