//! The generator of `stats.rs`: per-class marginal statistics of a real IoTID20 CSV, printed as Rust.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{MAX_LEVELS, QUANTILE_LEVELS};
use crate::schema::flow_feature_columns;

/// The `Cat` values, in the order `stats.rs` lists them, with the raw dataset's `Sub_Cat` names of each.
pub const CAT_SUB_CATS: [(&str, &[&str]); 5] = [
    ("Normal", &["Normal"]),
    ("DoS", &["DoS-Synflooding"]),
    (
        "Mirai",
        &[
            "Mirai-Ackflooding",
            "Mirai-HTTP Flooding",
            "Mirai-Hostbruteforceg",
            "Mirai-UDP Flooding",
        ],
    ),
    ("Scan", &["Scan Hostport", "Scan Port OS"]),
    ("MITM ARP Spoofing", &["MITM ARP Spoofing"]),
];

/// Why [`derive_stats`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DeriveStatsError {
    #[error("reading the real CSV: {0}")]
    Csv(#[from] csv::Error),
    #[error("the real CSV has no column `{0}`")]
    MissingColumn(String),
    #[error(
        "data row {row}: unknown Cat `{cat}` (expected one of Normal, DoS, Mirai, Scan, MITM ARP Spoofing)"
    )]
    UnknownCat { row: usize, cat: String },
    #[error("data row {row}, column `{column}`: `{cell}` is not a number")]
    NotANumber {
        row: usize,
        column: String,
        cell: String,
    },
    #[error("the real CSV has no row of Cat `{0}`")]
    MissingCat(&'static str),
}

/// Accumulated cells of one feature within one class.
#[derive(Default)]
struct Acc {
    cells: usize,
    inf: usize,
    zero: usize,
    integral: bool,
    nonzero: Vec<f64>,
}

/// Reads a real IoTID20 CSV (the 79 numeric flow features by their raw names and `Cat`; `Sub_Cat` is
/// used when present, other columns are ignored) and returns the Rust source of `stats.rs`: per `Cat`
/// and feature the inf rate, zero rate, integrality, quantiles of the finite non-zero values and (for
/// few-valued integral columns) value shares, plus class and `Sub_Cat` shares. Aggregated statistics
/// only: no row of the input can be recovered from the output.
///
/// `inf`/`-inf`/`Infinity` cells count as inf; empty and `nan` cells are skipped (the rates are over
/// the non-empty cells).
pub fn derive_stats(real_csv: &Path) -> Result<String, DeriveStatsError> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(real_csv)?;
    let headers = reader.headers()?.clone();
    let find = |name: &str| {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| DeriveStatsError::MissingColumn(name.to_string()))
    };
    let features: Vec<&'static str> = flow_feature_columns().collect();
    let feature_idx = features.iter().map(|f| find(f)).collect::<Result<Vec<_>, _>>()?;
    let cat_idx = find("Cat")?;
    let sub_cat_idx = find("Sub_Cat").ok();

    let new_acc = || {
        (0..features.len())
            .map(|_| Acc {
                integral: true,
                ..Acc::default()
            })
            .collect::<Vec<_>>()
    };
    let mut accs: Vec<Vec<Acc>> = CAT_SUB_CATS.iter().map(|_| new_acc()).collect();
    let mut rows = vec![0usize; CAT_SUB_CATS.len()];
    let mut sub_cats: Vec<BTreeMap<String, usize>> = vec![BTreeMap::new(); CAT_SUB_CATS.len()];
    let mut total_rows = 0usize;
    let mut empty_cells = 0usize;
    let mut record = csv::StringRecord::new();
    while reader.read_record(&mut record)? {
        total_rows += 1;
        let row = total_rows;
        let cat = record.get(cat_idx).unwrap_or("");
        let k =
            CAT_SUB_CATS
                .iter()
                .position(|(c, _)| *c == cat)
                .ok_or_else(|| DeriveStatsError::UnknownCat {
                    row,
                    cat: cat.to_string(),
                })?;
        rows[k] += 1;
        if let Some(s) = sub_cat_idx {
            *sub_cats[k]
                .entry(record.get(s).unwrap_or("").to_string())
                .or_default() += 1;
        }
        for (j, &c) in feature_idx.iter().enumerate() {
            let cell = record.get(c).unwrap_or("");
            let acc = &mut accs[k][j];
            match parse_cell(cell) {
                Parsed::Empty => empty_cells += 1,
                Parsed::Inf => {
                    acc.cells += 1;
                    acc.inf += 1;
                }
                Parsed::Value(v) => {
                    acc.cells += 1;
                    acc.integral &= v.fract() == 0.0;
                    if v == 0.0 {
                        acc.zero += 1;
                    } else {
                        acc.nonzero.push(v);
                    }
                }
                Parsed::Invalid => {
                    return Err(DeriveStatsError::NotANumber {
                        row,
                        column: features[j].to_string(),
                        cell: cell.to_string(),
                    });
                }
            }
        }
    }
    if let Some(k) = rows.iter().position(|&n| n == 0) {
        return Err(DeriveStatsError::MissingCat(CAT_SUB_CATS[k].0));
    }

    let file_name = real_csv
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out = String::new();
    header(
        &mut out,
        &file_name,
        total_rows,
        empty_cells,
        sub_cat_idx.is_some(),
    );
    let _ = writeln!(out, "pub static CATS: [CatStats; {}] = [", CAT_SUB_CATS.len());
    for (k, (cat, names)) in CAT_SUB_CATS.iter().enumerate() {
        let _ = writeln!(out, "    CatStats {{");
        let _ = writeln!(out, "        cat: {cat:?},");
        let _ = writeln!(out, "        share: {:?},", rows[k] as f64 / total_rows as f64);
        let _ = writeln!(out, "        rows: {},", rows[k]);
        let shares: Vec<(String, f64)> = if sub_cat_idx.is_some() {
            sub_cats[k]
                .iter()
                .map(|(s, &n)| (s.clone(), n as f64 / rows[k] as f64))
                .collect()
        } else {
            names
                .iter()
                .map(|s| (s.to_string(), 1.0 / names.len() as f64))
                .collect()
        };
        let shares: Vec<String> = shares.iter().map(|(s, p)| format!("({s:?}, {p:?})")).collect();
        let _ = writeln!(out, "        sub_cats: &[{}],", shares.join(", "));
        let _ = writeln!(out, "        features: &[");
        for (j, acc) in accs[k].iter_mut().enumerate() {
            feature(&mut out, features[j], acc);
        }
        let _ = writeln!(out, "        ],");
        let _ = writeln!(out, "    }},");
    }
    let _ = writeln!(out, "];");
    Ok(out)
}

