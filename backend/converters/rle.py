"""Label Studio brush RLE (the ``"format": "rle"`` of BrushLabels), vectorised with numpy.

This is Label Studio's own codec (thi.ng ``rle-pack``), not COCO RLE. A mask [H, W] is stored as
its flattened RGBA buffer (every pixel repeated 4 times, values 0 or 255, H*W*4 bytes) packed
into a big-endian bit stream:

- header: 32 bits value count ``num``, 5 bits ``word_size - 1``, 4 x 4 bits ``rle_size - 1``;
- then tokens ``[flag:1][size_idx:2][count-1:rle_sizes[size_idx]]`` followed by one value
  (flag 1, a repeat of ``count`` equal values) or ``count`` values (flag 0, literals);
- zero bits pad the stream to whole bytes.

``label_studio_sdk.converter.brush.encode_rle`` walks the runs in pure Python and builds a
string of '0'/'1' characters; :func:`mask_to_ls_rle` reproduces its output byte for byte,
including its quirks, which is what the tests pin:

- word size 8 and rle sizes ``(3, 4, 8, 16)``;
- a run of 1 is a literal token ``0 00 000 value``; runs 2-8, 9-16, 17-256 use size index
  0, 1, 2; longer runs use index 3 and are split into chunks of 65536 (the last chunk keeps
  the remainder, 1..65536);
- padding adds ``8 - bits % 8`` zero bits, i.e. a whole zero byte when the stream is already
  byte-aligned.

Encoding never materialises the RGBA buffer: repeating every pixel 4 times multiplies each run
length by 4 and changes nothing else.
"""

from __future__ import annotations

import numpy as np

WORD_SIZE = 8
RLE_SIZES = (3, 4, 8, 16)
RGBA_CHANNELS = 4
_MAX_CHUNK = 2 ** 16  # the sdk splits runs longer than this into chunks of this length
_HEADER_BITS = 32 + 5 + 4 * 4
_MASK64 = (1 << 64) - 1


class RLEError(ValueError):
    """A mask cannot be encoded or an RLE list cannot be decoded; the message gives the numbers."""


def encode_ls_rle(values: np.ndarray) -> list[int]:
    """Encode a flat uint8 buffer exactly like ``label_studio_sdk.converter.brush.encode_rle``.

    Args:
        values: uint8 (or integer 0-255) array [N], N >= 1; for brush masks the RGBA buffer.

    Returns:
        The RLE as a list of Python ints 0-255.

    Raises:
        RLEError: for an empty buffer, values outside 0-255, or N >= 2**32.
    """
    flat = np.asarray(values).ravel()
    if flat.size == 0:
        raise RLEError("cannot RLE-encode an empty buffer: the mask has 0 pixels")
    if flat.dtype != np.uint8:
        if not (np.issubdtype(flat.dtype, np.integer) or flat.dtype == np.bool_):
            raise RLEError(f"RLE values must be integers 0-255, got dtype {flat.dtype}; threshold/cast first")
        if flat.min() < 0 or flat.max() > 255:
            raise RLEError(f"RLE values must be 0-255, got range {flat.min()}..{flat.max()}")
        flat = flat.astype(np.uint8)
    lengths, run_values = _runs(flat)
    return _pack(flat.size, lengths, run_values)


def mask_to_ls_rle(mask: np.ndarray) -> list[int]:
    """Encode a mask as Label Studio brush RLE.

    Byte-identical to ``brush.mask2rle((mask > 0).astype(np.uint8) * 255)``.

    Args:
        mask: bool or numeric array [H, W] in pixels; values > 0 are "on" (as the sdk reference).

    Returns:
        The ``value.rle`` list of a ``brushlabels`` result (ints 0-255).

    Raises:
        RLEError: for a mask that is not 2-D, has no pixels, or has H*W*4 >= 2**32.
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise RLEError(f"mask must be 2-D [H, W], got shape {mask.shape}; encode one frame at a time")
    if mask.size == 0:
        raise RLEError(f"cannot RLE-encode an empty mask of shape {mask.shape}")
    lengths, on = _runs((mask if mask.dtype == np.bool_ else mask > 0).ravel())
    # RGBA repetition: every run becomes 4x longer; on -> 255, off -> 0.
    return _pack(mask.size * RGBA_CHANNELS, lengths * RGBA_CHANNELS, on.astype(np.uint8) * np.uint8(255))


def _runs(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run lengths int64 [R] and run values [R] of a flat array [N >= 1]."""
    starts = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate(([0], starts, [flat.size]))
    return np.diff(bounds), flat[bounds[:-1]]


