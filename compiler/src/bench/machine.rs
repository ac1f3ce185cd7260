//! The machine the bench runs on: CPU, load, affinity, and this core's single-thread fp32 peak
//! measured by a small C program.

use std::path::Path;
use std::process::Command;

use serde::Serialize;

use crate::error::{Error, Result};

/// What the machine was doing while the bench ran.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// `model name` of /proc/cpuinfo.
    pub cpu: Option<String>,
    /// Logical CPUs of the machine (not only those this process may use).
    pub logical_cpus: usize,
    /// CPUs this process may run on (`taskset -c 1 fomo-ad bench` pins it to one).
    pub cpus_allowed: Option<String>,
    /// 1, 5 and 15 minute load averages when the bench started and when it ended.
    pub load_average_start: Option<[f64; 3]>,
    pub load_average_end: Option<[f64; 3]>,
}

impl Machine {
    pub fn now() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        Machine {
            cpu: field(&cpuinfo, "model name"),
            logical_cpus: match cpuinfo
                .lines()
                .filter(|l| l.starts_with("processor"))
                .count()
            {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
                n => n,
            },
            cpus_allowed: field(&status, "Cpus_allowed_list"),
            load_average_start: load_average(),
            load_average_end: None,
        }
    }
}

fn field(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key))
        .map(|(_, v)| v.trim().to_string())
}

pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut values = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([values.next()??, values.next()??, values.next()??])
}

/// The single-thread fp32 peak: the best of 512- and 256-bit vectors.
#[derive(Clone, Debug, Serialize)]
pub struct Peak {
    pub gflops: f64,
    pub gflops_512_bit: f64,
    pub gflops_256_bit: f64,
    /// How it was measured.
    pub method: String,
}

/// 16 independent accumulator chains of `acc = acc * m + a` over GCC/Clang vector types: more
/// chains than FMA latency x FMA ports, so the loop is bound by FMA throughput alone. Best of 5
/// runs of 20 M iterations per vector width.
const PEAK_C: &str = r#"#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>

#define CHAINS 16
#define ITERATIONS 20000000L

typedef float v16 __attribute__((vector_size(64)));
typedef float v8 __attribute__((vector_size(32)));

static volatile float sink;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define PEAK(NAME, VT, LANES)                                                  \
    static double NAME(void)                                                   \
    {                                                                          \
        volatile float seed_m = 0.999999f, seed_a = 1e-7f;                     \
        VT acc[CHAINS], m, a;                                                  \
        int i, j;                                                              \
        long n;                                                                \
        double start, seconds;                                                 \
        float total = 0.0f;                                                    \
        for (j = 0; j < LANES; ++j) {                                          \
            m[j] = seed_m;                                                     \
            a[j] = seed_a;                                                     \
        }                                                                      \
        for (i = 0; i < CHAINS; ++i)                                           \
            for (j = 0; j < LANES; ++j) acc[i][j] = (float)(i + j) * 1e-3f;    \
        start = now_s();                                                       \
        for (n = 0; n < ITERATIONS; ++n)                                       \
            for (i = 0; i < CHAINS; ++i) acc[i] = acc[i] * m + a;              \
        seconds = now_s() - start;                                             \
        for (i = 0; i < CHAINS; ++i)                                           \
            for (j = 0; j < LANES; ++j) total += acc[i][j];                    \
        sink = total;                                                          \
        return 2.0 * LANES * CHAINS * (double)ITERATIONS / seconds * 1e-9;     \
    }

PEAK(peak512, v16, 16)
PEAK(peak256, v8, 8)

int main(void)
{
    double best512 = 0.0, best256 = 0.0;
    int r;
    for (r = 0; r < 5; ++r) {
        double g = peak512(), h = peak256();
        best512 = g > best512 ? g : best512;
        best256 = h > best256 ? h : best256;
    }
    printf("%.3f %.3f\n", best512, best256);
    return 0;
}
"#;

const PEAK_FLAGS: &[&str] = &[
    "-O3",
    "-march=native",
    "-mprefer-vector-width=512",
    "-ffp-contract=fast",
];

/// Compiles and runs the peak microbenchmark with `cc` in `work`.
pub fn measure_peak(cc: &str, work: &Path) -> Result<Peak> {
    let source = work.join("peak.c");
    let exe = work.join("peak");
    std::fs::write(&source, PEAK_C).map_err(|e| Error::io(&source, e))?;
    let built = Command::new(cc)
        .args(PEAK_FLAGS)
        .arg(&source)
        .arg("-o")
        .arg(&exe)
        .output()
        .map_err(|e| Error::input(&source, format!("cannot run `{cc}`: {e}")))?;
    if !built.status.success() {
        return Err(Error::input(
            &source,
            format!(
                "`{cc}` failed: {}",
                crate::error::one_line(String::from_utf8_lossy(&built.stderr).trim())
            ),
        ));
    }
    let output = Command::new(&exe)
        .output()
        .map_err(|e| Error::io(&exe, e))?;
    let text = String::from_utf8_lossy(&output.stdout);
    let values: Vec<f64> = text
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let [g512, g256] = values[..] else {
        return Err(Error::input(
            &exe,
            format!("unexpected output `{}`", text.trim()),
        ));
    };
    Ok(Peak {
        gflops: g512.max(g256),
        gflops_512_bit: g512,
        gflops_256_bit: g256,
        method: format!(
            "`{cc} {}`: 16 independent FMA chains (acc = acc * m + a) on 512- and 256-bit vectors, \
             2 FLOPs per lane per FMA, best of 5 runs of 20 M iterations, one thread",
            PEAK_FLAGS.join(" ")
        ),
    })
}