fn header(out: &mut String, file_name: &str, rows: usize, empty_cells: usize, has_sub_cat: bool) {
    let sub_cat = if has_sub_cat {
        "//! `Sub_Cat` shares are those of the source's `Sub_Cat` column."
    } else {
        "//! The source has no `Sub_Cat` column, so each `Cat` is split EVENLY over the raw dataset's\n\
         //! `Sub_Cat` names of that class (the shares below are assumptions, not measurements)."
    };
    let _ = write!(
        out,
        "\
// @generated by `model-image demo-data --derive-stats`: do not edit by hand.
//! GENERATED per-class marginal statistics of real IoTID20 flows, from which the SYNTHETIC demo data
//! (`data/iotid20-demo.csv`) is drawn. Aggregated statistics only: no real row is stored here.
//!
//! Source: `{file_name}`, {rows} rows ({empty_cells} empty feature cells skipped).
//! Regenerate from the repository root with
//! `cargo run -p model-image -- demo-data --derive-stats ../shared/data/iotid20/iotid20_sample.csv > model-image/src/demo/stats.rs`
//!
//! Per `Cat` and numeric flow feature: the fraction of `inf` cells and of exact zeros (over the
//! non-empty cells), whether every finite value is an integer, the quantiles of the finite non-zero
//! values at `QUANTILE_LEVELS`, and for integral columns with at most `MAX_LEVELS` distinct non-zero
//! values the share of each value. Per `Cat`: its share and row count in the source.
{sub_cat}

use super::{{CatStats, FeatureStats}};

/// Rows of the source file.
pub const SOURCE_ROWS: usize = {rows};

"
    );
}

fn feature(out: &mut String, name: &str, acc: &mut Acc) {
    let cells = acc.cells.max(1) as f64;
    let (inf_rate, zero_rate) = if acc.cells == 0 {
        (0.0, 1.0)
    } else {
        (acc.inf as f64 / cells, acc.zero as f64 / cells)
    };
    acc.nonzero.sort_by(f64::total_cmp);
    let values = &acc.nonzero;
    let quantiles: Vec<f64> = QUANTILE_LEVELS.iter().map(|&p| quantile(values, p)).collect();
    let mut levels: Vec<(f64, usize)> = Vec::new();
    for &v in values {
        match levels.last_mut() {
            Some((last, n)) if *last == v => *n += 1,
            _ => levels.push((v, 1)),
        }
    }
    let levels: Vec<String> = if acc.integral && levels.len() <= MAX_LEVELS {
        levels
            .iter()
            .map(|&(v, n)| format!("({v:?}, {:?})", n as f64 / values.len() as f64))
            .collect()
    } else {
        Vec::new()
    };
    let _ = writeln!(
        out,
        "            FeatureStats {{ name: {name:?}, inf_rate: {inf_rate:?}, zero_rate: {zero_rate:?}, integral: {},",
        acc.integral
    );
    let _ = writeln!(out, "                levels: &[{}],", levels.join(", "));
    let _ = writeln!(out, "                quantiles: [");
    for chunk in quantiles.chunks(11) {
        let chunk: Vec<String> = chunk.iter().map(|q| format!("{q:?}")).collect();
        let _ = writeln!(out, "                    {},", chunk.join(", "));
    }
    let _ = writeln!(out, "                ] }},");
}

/// Linearly interpolated quantile (type 7) of sorted `values`; 0 when empty.
fn quantile(values: &[f64], p: f64) -> f64 {
    match values.len() {
        0 => 0.0,
        1 => values[0],
        n => {
            let h = (n - 1) as f64 * p;
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            values[lo] + (values[hi] - values[lo]) * (h - lo as f64)
        }
    }
}

enum Parsed {
    Empty,
    Inf,
    Value(f64),
    Invalid,
}

fn parse_cell(cell: &str) -> Parsed {
    if cell.is_empty() {
        return Parsed::Empty;
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_nan() => Parsed::Empty,
        Ok(v) if v.is_infinite() => Parsed::Inf,
        Ok(v) => Parsed::Value(v),
        Err(_) => Parsed::Invalid,
    }
}
