use std::path::{Path, PathBuf};

use super::derive::CAT_SUB_CATS;
use super::*;
use crate::schema::flow_feature_columns;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The real sample, relative to the repository root (`../shared/data/iotid20/iotid20_sample.csv`).
fn real_sample() -> PathBuf {
    repo_root().join("../shared/data/iotid20/iotid20_sample.csv")
}

fn generate(opts: &DemoOptions) -> Vec<u8> {
    let mut out = Vec::new();
    write_demo_csv(opts, &mut out).unwrap();
    out
}

fn parse(bytes: &[u8]) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut r = csv::Reader::from_reader(bytes);
    let header = r.headers().unwrap().clone();
    let rows = r.records().map(|r| r.unwrap()).collect();
    (header, rows)
}

fn opts(rows: usize, seed: u64) -> DemoOptions {
    DemoOptions {
        rows,
        seed,
        ..DemoOptions::default()
    }
}

fn col(name: &str) -> usize {
    RAW_COLUMNS.iter().position(|c| *c == name).unwrap()
}

fn cat_stats(cat: &str) -> &'static CatStats {
    stats::CATS.iter().find(|c| c.cat == cat).unwrap()
}

#[test]
fn same_seed_writes_same_bytes_other_seed_differs() {
    let a = generate(&opts(300, 7));
    assert_eq!(a, generate(&opts(300, 7)));
    assert_ne!(a, generate(&opts(300, 8)));
}

#[test]
fn header_is_the_raw_layout_and_every_row_has_86_cells() {
    let (header, rows) = parse(&generate(&opts(500, 1)));
    assert_eq!(header.iter().collect::<Vec<_>>(), RAW_COLUMNS.to_vec());
    assert_eq!(rows.len(), 500);
    assert!(rows.iter().all(|r| r.len() == 86));
}

#[test]
fn labels_sub_cats_and_identifiers_are_consistent() {
    let (_, rows) = parse(&generate(&opts(2_000, 2)));
    for r in &rows {
        let (label, cat, sub_cat) = (&r[col("Label")], &r[col("Cat")], &r[col("Sub_Cat")]);
        assert_eq!(label == "Normal", cat == "Normal", "{label} / {cat}");
        assert!(label == "Normal" || label == "Anomaly");
        let (_, subs) = CAT_SUB_CATS.iter().find(|(c, _)| *c == cat).expect("known Cat");
        assert!(subs.contains(&sub_cat), "{sub_cat} is not a Sub_Cat of {cat}");
        let flow_id = format!(
            "{}-{}-{}-{}-{}",
            &r[col("Src_IP")],
            &r[col("Dst_IP")],
            &r[col("Src_Port")],
            &r[col("Dst_Port")],
            &r[col("Protocol")]
        );
        assert_eq!(&r[col("Flow_ID")], flow_id);
        assert!(r[col("Src_IP")].starts_with("192.168.0.") && r[col("Dst_IP")].starts_with("192.168.0."));
        assert_ne!(&r[col("Src_IP")], &r[col("Dst_IP")]);
        for c in ["Src_Port", "Dst_Port", "Protocol"] {
            let v: i64 = r[col(c)]
                .parse()
                .unwrap_or_else(|_| panic!("{c} `{}` is an integer", &r[col(c)]));
            assert!((0..=65_535).contains(&v));
        }
        // `25/07/2019 03:25:53 AM`
        let ts = &r[col("Timestamp")];
        assert_eq!(ts.len(), 22, "{ts}");
        assert_eq!(&ts[2..11], "/07/2019 ", "{ts}");
        let day: u32 = ts[..2].parse().unwrap();
        let hour: u32 = ts[11..13].parse().unwrap();
        assert!((1..=31).contains(&day) && (1..=12).contains(&hour), "{ts}");
        assert!(ts.ends_with(" AM") || ts.ends_with(" PM"), "{ts}");
    }
    // Every Sub_Cat shows up.
    for (_, subs) in CAT_SUB_CATS {
        for s in subs {
            assert!(rows.iter().any(|r| &r[col("Sub_Cat")] == *s), "{s} never drawn");
        }
    }
}

