//! A clearly labelled SYNTHETIC demo dataset in the raw IoTID20 schema.
//!
//! Real IoTID20 rows are never copied into the project. Instead, [`derive_stats`] computes per-class
//! (`Cat`) marginal statistics of every numeric flow feature from a real CSV (the project uses
//! `../shared/data/iotid20/iotid20_sample.csv` relative to the repository root) and prints them as the
//! Rust source of `stats.rs`: the fraction of `inf` cells, the fraction of exact zeros, whether the
//! column is integral, 33 quantiles of the finite non-zero values and, for integral columns with few
//! distinct values (protocol numbers, flag counts), their value shares. Aggregated statistics only,
//! never rows.
//!
//! [`write_demo_csv`] draws rows from those statistics: per row a `Cat` by share, a `Sub_Cat` by share,
//! then every feature independently (inf / zero / inverse-CDF sample from the quantiles), plus a few
//! cheap CICFlowMeter identities (`Subflow_*` = `Tot*`, `*_Seg_Size_Avg` = `*_Pkt_Len_Mean`,
//! `PSH_Flag_Cnt` = `Bwd_PSH_Flags`, `Pkt_Len_Var` = `Pkt_Len_Std`²). The identifiers (`Flow_ID`, IPs,
//! `Timestamp`) are drawn independently of the class, so they carry no label information beyond the
//! ports and protocol they are assembled from.
//!
//! Commands (run from the repository root):
//! - regenerate `stats.rs`:
//!   `cargo run -p model-image -- demo-data --derive-stats ../shared/data/iotid20/iotid20_sample.csv > model-image/src/demo/stats.rs`
//!   (or, without the CLI, `DEMO_REWRITE_STATS=1 cargo test -p model-image --lib stats_rs_is_up_to_date`);
//!   the test `stats_rs_is_up_to_date_with_the_real_sample` fails while the file is stale
//! - regenerate the shipped `data/iotid20-demo.csv` (5,000 rows, seed 20):
//!   `cargo test -p model-image --lib demo -- --ignored regenerate`

mod derive;
#[rustfmt::skip]
#[allow(clippy::approx_constant, clippy::excessive_precision)]
pub mod stats;

pub use derive::{DeriveStatsError, derive_stats};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::schema::RAW_COLUMNS;

/// Quantile levels at which `stats.rs` stores each feature's finite non-zero values (0 and 1 are the
/// minimum and maximum).
pub const QUANTILE_LEVELS: [f64; 33] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5,
    0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.825, 0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 0.99, 0.995, 1.0,
];

/// Integral columns with at most this many distinct finite non-zero values in a class store their value
/// shares ([`FeatureStats::levels`]) and are sampled from them, so that e.g. `Protocol` stays in
/// {6, 17} instead of interpolating to 11.
pub const MAX_LEVELS: usize = 16;

/// Marginal statistics of one numeric feature within one class.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureStats {
    /// Column name in the raw layout.
    pub name: &'static str,
    /// Fraction of non-empty cells that are `inf`.
    pub inf_rate: f64,
    /// Fraction of non-empty cells that are exactly zero.
    pub zero_rate: f64,
    /// Whether every finite value is an integer.
    pub integral: bool,
    /// For integral columns with at most [`MAX_LEVELS`] distinct finite non-zero values: each value and
    /// its share among the finite non-zero values. Empty otherwise.
    pub levels: &'static [(f64, f64)],
    /// Quantiles of the finite non-zero values at [`QUANTILE_LEVELS`] (all zero when there are none).
    pub quantiles: [f64; QUANTILE_LEVELS.len()],
}

/// Statistics of one `Cat`.
#[derive(Debug, Clone, PartialEq)]
pub struct CatStats {
    /// The `Cat` value (Normal, DoS, Mirai, Scan, MITM ARP Spoofing).
    pub cat: &'static str,
    /// Share of the class in the source file.
    pub share: f64,
    /// Rows of the class in the source file.
    pub rows: usize,
    /// `Sub_Cat` names of the class and their shares (summing to 1).
    pub sub_cats: &'static [(&'static str, f64)],
    /// One entry per numeric flow feature, in raw-layout order.
    pub features: &'static [FeatureStats],
}

/// Options of [`write_demo_csv`].
#[derive(Debug, Clone, PartialEq)]
pub struct DemoOptions {
    /// Data rows to write (the header comes on top).
    pub rows: usize,
    /// Seed of the `ChaCha8Rng`: the same options write the same bytes.
    pub seed: u64,
    /// Share of `Cat` Normal (the `Label` Normal class); the attack classes share the rest in the
    /// proportions of the source file. Default 0.1: neither the real sample's 20% nor the full
    /// dataset's 6.4%, so nothing downstream can silently depend on either ratio, while 5,000 rows
    /// still hold about 500 Normal flows.
    pub normal_share: f64,
    /// Fraction of flow-feature cells (the 76 numeric columns after `Timestamp`; ports and protocol
    /// stay filled because `Flow_ID` is built from them) left empty, as the raw dataset has some.
    /// Default 0.001.
    pub missing_rate: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            rows: SHIPPED_ROWS,
            seed: SHIPPED_SEED,
            normal_share: 0.1,
            missing_rate: 0.001,
        }
    }
}

