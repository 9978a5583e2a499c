"""Vectorised identifier making and damaging: whole numpy arrays at a time, never a loop per row.

Strings are numpy fixed-width unicode arrays; per-character edits view them as a 2-D uint32
array of code points, so a typo in a million names is a handful of array operations.
"""

from __future__ import annotations

import numpy as np

from linkage.synthetic.vocab import ASCII_FOLD, INWARD_LETTERS

NHS_WEIGHTS = np.arange(10, 1, -1)  # modulus-11 weights of the first nine digits


def compact(values: np.ndarray) -> np.ndarray:
    """The same strings in the narrowest unicode dtype that holds them (other arrays unchanged).

    numpy sizes a string operation's result for the longest string it could make (np.strings.add of U20 and
    U28 is U48, so 8-character postcodes sat in U48), several times what the values need: at 5M people the
    generator's arrays outgrew a 24 GB machine. Values are unchanged, so the files are byte for byte the same.
    """
    if values.dtype.kind != "U" or values.size == 0:
        return values
    width = max(1, int(np.strings.str_len(values).max()))
    return values if 4 * width >= values.dtype.itemsize else values.astype(f"U{width}")


def compact_fields(instance: object) -> None:
    """Every numpy array field of a frozen dataclass `compact`ed in place (call from its __post_init__)."""
    for name, values in vars(instance).items():
        if isinstance(values, np.ndarray):
            object.__setattr__(instance, name, compact(values))


def with_room_for(values: np.ndarray, new: np.ndarray) -> np.ndarray:
    """A copy of `values` wide enough to take `new`'s strings: numpy cuts a longer string assigned into a unicode
    array to the array's width without a word, and compacted arrays have no spare width."""
    return values.astype(f"U{max(values.dtype.itemsize, np.asarray(new).dtype.itemsize, 4) // 4}")


def nhs_check_digit(first_nine: np.ndarray) -> np.ndarray:
    """Modulus-11 check digit of 9-digit integers; 10 means the number cannot be issued."""
    digits = (first_nine[:, None] // 10 ** np.arange(8, -1, -1)) % 10
    check = 11 - (digits * NHS_WEIGHTS).sum(axis=1) % 11
    return np.where(check == 11, 0, check)


def valid_nhs_numbers(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` distinct valid NHS numbers (10-digit strings), never one whose check digit would be 10."""
    drawn = 400_000_000 + rng.choice(400_000_000, size=int(count * 1.15) + 20, replace=False)
    check = nhs_check_digit(drawn)
    keep = check != 10
    numbers = drawn[keep][:count] * 10 + check[keep][:count]
    return numbers.astype("U10")


def break_one_digit(numbers: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Change one digit of each 10-digit string: a single-digit change always fails modulus 11."""
    codes = _as_codes(numbers, 10)
    rows = np.arange(len(numbers))
    pos = rng.integers(0, 10, len(numbers))
    old = codes[rows, pos] - ord("0")
    codes[rows, pos] = (old + rng.integers(1, 10, len(numbers))) % 10 + ord("0")
    return _from_codes(codes)


def typo(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One keying error per name: transpose, drop, double or replace a letter (never the first)."""
    n = len(values)
    if n == 0:
        return values
    lengths = np.strings.str_len(values)
    width = int(lengths.max(initial=1)) + 1
    codes = _as_codes(values, width)
    rows = np.arange(n)
    kind = rng.integers(0, 4, n)
    pos = 1 + (rng.random(n) * np.maximum(lengths - 2, 1)).astype(np.int64)  # 1 .. len-2
    short = lengths < 3
    col = np.arange(width)[None, :]
    # transpose letters pos, pos+1
    swap = (kind == 0) & ~short
    left = codes[rows[swap], pos[swap]].copy()
    codes[rows[swap], pos[swap]] = codes[rows[swap], pos[swap] + 1]
    codes[rows[swap], pos[swap] + 1] = left
    # drop the letter at pos (shift the rest left)
    drop = (kind == 1) & ~short
    source = np.where(col >= pos[:, None], np.minimum(col + 1, width - 1), col)
    dropped = np.take_along_axis(codes, source, axis=1)
    dropped[:, -1] = 0
    codes[drop] = dropped[drop]
    # double the letter at pos (shift the rest right; the extra column makes room)
    double = kind == 2
    source = np.where(col > pos[:, None], col - 1, col)
    codes[double] = np.take_along_axis(codes, source, axis=1)[double]
    # replace the letter at pos with another letter of the same case
    replace = (kind == 3) & ~short
    old = codes[rows, pos]
    is_upper = (old >= ord("A")) & (old <= ord("Z"))
    is_lower = (old >= ord("a")) & (old <= ord("z"))
    base = np.where(is_upper, ord("A"), ord("a"))
    new = base + (old - base + rng.integers(1, 26, n)) % 26
    replace &= is_upper | is_lower
    codes[rows[replace], pos[replace]] = new[replace]
    return _from_codes(codes)


def ascii_fold(values: np.ndarray) -> np.ndarray:
    """What a system without diacritics or apostrophes stores: Zoë -> Zoe, O'Neill -> ONeill."""
    return np.strings.translate(values, ASCII_FOLD) if len(values) else values


def postcodes(rng: np.random.Generator, count: int, areas: tuple[tuple[str, str], ...]) -> np.ndarray:
    """Plausible UK postcodes 'OUTWARD 9AA' in the given areas and outward shapes (may repeat)."""
    area_idx = rng.integers(0, len(areas), count)
    area = np.array([a for a, _ in areas])[area_idx]
    shape = np.array([s for _, s in areas])[area_idx]
    one_digit = rng.integers(1, 10, count).astype(str)
    two_digit = rng.integers(10, 30, count).astype(str)
    letter = np.array(list("ABEHMNPRVWXY"))[rng.integers(0, 12, count)]
    district = np.where(
        shape == "99", two_digit, np.where(shape == "9A", np.strings.add(one_digit, letter), one_digit)
    )
    outward = np.strings.add(area, district)
    inward_letters = np.array(list(INWARD_LETTERS))
    inward = np.strings.add(
        np.strings.add(
            rng.integers(0, 10, count).astype(str),
            inward_letters[rng.integers(0, len(INWARD_LETTERS), count)],
        ),
        inward_letters[rng.integers(0, len(INWARD_LETTERS), count)],
    )
    return np.strings.add(np.strings.add(outward, " "), inward)


def _as_codes(values: np.ndarray, width: int) -> np.ndarray:
    return np.ascontiguousarray(values.astype(f"U{width}")).view(np.uint32).reshape(len(values), width).copy()


def _from_codes(codes: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(codes).view(f"U{codes.shape[1]}").ravel()


def replace(values: np.ndarray, old: str, new: str) -> np.ndarray:
    """np.strings.replace, also for an empty array (numpy 2.4 fails on those)."""
    return np.strings.replace(values, old, new) if len(values) else values


def partition(values: np.ndarray, sep: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.strings.partition, also for an empty array (numpy 2.4 fails on those)."""
    return np.strings.partition(values, sep) if len(values) else (values, values, values)


def prefixed_ids(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """'G00012345'-style ids: prefix plus zero-padded numbers (an empty array stays empty)."""
    if len(numbers) == 0:
        return np.zeros(0, dtype=f"U{len(prefix) + width}")
    return np.strings.add(prefix, np.strings.zfill(np.asarray(numbers).astype(str), width))