#[test]
fn class_shares_follow_the_options() {
    for normal_share in [0.1, 0.3] {
        let o = DemoOptions {
            rows: 6_000,
            seed: 3,
            normal_share,
            missing_rate: 0.0,
        };
        let (_, rows) = parse(&generate(&o));
        let share =
            |cat: &str| rows.iter().filter(|r| &r[col("Cat")] == cat).count() as f64 / rows.len() as f64;
        assert!(
            (share("Normal") - normal_share).abs() < 0.02,
            "Normal {}",
            share("Normal")
        );
        let attack_total: f64 = stats::CATS
            .iter()
            .filter(|c| c.cat != "Normal")
            .map(|c| c.share)
            .sum();
        for c in stats::CATS.iter().filter(|c| c.cat != "Normal") {
            let want = (1.0 - normal_share) * c.share / attack_total;
            assert!(
                (share(c.cat) - want).abs() < 0.02,
                "{} {} vs {want}",
                c.cat,
                share(c.cat)
            );
        }
    }
    let bad = DemoOptions {
        normal_share: 1.5,
        ..opts(10, 0)
    };
    assert!(write_demo_csv(&bad, Vec::new()).is_err());
}

#[test]
fn per_feature_sample_medians_match_the_stored_medians() {
    let o = DemoOptions {
        rows: 20_000,
        seed: 4,
        normal_share: 0.2,
        missing_rate: 0.0,
    };
    let (_, rows) = parse(&generate(&o));
    let mut checked = 0;
    for cat in &stats::CATS {
        let cat_rows: Vec<_> = rows.iter().filter(|r| &r[col("Cat")] == cat.cat).collect();
        for f in cat.features {
            if 1.0 - f.inf_rate - f.zero_rate < 0.25 {
                continue; // too few non-zero values to pin a median
            }
            let c = col(f.name);
            let mut v: Vec<f64> = cat_rows
                .iter()
                .map(|r| r[c].parse::<f64>().unwrap())
                .filter(|v| v.is_finite() && *v != 0.0)
                .collect();
            v.sort_by(f64::total_cmp);
            let median = v[v.len() / 2];
            let q = |p: f64| f.quantiles[QUANTILE_LEVELS.iter().position(|&l| l == p).unwrap()];
            let slack = if f.integral { 0.5 } else { 0.0 } + 1e-4 * median.abs();
            assert!(
                q(0.4) - slack <= median && median <= q(0.6) + slack,
                "{} / {}: sample median {median} outside stored [q40 {}, q60 {}] (median {})",
                cat.cat,
                f.name,
                q(0.4),
                q(0.6),
                q(0.5)
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} features checked");
}

#[test]
fn inf_and_empty_cells_appear_at_their_rates() {
    let missing_rate = 0.02;
    let o = DemoOptions {
        rows: 20_000,
        seed: 5,
        normal_share: 0.2,
        missing_rate,
    };
    let (_, rows) = parse(&generate(&o));
    let missable = FIRST_MISSABLE..RAW_COLUMNS.len() - 3;
    let empty = rows
        .iter()
        .flat_map(|r| r.iter().skip(missable.start).take(missable.len()))
        .filter(|c| c.is_empty())
        .count();
    let rate = empty as f64 / (rows.len() * missable.len()) as f64;
    assert!((rate - missing_rate).abs() < 0.002, "empty rate {rate}");
    assert!(rows.iter().all(|r| {
        r.iter()
            .enumerate()
            .all(|(i, c)| missable.contains(&i) || !c.is_empty())
    }));

    // inf cells: as many as the stored rates predict (a Poisson count).
    let (mut expected, mut observed) = (0.0, 0usize);
    for r in &rows {
        let cat = cat_stats(&r[col("Cat")]);
        for f in cat.features {
            expected += f.inf_rate
                * if missable.contains(&col(f.name)) {
                    1.0 - missing_rate
                } else {
                    1.0
                };
            observed += usize::from(&r[col(f.name)] == "inf");
        }
    }
    assert!(
        expected > 0.0,
        "the stats hold inf cells (Flow_Byts/s, Flow_Pkts/s)"
    );
    assert!(
        (observed as f64 - expected).abs() <= 4.0 * expected.sqrt() + 3.0,
        "inf cells {observed}, expected {expected}"
    );
}

#[test]
fn sampler_hits_inf_and_zero_rates_and_stays_in_range() {
    let mut quantiles = [0.0; QUANTILE_LEVELS.len()];
    for (q, l) in quantiles.iter_mut().zip(QUANTILE_LEVELS) {
        *q = 10.0 + 90.0 * l * l;
    }
    let f = FeatureStats {
        name: "x",
        inf_rate: 0.1,
        zero_rate: 0.3,
        integral: false,
        levels: &[],
        quantiles,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let n = 100_000;
    let cells: Vec<Cell> = (0..n).map(|_| sample_feature(&f, &mut rng)).collect();
    let frac = |p: &dyn Fn(&Cell) -> bool| cells.iter().filter(|c| p(c)).count() as f64 / n as f64;
    assert!((frac(&|c| *c == Cell::Inf) - 0.1).abs() < 0.005);
    assert!((frac(&|c| *c == Cell::Value(0.0)) - 0.3).abs() < 0.005);
    assert!(cells.iter().all(|c| match c {
        Cell::Value(v) => *v == 0.0 || (10.0..=100.0).contains(v),
        _ => true,
    }));
    let mut v: Vec<f64> = cells
        .iter()
        .filter_map(|c| if let Cell::Value(v) = c { Some(*v) } else { None })
        .filter(|v| *v != 0.0)
        .collect();
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    assert!((median - (10.0 + 90.0 * 0.25)).abs() < 1.0, "median {median}");

    let levels: &[(f64, f64)] = &[(6.0, 0.75), (17.0, 0.25)];
    let f = FeatureStats {
        name: "Protocol",
        inf_rate: 0.0,
        zero_rate: 0.0,
        integral: true,
        levels,
        quantiles,
    };
    let drawn: Vec<Cell> = (0..10_000).map(|_| sample_feature(&f, &mut rng)).collect();
    assert!(
        drawn
            .iter()
            .all(|c| *c == Cell::Value(6.0) || *c == Cell::Value(17.0))
    );
    let sixes = drawn.iter().filter(|c| **c == Cell::Value(6.0)).count() as f64 / 10_000.0;
    assert!((sixes - 0.75).abs() < 0.02, "{sixes}");
}

#[test]
fn inverse_cdf_interpolates_between_quantiles() {
    let mut q = [0.0; QUANTILE_LEVELS.len()];
    for (q, l) in q.iter_mut().zip(QUANTILE_LEVELS) {
        *q = 100.0 * l;
    }
    for u in [0.0, 0.003, 0.26, 0.5, 0.77, 0.999] {
        assert!((inverse_cdf(&q, u) - 100.0 * u).abs() < 1e-9, "{u}");
    }
    assert_eq!(round_sig(123_456_789.0), 123_457_000.0);
    assert_eq!(round_sig(0.000_123_456_78), 0.000_123_457);
}

/// A line of at least `n` comma-separated cells: what a copied CSV row would look like.
fn has_row_like_line(text: &str, n: usize) -> bool {
    text.lines().any(|l| l.split(',').count() >= n)
}

/// The tokens of `text` between whitespace and commas.
fn tokens(text: &str) -> Vec<&str> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty())
        .collect()
}

/// The longest run of consecutive numbers in `text`, across line breaks.
fn longest_number_run(text: &str) -> usize {
    let (mut run, mut longest) = (0, 0);
    for t in tokens(text) {
        run = if t.parse::<f64>().is_ok() { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Aggregates only: no line looks like a CSV row, and no more than one quantile array of numbers
/// stands in a row anywhere, so no 79-cell row can hide in the text even across lines.
fn assert_aggregates_only(text: &str) {
    assert!(!has_row_like_line(text, 79), "a line looks like a CSV row");
    let run = longest_number_run(text);
    assert!(run <= QUANTILE_LEVELS.len(), "{run} numbers in a row");
}

#[test]
fn stats_hold_aggregates_only_never_a_row() {
    let source = include_str!("stats.rs");
    assert!(source.contains("GENERATED") && source.contains("SYNTHETIC"));
    assert!(
        !has_row_like_line(source, 79),
        "stats.rs has a line that looks like a CSV row"
    );

    // Shape and sanity of the stored statistics.
    let features: Vec<&str> = flow_feature_columns().collect();
    assert_eq!(
        stats::CATS.iter().map(|c| c.cat).collect::<Vec<_>>(),
        CAT_SUB_CATS.map(|c| c.0).to_vec()
    );
    assert!((stats::CATS.iter().map(|c| c.share).sum::<f64>() - 1.0).abs() < 1e-9);
    assert_eq!(
        stats::CATS.iter().map(|c| c.rows).sum::<usize>(),
        stats::SOURCE_ROWS
    );
    for cat in &stats::CATS {
        assert!((cat.sub_cats.iter().map(|s| s.1).sum::<f64>() - 1.0).abs() < 1e-9);
        assert_eq!(cat.features.iter().map(|f| f.name).collect::<Vec<_>>(), features);
        for f in cat.features {
            assert!(f.inf_rate >= 0.0 && f.zero_rate >= 0.0 && f.inf_rate + f.zero_rate <= 1.0 + 1e-12);
            assert!(
                f.quantiles.windows(2).all(|w| w[0] <= w[1]),
                "{} {}",
                cat.cat,
                f.name
            );
            assert!(f.levels.len() <= MAX_LEVELS);
        }
    }

    // The generator on a toy CSV whose rows are easy to recognise: none of them comes out.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("toy.csv");
    let mut w = csv::Writer::from_path(&path).unwrap();
    let mut header: Vec<&str> = features.clone();
    header.extend(["Cat", "Label"]);
    w.write_record(&header).unwrap();
    let mut toy_rows = Vec::new();
    for (i, (cat, _)) in CAT_SUB_CATS.iter().cycle().take(25).enumerate() {
        let mut row: Vec<String> = (0..features.len())
            .map(|j| format!("{}.{:03}", 1_000 + i * 97 + j, j + 1))
            .collect();
        row[features.iter().position(|f| *f == "Flow_Byts/s").unwrap()] =
            if i == 3 { "inf".into() } else { "0".into() };
        row.push(cat.to_string());
        row.push(if *cat == "Normal" { "Normal" } else { "Anomaly" }.to_string());
        toy_rows.push(row[..features.len()].join(","));
        w.write_record(&row).unwrap();
    }
    w.flush().unwrap();
    let derived = derive_stats(&path).unwrap();
    assert_aggregates_only(&derived);
    // Not even three consecutive cells of a toy row appear consecutively.
    let derived_tokens = tokens(&derived);
    let triples: std::collections::HashSet<&[&str]> = derived_tokens.windows(3).collect();
    for row in &toy_rows {
        assert!(!derived.contains(row.as_str()));
        let cells: Vec<&str> = row.split(',').collect();
        for w in cells.windows(3) {
            assert!(!triples.contains(w), "{w:?}");
        }
    }
    assert!(derived.contains("toy.csv") && !derived.contains(dir.path().to_str().unwrap()));
    assert!(derived.contains("split EVENLY"));
}

#[test]
fn derive_stats_rejects_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.csv");
    std::fs::write(&path, "a,b\n1,2\n").unwrap();
    assert!(matches!(
        derive_stats(&path),
        Err(DeriveStatsError::MissingColumn(_))
    ));
    assert!(derive_stats(&dir.path().join("absent.csv")).is_err());
}

/// The checked-in `stats.rs` is what the generator makes of the real sample (when it is beside the
/// repository, as on developer machines and in CI). With `DEMO_REWRITE_STATS=1` it rewrites `stats.rs`
/// instead, like the CLI's `demo-data --derive-stats`.
#[test]
fn stats_rs_is_up_to_date_with_the_real_sample() {
    let real = real_sample();
    if !real.exists() {
        eprintln!("skipped: {} is absent", real.display());
        return;
    }
    let derived = derive_stats(&real).unwrap();
    if std::env::var_os("DEMO_REWRITE_STATS").is_some_and(|v| v == "1") {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/demo/stats.rs");
        std::fs::write(path, &derived).unwrap();
        return;
    }
    assert!(
        derived == include_str!("stats.rs"),
        "stats.rs is stale: cargo run -p model-image -- demo-data --derive-stats \
         ../shared/data/iotid20/iotid20_sample.csv > model-image/src/demo/stats.rs"
    );
    assert_aggregates_only(&derived);
}

/// The shipped `data/iotid20-demo.csv` is exactly what the default options write.
#[test]
fn shipped_demo_csv_is_up_to_date() {
    let shipped = std::fs::read(repo_root().join(SHIPPED_PATH)).expect("data/iotid20-demo.csv is shipped");
    assert!(
        shipped == generate(&DemoOptions::default()),
        "data/iotid20-demo.csv is stale: cargo test -p model-image --lib demo -- --ignored regenerate"
    );
}

/// Writes the shipped `data/iotid20-demo.csv` (5,000 rows, seed 20):
/// `cargo test -p model-image --lib demo -- --ignored regenerate`
#[test]
#[ignore = "writes data/iotid20-demo.csv"]
fn regenerate_demo_csv() {
    let path = repo_root().join(SHIPPED_PATH);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, generate(&DemoOptions::default())).unwrap();
}

/// Neither hopeless nor trivial: LightGBM on the demo flow features separates Normal from Anomaly
/// well, but no single feature does it alone and the model is not perfect. Prints the measurements
/// with `cargo test -p model-image --lib separability -- --nocapture`.
#[test]
fn separability_of_the_demo_data() {
    let o = DemoOptions {
        rows: 10_000,
        seed: 11,
        ..DemoOptions::default()
    };
    let (_, rows) = parse(&generate(&o));
    let features: Vec<usize> = flow_feature_columns().map(col).collect();
    let value = |c: &str| match c {
        "" => f64::NAN,
        "inf" => 1e300,
        c => c.parse().unwrap(),
    };
    let x: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| features.iter().map(|&c| value(&r[c])).collect())
        .collect();
    let y: Vec<f32> = rows
        .iter()
        .map(|r| f32::from(&r[col("Label")] == "Anomaly"))
        .collect();

    // Best single-threshold balanced accuracy (mean of the two recalls) per feature.
    let mut best = (0.0, "");
    for (j, &c) in features.iter().enumerate() {
        let mut pairs: Vec<(f64, bool)> = x
            .iter()
            .zip(&y)
            .map(|(r, &y)| (r[j], y == 1.0))
            .filter(|p| !p.0.is_nan())
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pos = pairs.iter().filter(|p| p.1).count() as f64;
        let neg = pairs.len() as f64 - pos;
        let (mut pos_below, mut neg_below) = (0.0, 0.0);
        let mut balanced: f64 = 0.5;
        for (i, p) in pairs.iter().enumerate() {
            if p.1 {
                pos_below += 1.0;
            } else {
                neg_below += 1.0;
            }
            if i + 1 < pairs.len() && pairs[i + 1].0 == p.0 {
                continue;
            }
            // Anomaly above the threshold (or, the complement, below it).
            let b = 0.5 * ((pos - pos_below) / pos + neg_below / neg);
            balanced = balanced.max(b).max(1.0 - b);
        }
        if balanced > best.0 {
            best = (balanced, RAW_COLUMNS[c]);
        }
    }
    println!("best single feature: {} balanced accuracy {:.4}", best.1, best.0);
    assert!(best.0 < 0.99, "{} alone separates the classes", best.1);

    let split = x.len() * 4 / 5;
    let flat = |rows: &[Vec<f64>]| rows.iter().flatten().copied().collect::<Vec<f64>>();
    let n_features = features.len() as i32;
    let train = lightgbm3::Dataset::from_slice(&flat(&x[..split]), &y[..split], n_features, true).unwrap();
    let params = serde_json::json!({"objective": "binary", "num_iterations": 200, "learning_rate": 0.05, "num_leaves": 31, "verbosity": -1, "num_threads": 1, "seed": 1});
    let booster = lightgbm3::Booster::train(train, &params).unwrap();
    let p = booster.predict(&flat(&x[split..]), n_features, true).unwrap();
    let correct = p
        .iter()
        .zip(&y[split..])
        .filter(|(p, y)| (**p > 0.5) == (**y == 1.0))
        .count();
    let accuracy = correct as f64 / p.len() as f64;
    println!("LightGBM held-out accuracy {accuracy:.4} on {} rows", p.len());
    assert!(accuracy > 0.9 && accuracy < 0.9999, "accuracy {accuracy}");
}