/// Rows of the shipped `data/iotid20-demo.csv`.
pub const SHIPPED_ROWS: usize = 5_000;
/// Seed of the shipped `data/iotid20-demo.csv`.
pub const SHIPPED_SEED: u64 = 20;
/// Path of the shipped demo file relative to the repository root.
pub const SHIPPED_PATH: &str = "data/iotid20-demo.csv";

/// Hosts the synthetic flows run between, drawn independently of the class (a private /24 like the
/// IoTID20 testbed's).
const HOSTS: [u8; 8] = [1, 13, 15, 16, 24, 27, 31, 45];

/// CICFlowMeter identities kept in the demo rows: (column, column it equals).
const COPIES: [(&str, &str); 7] = [
    ("Subflow_Fwd_Pkts", "Tot_Fwd_Pkts"),
    ("Subflow_Bwd_Pkts", "Tot_Bwd_Pkts"),
    ("Subflow_Fwd_Byts", "TotLen_Fwd_Pkts"),
    ("Subflow_Bwd_Byts", "TotLen_Bwd_Pkts"),
    ("Fwd_Seg_Size_Avg", "Fwd_Pkt_Len_Mean"),
    ("Bwd_Seg_Size_Avg", "Bwd_Pkt_Len_Mean"),
    ("PSH_Flag_Cnt", "Bwd_PSH_Flags"),
];

/// Index of the first raw column after `Timestamp`: where missing cells may be injected.
const FIRST_MISSABLE: usize = 7;

/// One sampled cell.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cell {
    Value(f64),
    Inf,
    Empty,
}

