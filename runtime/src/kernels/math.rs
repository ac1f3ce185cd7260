//! `sqrt`, `exp` and `ln` for `no_std` without dependencies (`core` has none of them). The
//! scorers call them a few times per grid cell, so they favour accuracy (f64 with exact range
//! reduction) over speed.

const LN_2_HI: f64 = 6.931_471_803_691_238e-1;
const LN_2_LO: f64 = 1.908_214_929_270_587_7e-10;

/// `2^k` for `-1022 <= k <= 1023` (a normal f64).
#[inline]
fn pow2(k: i64) -> f64 {
    f64::from_bits(((k + 1023) as u64) << 52)
}

/// `a * b + c`: one fused instruction and one rounding where the target has a fast FMA and `std`
/// (the `std` feature) provides `f32::mul_add`; a multiply and an add otherwise. Rust never fuses
/// `a * b + c` by itself, which halves the arithmetic rate of every inner loop.
#[inline(always)]
pub fn mul_add(a: f32, b: f32, c: f32) -> f32 {
    #[cfg(all(feature = "std", target_feature = "fma"))]
    {
        a.mul_add(b, c)
    }
    #[cfg(not(all(feature = "std", target_feature = "fma")))]
    {
        a * b + c
    }
}

/// Square root within an ulp or so of the correctly rounded one (Newton's method); negative or
/// NaN gives NaN.
pub fn sqrt_f64(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x == f64::INFINITY {
        return x;
    }
    let (v, scale) = if x < f64::MIN_POSITIVE {
        (x * pow2(54), pow2(-27))
    } else {
        (x, 1.0)
    };
    // Halving the exponent bits gives a start within 6 %; six Newton steps reach f64 precision.
    let mut y = f64::from_bits((v.to_bits() >> 1) + 0x1ff8_0000_0000_0000);
    for _ in 0..6 {
        y = 0.5 * (y + v / y);
    }
    y * scale
}

/// Square root of an f32, through [`sqrt_f64`].
pub fn sqrt(x: f32) -> f32 {
    sqrt_f64(f64::from(x)) as f32
}

/// `e^x` with a relative error of a few f64 ulps.
pub fn exp(x: f64) -> f64 {
    if x.is_nan() {
        return x;
    }
    if x > 709.79 {
        return f64::INFINITY;
    }
    if x < -745.2 {
        return 0.0;
    }
    // x = k ln2 + r with |r| <= ln2 / 2, ln2 split in two so that k ln2 is exact.
    let k = (x * core::f64::consts::LOG2_E + if x < 0.0 { -0.5 } else { 0.5 }) as i64;
    let kf = k as f64;
    let r = (x - kf * LN_2_HI) - kf * LN_2_LO;
    // Taylor series to r^13 / 13!: the next term is below 1e-17 for |r| <= 0.35.
    let mut poly = 1.0;
    for n in (1..=13).rev() {
        poly = 1.0 + poly * r / n as f64;
    }
    if k > 1023 {
        poly * pow2(1023) * pow2(k - 1023)
    } else if k < -1022 {
        poly * pow2(k + 1000) * pow2(-1000)
    } else {
        poly * pow2(k)
    }
}

/// Natural logarithm with a relative error of a few f64 ulps; `ln(0) = -inf`, negative gives NaN.
pub fn ln(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 {
        return f64::NEG_INFINITY;
    }
    if x == f64::INFINITY {
        return x;
    }
    let (x, mut e) = if x < f64::MIN_POSITIVE {
        (x * pow2(54), -54i64)
    } else {
        (x, 0)
    };
    let bits = x.to_bits();
    e += ((bits >> 52) & 0x7ff) as i64 - 1023;
    // Mantissa in [1, 2), moved to [sqrt(1/2), sqrt(2)) so that |s| below stays <= 0.172.
    let mut m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    if m > core::f64::consts::SQRT_2 {
        m *= 0.5;
        e += 1;
    }
    // ln(m) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), s = (m - 1) / (m + 1); to s^23.
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let mut series = 0.0;
    for j in (0..12).rev() {
        series = 1.0 / (2 * j + 1) as f64 + z * series;
    }
    let ef = e as f64;
    ef * LN_2_HI + (ef * LN_2_LO + 2.0 * s * series)
}

/// `ln(sum(exp(v)))` over the values added, computed online so it needs no buffer and never
/// overflows: the running sum is kept relative to the largest value seen.
#[derive(Clone, Copy, Debug)]
pub struct LogSumExp {
    max: f64,
    sum: f64,
}

impl Default for LogSumExp {
    fn default() -> Self {
        LogSumExp::new()
    }
}

impl LogSumExp {
    pub const fn new() -> LogSumExp {
        LogSumExp {
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }
    pub fn add(&mut self, v: f64) {
        if v == f64::NEG_INFINITY {
            return;
        }
        if v > self.max {
            self.sum = self.sum * exp(self.max - v) + 1.0;
            self.max = v;
        } else {
            self.sum += exp(v - self.max);
        }
    }
    /// The log of the sum; `-inf` when nothing (or only `-inf`) was added.
    pub fn value(&self) -> f64 {
        if self.sum == 0.0 {
            f64::NEG_INFINITY
        } else {
            self.max + ln(self.sum)
        }
    }
}
