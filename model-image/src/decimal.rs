//! Exact, fast parsing of the plain decimals that fill flow-record CSV cells (`0`, `443`,
//! `0.0123`, `-17.5`), shared by `train`'s reader and `serve`'s request parser.
//!
//! Most cells are short decimals. For those, the digits are read as an integer mantissa `m` and
//! the result is `m / 10^k` for `k` fractional digits: when `m <= 2^53` and `k <= 22`, both are
//! exact doubles and one IEEE division rounds correctly (Clinger's fast path), so the value is
//! bit-for-bit what `str::parse::<f64>` gives. Anything else (exponents, long mantissas, `inf`,
//! text) goes to `str::parse`. This skips the UTF-8 check and the general parser for nearly every
//! cell: in profiles of both `train` and `serve`, float parsing was the largest cost after
//! LightGBM itself.

/// Powers of ten that are exact doubles.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
    1e19, 1e20, 1e21, 1e22,
];

/// The largest integer below which every integer is an exact double.
const EXACT_INTEGER_LIMIT: u64 = 1 << 53;

/// The value of a trimmed cell, exactly as `str::parse::<f64>` reads it; `None` when it is not a
/// number in Rust's float syntax (which includes `inf` and `NaN` spellings).
pub fn parse(cell: &[u8]) -> Option<f64> {
    match parse_plain(cell) {
        Some(value) => Some(value),
        None => std::str::from_utf8(cell).ok()?.parse().ok(),
    }
}

/// `[+-]digits[.digits]` (at least one digit) within the exact range, else `None`.
fn parse_plain(cell: &[u8]) -> Option<f64> {
    let (negative, digits) = match cell.first()? {
        b'-' => (true, &cell[1..]),
        b'+' => (false, &cell[1..]),
        _ => (false, cell),
    };
    let mut mantissa: u64 = 0;
    let mut digit_count = 0;
    let mut fraction_digits = 0;
    let mut seen_point = false;
    for &byte in digits {
        match byte {
            b'0'..=b'9' => {
                // 19 digits always fit in a u64; longer mantissas take the general path.
                if digit_count == 19 {
                    return None;
                }
                mantissa = mantissa * 10 + u64::from(byte - b'0');
                digit_count += 1;
                if seen_point {
                    fraction_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => return None,
        }
    }
    if digit_count == 0 || mantissa > EXACT_INTEGER_LIMIT || fraction_digits >= EXACT_POWERS_OF_TEN.len() {
        return None;
    }
    let magnitude = mantissa as f64 / EXACT_POWERS_OF_TEN[fraction_digits];
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn std_parse(text: &str) -> Option<f64> {
        text.parse().ok()
    }

    fn assert_same(text: &str) {
        let ours = parse(text.as_bytes());
        let reference = std_parse(text);
        match (ours, reference) {
            (Some(a), Some(b)) if a.is_nan() && b.is_nan() => {}
            (Some(a), Some(b)) => assert_eq!(a.to_bits(), b.to_bits(), "{text:?}: {a} vs {b}"),
            (a, b) => assert_eq!(a, b, "{text:?}"),
        }
    }

    #[test]
    fn agrees_with_std_on_every_kind_of_cell() {
        for text in [
            "0",
            "-0",
            "+0",
            "00",
            "1",
            "443",
            "-17.5",
            "0.0123",
            ".5",
            "5.",
            "-.5",
            "+.5",
            "1.",
            "007.250",
            "9007199254740992",
            "9007199254740993",
            "18446744073709551615",
            "12345678901234567890",
            "0.1",
            "0.2",
            "0.3",
            "3.333333333333333",
            "0.0000000000000000000001",
            "1e5",
            "1E-5",
            "-2.5e+3",
            "inf",
            "-inf",
            "Infinity",
            "NaN",
            "nan",
            "",
            "-",
            "+",
            ".",
            "..",
            "1.2.3",
            "1,5",
            "1 5",
            "0x10",
            "abc",
            "192.168.0.1",
            "1_000",
            "١٢",
            "-.",
            "+-1",
            "1-",
        ] {
            assert_same(text);
        }
    }

    #[test]
    fn agrees_with_std_bit_for_bit_on_random_decimals() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for _ in 0..200_000 {
            let digits = rng.random_range(1..=20);
            let mut text = String::new();
            if rng.random_bool(0.3) {
                text.push('-');
            }
            let point = rng.random_range(0..=digits);
            for i in 0..digits {
                if i == point && i > 0 {
                    text.push('.');
                }
                text.push(char::from(b'0' + rng.random_range(0..10u8)));
            }
            assert_same(&text);
        }
        // Values as CSV writers print them: shortest round-trip text of random doubles and floats.
        for _ in 0..200_000 {
            let value = rng.random::<f64>() * 10f64.powi(rng.random_range(-8..12));
            assert_same(&value.to_string());
            assert_same(&(value as f32).to_string());
        }
    }
}