def _tokens(lengths: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split runs into the sdk's tokens: (token bits as uint64 [K], bit widths int64 [K])."""
    lengths = lengths.astype(np.int64)
    # Runs over 256 take one 16-bit token per started 65536 values; shorter runs take one token.
    per_run = np.where(lengths > 256, (lengths - 1) // _MAX_CHUNK + 1, 1)
    run_of = np.repeat(np.arange(lengths.size), per_run)
    run_len = lengths[run_of]
    is_last = np.zeros(run_of.size, dtype=bool)
    is_last[np.cumsum(per_run) - 1] = True
    chunk = np.where(is_last, run_len - _MAX_CHUNK * (per_run[run_of] - 1), _MAX_CHUNK)
    # The count width follows the whole run's length, not the chunk's (the sdk's branches).
    count_bits = np.select([run_len <= 8, run_len <= 16, run_len <= 256], [3, 4, 8], 16)
    size_idx = np.searchsorted(np.array(RLE_SIZES), count_bits).astype(np.uint64)
    flag = (run_len > 1).astype(np.uint64)  # a lone value is a literal token of count 1
    tokens = (flag << np.uint64(2)) | size_idx
    tokens = (tokens << count_bits.astype(np.uint64)) | (chunk - 1).astype(np.uint64)
    tokens = (tokens << np.uint64(WORD_SIZE)) | values[run_of].astype(np.uint64)
    return tokens, 3 + count_bits + WORD_SIZE


def _header(num: int) -> int:
    """The 53 header bits as an int: num, word_size - 1, rle_sizes - 1."""
    header = num
    for value, bits in [(WORD_SIZE - 1, 5), *[(size - 1, 4) for size in RLE_SIZES]]:
        header = (header << bits) | value
    return header


def _pack(num: int, lengths: np.ndarray, values: np.ndarray) -> list[int]:
    """Header + tokens -> bytes, padded like the sdk (always 1-8 zero bits)."""
    if num >= 2 ** 32:
        raise RLEError(f"LS RLE stores the value count in 32 bits; {num} values (H*W*4) is too many")
    tokens, widths = _tokens(lengths, values)
    tokens = np.concatenate(([np.uint64(_header(num))], tokens))
    widths = np.concatenate(([_HEADER_BITS], widths))
    starts = np.cumsum(widths) - widths
    total_bits = int(starts[-1] + widths[-1])
    # Left-align each token in a 64-bit window that starts at its first byte (width + 7 <= 64),
    # then scatter the 8 window bytes. Tokens own disjoint bits, so summing bytes == OR-ing them.
    windows = tokens << (64 - (starts & 7) - widths).astype(np.uint64)
    first_byte = starts >> 3
    lanes = np.arange(8)
    byte_idx = (first_byte[:, None] + lanes).ravel()
    byte_val = ((windows[:, None] >> (np.uint64(56) - np.uint64(8) * lanes.astype(np.uint64))) & np.uint64(255))
    packed = np.bincount(byte_idx, weights=byte_val.ravel().astype(np.float64), minlength=total_bits // 8 + 9)
    # The sdk pads with 8 - bits % 8 zero bits: a whole zero byte when already aligned.
    return packed[:total_bits // 8 + 1].astype(np.uint8).tolist()


def decode_ls_rle(rle: list[int] | np.ndarray) -> np.ndarray:
    """Decode Label Studio RLE to its flat buffer, like ``brush.decode_rle``.

    Handles any header (word size, rle sizes) and both token kinds, so RLE made by the LS
    frontend decodes as well as RLE made by the sdk or by :func:`mask_to_ls_rle`.

    Args:
        rle: the ``value.rle`` list (ints 0-255).

    Returns:
        uint8 array [num], num from the header (H*W*4 for a brush mask).

    Raises:
        RLEError: for bytes outside 0-255, a stream that ends early, or values over 255.
    """
    reader, num, word_size, rle_sizes = _open(rle)
    lengths, run_values = _decoded_runs(reader, num, word_size, rle_sizes)
    return np.repeat(run_values, lengths)[:num]  # the sdk and the JS decoder both drop values past num


def _open(rle: list[int] | np.ndarray) -> tuple["_BitReader", int, int, list[int]]:
    """Validate the bytes and read the header: (reader, num, word_size, rle_sizes)."""
    data = _as_bytes(rle)
    if data.size < 7:
        raise RLEError(f"an LS RLE holds at least 7 bytes (the header), got {data.size}")
    reader = _BitReader(data)
    num = reader.read(32)
    word_size = reader.read(5) + 1
    rle_sizes = [reader.read(4) + 1 for _ in range(4)]
    return reader, num, word_size, rle_sizes


def _as_bytes(rle: list[int] | np.ndarray) -> np.ndarray:
    """The RLE as uint8 [N], refusing anything that is not a flat sequence of ints 0-255."""
    hint = "is this a COCO RLE (use coco_rle) instead?"
    if isinstance(rle, np.ndarray):
        if rle.ndim != 1 or not np.issubdtype(rle.dtype, np.integer) or (rle.size and (rle.min() < 0 or rle.max() > 255)):
            raise RLEError(f"LS RLE must be a flat array of integers 0-255, got {rle.dtype} {rle.shape}; {hint}")
        return rle.astype(np.uint8)
    try:  # bytes() checks types and the 0-255 range, and is ~5x faster than np.asarray on a list
        return np.frombuffer(bytes(rle), dtype=np.uint8)
    except (TypeError, ValueError) as err:
        raise RLEError(f"LS RLE must be a flat list of integers 0-255 ({err}); {hint}") from err


def _decoded_runs(reader: "_BitReader", num: int, word_size: int,
                  rle_sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """All runs of the stream: (lengths int64 [R], values uint8 [R])."""
    lengths, run_values = _walk_tokens(reader, num, word_size, rle_sizes)
    if run_values and max(run_values) > 255:
        raise RLEError(f"decoded value {max(run_values)} does not fit in a uint8 brush mask (word size {word_size})")
    return np.asarray(lengths, dtype=np.int64), np.asarray(run_values, dtype=np.uint8)


def _walk_tokens(reader: "_BitReader", num: int, word_size: int,
                 rle_sizes: list[int]) -> tuple[list[int], list[int]]:
    """Read tokens until ``num`` values are described: (run lengths, run values).

    The hot loop: one 64-bit window per token holds its flag, size index, count and (for a
    repeat) its value, since 3 + 16 + 32 bits fit in the >= 57 bits a window guarantees.
    """
    windows, total_bits, pos = reader.windows, reader.total_bits, reader.pos
    value_mask = (1 << word_size) - 1
    lengths: list[int] = []
    run_values: list[int] = []
    decoded = 0
    while decoded < num:
        if pos >= total_bits:
            raise _truncated(total_bits, pos, decoded, num)
        window = (windows[pos >> 3] << (pos & 7)) & _MASK64  # bits pos.. left-aligned
        count_bits = rle_sizes[(window >> 61) & 3]
        count = 1 + ((window >> (61 - count_bits)) & ((1 << count_bits) - 1))
        pos += 3 + count_bits
        if window >> 63:  # repeat token: one value, count times
            lengths.append(count)
            run_values.append((window >> (61 - count_bits - word_size)) & value_mask)
            pos += word_size
        else:  # literal token: count values
            if pos + count * word_size > total_bits:
                raise _truncated(total_bits, pos + count * word_size, decoded, num)
            lengths.extend([1] * count)
            run_values.extend(((windows[p >> 3] << (p & 7)) & _MASK64) >> (64 - word_size)
                              for p in range(pos, pos + count * word_size, word_size))
            pos += count * word_size
        decoded += count
    if pos > total_bits:
        raise _truncated(total_bits, pos, decoded, num)
    return lengths, run_values


def _truncated(total_bits: int, needed_bits: int, decoded: int, num: int) -> RLEError:
    return RLEError(f"LS RLE ends after {total_bits} bits but needs {needed_bits} (decoded {decoded} of {num} "
                    "values); the list is truncated or not LS brush RLE")


class _BitReader:
    """Big-endian bit reader over bytes: ``windows[b]`` holds the 64 bits from byte ``b`` on."""

    def __init__(self, data: np.ndarray) -> None:
        padded = np.concatenate((data, np.zeros(8, dtype=np.uint8))).astype(np.uint64)
        windows = np.zeros(data.size, dtype=np.uint64)
        for k in range(8):
            windows |= padded[k:k + data.size] << np.uint64(56 - 8 * k)
        self.windows: list[int] = windows.tolist()
        self.total_bits = 8 * data.size
        self.pos = 0

    def read(self, nbits: int) -> int:
        """The next ``nbits`` (<= 57) bits as an unsigned int."""
        pos = self.pos
        if pos + nbits > self.total_bits:
            raise _truncated(self.total_bits, pos + nbits, 0, 0)
        self.pos = pos + nbits
        return (self.windows[pos >> 3] >> (64 - (pos & 7) - nbits)) & ((1 << nbits) - 1)


def ls_rle_to_mask(rle: list[int] | np.ndarray, height: int, width: int, max_pixels: int | None = None) -> np.ndarray:
    """Decode a brush RLE into a mask, taking the alpha channel like the sdk's exporter.

    The declared size is checked before a single token is read: a few bytes of RLE can claim a
    32k x 32k mask, and decoding allocates the mask at that size.

    Args:
        rle: the ``value.rle`` list of a ``brushlabels`` result.
        height: ``original_height`` of the result, in pixels (a whole number >= 1).
        width: ``original_width`` of the result, in pixels (a whole number >= 1).
        max_pixels: refuse masks of more than this many pixels (height * width); None: no limit.

    Returns:
        bool array [height, width]: alpha > 0.

    Raises:
        RLEError: for a size that is not whole and positive or is over ``max_pixels``, an RLE that does
            not hold ``height * width * 4`` values, or a malformed RLE.
    """
    height, width = _mask_size(height, width, max_pixels)
    reader, num, word_size, rle_sizes = _open(rle)
    expected = height * width * RGBA_CHANNELS
    if num != expected:
        raise RLEError(f"RLE holds {num} values but a {height}x{width} RGBA mask needs {expected} "
                       f"(= {num / RGBA_CHANNELS:.0f} pixels); pass the result's original_height/original_width")
    lengths, run_values = _decoded_runs(reader, num, word_size, rle_sizes)
    # Only the alpha values (index 4k+3 of pixel k) matter: run [start, end) holds the alphas of
    # pixels start//4 .. end//4 - 1, so the 4x RGBA buffer is never built.
    ends = np.minimum(np.cumsum(lengths), num)
    starts = np.concatenate(([0], ends[:-1]))
    return np.repeat(run_values > 0, ends // RGBA_CHANNELS - starts // RGBA_CHANNELS).reshape(height, width)


def _mask_size(height: object, width: object, max_pixels: int | None) -> tuple[int, int]:
    """``(height, width)`` as ints after checking them whole, >= 1 and within ``max_pixels``."""
    sizes = []
    for name, value in (("height", height), ("width", width)):
        whole = isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole or value < 1:
            raise RLEError(f"mask {name} must be a whole number of pixels >= 1, got {value!r}")
        sizes.append(int(value))
    if max_pixels is not None and sizes[0] * sizes[1] > max_pixels:
        raise RLEError(f"a {sizes[1]}x{sizes[0]} mask is {sizes[0] * sizes[1]} pixels; the limit is {max_pixels} "
                       "(UNIPIXEL_MAX_PIXELS)")
    return sizes[0], sizes[1]
