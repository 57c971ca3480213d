//! The real IoTID20 sample in memory, as CSV text cells (values exactly as the file has them).

use std::path::Path;

pub struct Sample {
    pub header: Vec<String>,
    pub records: Vec<csv::StringRecord>,
}

impl Sample {
    pub fn load(path: &Path) -> Sample {
        let mut reader = csv::Reader::from_path(path)
            .unwrap_or_else(|e| super::bail(&format!("cannot read {}: {e}", path.display())));
        let header = reader
            .headers()
            .unwrap_or_else(|e| super::bail(&format!("{} has no header: {e}", path.display())))
            .iter()
            .map(str::to_string)
            .collect();
        let records = reader
            .records()
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_else(|e| super::bail(&format!("cannot parse {}: {e}", path.display())));
        if records.is_empty() {
            super::bail(&format!("{} has no rows", path.display()));
        }
        Sample { header, records }
    }

    pub fn column(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }

    /// Every row as a header-less CSV line of `features`, in that order.
    pub fn feature_lines(&self, features: &[String]) -> Vec<String> {
        let indices: Vec<usize> = features
            .iter()
            .map(|f| {
                self.column(f).unwrap_or_else(|| {
                    super::bail(&format!("the sample has no column `{f}` the model needs"))
                })
            })
            .collect();
        self.records
            .iter()
            .map(|record| indices.iter().map(|&i| &record[i]).collect::<Vec<_>>().join(","))
            .collect()
    }
}
