use super::{CatStats, FeatureStats};
pub const SOURCE_ROWS: usize = 0;
const _: Option<FeatureStats> = None;
pub static CATS: [CatStats; 5] = [
    CatStats { cat: "Normal", share: 0.2, rows: 0, sub_cats: &[("Normal", 1.0)], features: &[] },
    CatStats { cat: "DoS", share: 0.2, rows: 0, sub_cats: &[("DoS-Synflooding", 1.0)], features: &[] },
    CatStats { cat: "Mirai", share: 0.2, rows: 0, sub_cats: &[("Mirai-Ackflooding", 1.0)], features: &[] },
    CatStats { cat: "Scan", share: 0.2, rows: 0, sub_cats: &[("Scan Hostport", 1.0)], features: &[] },
    CatStats { cat: "MITM ARP Spoofing", share: 0.2, rows: 0, sub_cats: &[("MITM ARP Spoofing", 1.0)], features: &[] },
];