/// Writes `opts.rows` synthetic flows in the 86-column raw IoTID20 layout, header first.
pub fn write_demo_csv(opts: &DemoOptions, out: impl std::io::Write) -> std::io::Result<()> {
    let shares = class_shares(opts.normal_share)?;
    if !(0.0..=1.0).contains(&opts.missing_rate) {
        return Err(invalid(format!(
            "missing_rate {} is not in [0, 1]",
            opts.missing_rate
        )));
    }
    let column = |name: &str| RAW_COLUMNS.iter().position(|c| *c == name).expect("raw column");
    let copies: Vec<(usize, usize)> = COPIES
        .iter()
        .map(|(to, from)| (column(to), column(from)))
        .collect();
    let (std_col, var_col) = (column("Pkt_Len_Std"), column("Pkt_Len_Var"));
    // Raw column index of every feature of a class's stats (the same for every class).
    let feature_cols: Vec<usize> = stats::CATS[0].features.iter().map(|f| column(f.name)).collect();
    // A column is written as integers when it is integral in every class.
    let mut integral = vec![false; RAW_COLUMNS.len()];
    for (j, &c) in feature_cols.iter().enumerate() {
        integral[c] = stats::CATS.iter().all(|cat| cat.features[j].integral);
    }

    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut w = csv::Writer::from_writer(out);
    w.write_record(RAW_COLUMNS)?;
    let mut cells = vec![Cell::Value(0.0); RAW_COLUMNS.len()];
    let mut record: Vec<String> = vec![String::new(); RAW_COLUMNS.len()];
    for _ in 0..opts.rows {
        let cat = &stats::CATS[pick(&mut rng, shares.iter().copied())];
        let sub_cat = cat.sub_cats[pick(&mut rng, cat.sub_cats.iter().map(|s| s.1))].0;
        for (f, &c) in cat.features.iter().zip(&feature_cols) {
            cells[c] = sample_feature(f, &mut rng);
        }
        for &(to, from) in &copies {
            cells[to] = cells[from];
        }
        cells[var_col] = match cells[std_col] {
            Cell::Value(s) => Cell::Value(round_sig(s) * round_sig(s)),
            other => other,
        };
        for cell in &mut cells[FIRST_MISSABLE..RAW_COLUMNS.len() - 3] {
            if rng.random::<f64>() < opts.missing_rate {
                *cell = Cell::Empty;
            }
        }
        for (c, rec) in record.iter_mut().enumerate() {
            rec.clear();
            match cells[c] {
                Cell::Value(v) if integral[c] => rec.push_str(&format!("{}", v.round() as i64)),
                Cell::Value(v) => {
                    // Like the raw files, which print float columns as `366.0`.
                    rec.push_str(&format!("{}", round_sig(v)));
                    if !rec.contains('.') {
                        rec.push_str(".0");
                    }
                }
                Cell::Inf => rec.push_str("inf"),
                Cell::Empty => {}
            }
        }
        let (src, dst) = hosts(&mut rng);
        let port = |cell: Cell| match cell {
            Cell::Value(v) => v.round() as i64,
            _ => 0,
        };
        let (sport, dport, proto) = (port(cells[2]), port(cells[4]), port(cells[5]));
        record[0] = format!("192.168.0.{src}-192.168.0.{dst}-{sport}-{dport}-{proto}");
        record[1] = format!("192.168.0.{src}");
        record[3] = format!("192.168.0.{dst}");
        record[6] = timestamp(&mut rng);
        record[83] = if cat.cat == "Normal" { "Normal" } else { "Anomaly" }.to_string();
        record[84] = cat.cat.to_string();
        record[85] = sub_cat.to_string();
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

fn invalid(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

/// Class shares in `stats::CATS` order with Normal set to `normal_share` and the attack classes scaled
/// to share the rest in their source proportions.
fn class_shares(normal_share: f64) -> std::io::Result<Vec<f64>> {
    if !(0.0..=1.0).contains(&normal_share) {
        return Err(invalid(format!("normal_share {normal_share} is not in [0, 1]")));
    }
    let attack_total: f64 = stats::CATS
        .iter()
        .filter(|c| c.cat != "Normal")
        .map(|c| c.share)
        .sum();
    Ok(stats::CATS
        .iter()
        .map(|c| {
            if c.cat == "Normal" {
                normal_share
            } else {
                (1.0 - normal_share) * c.share / attack_total
            }
        })
        .collect())
}

/// Index drawn with probability proportional to `weights`.
fn pick(rng: &mut ChaCha8Rng, weights: impl Iterator<Item = f64> + Clone) -> usize {
    let total: f64 = weights.clone().sum();
    let mut u = rng.random::<f64>() * total;
    let mut last = 0;
    for (i, w) in weights.enumerate() {
        if w > 0.0 {
            last = i;
            if u < w {
                return i;
            }
            u -= w;
        }
    }
    last
}

/// One cell of feature `f`: inf with its inf rate, zero with its zero rate, else a draw from its value
/// shares (few-valued integral columns) or the inverse CDF interpolated linearly between quantiles.
fn sample_feature(f: &FeatureStats, rng: &mut ChaCha8Rng) -> Cell {
    let u = rng.random::<f64>();
    if u < f.inf_rate {
        return Cell::Inf;
    }
    if u < f.inf_rate + f.zero_rate {
        return Cell::Value(0.0);
    }
    let u = rng.random::<f64>();
    if !f.levels.is_empty() {
        return Cell::Value(f.levels[pick(rng, f.levels.iter().map(|l| l.1))].0);
    }
    let v = inverse_cdf(&f.quantiles, u);
    Cell::Value(if f.integral { v.round() } else { v })
}

/// The value at probability `u` of the piecewise-linear CDF through `quantiles` at [`QUANTILE_LEVELS`].
fn inverse_cdf(quantiles: &[f64; QUANTILE_LEVELS.len()], u: f64) -> f64 {
    let i = QUANTILE_LEVELS[1..]
        .iter()
        .position(|&l| u < l)
        .unwrap_or(QUANTILE_LEVELS.len() - 2);
    let (l0, l1) = (QUANTILE_LEVELS[i], QUANTILE_LEVELS[i + 1]);
    let (q0, q1) = (quantiles[i], quantiles[i + 1]);
    q0 + (q1 - q0) * ((u - l0) / (l1 - l0)).clamp(0.0, 1.0)
}

/// `v` rounded to 6 significant digits, to keep the file small.
fn round_sig(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let scale = 10f64.powi(5 - v.abs().log10().floor() as i32);
    (v * scale).round() / scale
}

/// Two distinct hosts of [`HOSTS`].
fn hosts(rng: &mut ChaCha8Rng) -> (u8, u8) {
    let a = rng.random_range(0..HOSTS.len());
    let b = (a + rng.random_range(1..HOSTS.len())) % HOSTS.len();
    (HOSTS[a], HOSTS[b])
}

/// A uniform time in July 2019 as `dd/mm/yyyy hh:mm:ss AM`.
fn timestamp(rng: &mut ChaCha8Rng) -> String {
    let s = rng.random_range(0..31 * 86_400u32);
    let (day, rest) = (s / 86_400 + 1, s % 86_400);
    let (h24, m, sec) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let (h12, ampm) = match h24 {
        0 => (12, "AM"),
        1..=11 => (h24, "AM"),
        12 => (12, "PM"),
        _ => (h24 - 12, "PM"),
    };
    format!("{day:02}/07/2019 {h12:02}:{m:02}:{sec:02} {ampm}")
}

#[cfg(test)]
mod tests;
