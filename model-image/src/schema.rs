//! The IoT Network Intrusion dataset (IoTID20) schema: the column layout of the raw dataset as users
//! have it, and the columns that must never be model features because they leak the label.

/// The 86 columns of the raw IoTID20 CSV, in file order: identifiers, the CICFlowMeter flow
/// features, then the label columns `Label`, `Cat` and `Sub_Cat`.
pub const RAW_COLUMNS: [&str; 86] = [
    "Flow_ID",
    "Src_IP",
    "Src_Port",
    "Dst_IP",
    "Dst_Port",
    "Protocol",
    "Timestamp",
    "Flow_Duration",
    "Tot_Fwd_Pkts",
    "Tot_Bwd_Pkts",
    "TotLen_Fwd_Pkts",
    "TotLen_Bwd_Pkts",
    "Fwd_Pkt_Len_Max",
    "Fwd_Pkt_Len_Min",
    "Fwd_Pkt_Len_Mean",
    "Fwd_Pkt_Len_Std",
    "Bwd_Pkt_Len_Max",
    "Bwd_Pkt_Len_Min",
    "Bwd_Pkt_Len_Mean",
    "Bwd_Pkt_Len_Std",
    "Flow_Byts/s",
    "Flow_Pkts/s",
    "Flow_IAT_Mean",
    "Flow_IAT_Std",
    "Flow_IAT_Max",
    "Flow_IAT_Min",
    "Fwd_IAT_Tot",
    "Fwd_IAT_Mean",
    "Fwd_IAT_Std",
    "Fwd_IAT_Max",
    "Fwd_IAT_Min",
    "Bwd_IAT_Tot",
    "Bwd_IAT_Mean",
    "Bwd_IAT_Std",
    "Bwd_IAT_Max",
    "Bwd_IAT_Min",
    "Fwd_PSH_Flags",
    "Bwd_PSH_Flags",
    "Fwd_URG_Flags",
    "Bwd_URG_Flags",
    "Fwd_Header_Len",
    "Bwd_Header_Len",
    "Fwd_Pkts/s",
    "Bwd_Pkts/s",
    "Pkt_Len_Min",
    "Pkt_Len_Max",
    "Pkt_Len_Mean",
    "Pkt_Len_Std",
    "Pkt_Len_Var",
    "FIN_Flag_Cnt",
    "SYN_Flag_Cnt",
    "RST_Flag_Cnt",
    "PSH_Flag_Cnt",
    "ACK_Flag_Cnt",
    "URG_Flag_Cnt",
    "CWE_Flag_Count",
    "ECE_Flag_Cnt",
    "Down/Up_Ratio",
    "Pkt_Size_Avg",
    "Fwd_Seg_Size_Avg",
    "Bwd_Seg_Size_Avg",
    "Fwd_Byts/b_Avg",
    "Fwd_Pkts/b_Avg",
    "Fwd_Blk_Rate_Avg",
    "Bwd_Byts/b_Avg",
    "Bwd_Pkts/b_Avg",
    "Bwd_Blk_Rate_Avg",
    "Subflow_Fwd_Pkts",
    "Subflow_Fwd_Byts",
    "Subflow_Bwd_Pkts",
    "Subflow_Bwd_Byts",
    "Init_Fwd_Win_Byts",
    "Init_Bwd_Win_Byts",
    "Fwd_Act_Data_Pkts",
    "Fwd_Seg_Size_Min",
    "Active_Mean",
    "Active_Std",
    "Active_Max",
    "Active_Min",
    "Idle_Mean",
    "Idle_Std",
    "Idle_Max",
    "Idle_Min",
    "Label",
    "Cat",
    "Sub_Cat",
];

/// The CICFlowMeter numeric features of the raw layout (everything but identifiers, `Timestamp` and the
/// label columns), in file order.
pub fn flow_feature_columns() -> impl Iterator<Item = &'static str> {
    RAW_COLUMNS
        .iter()
        .copied()
        .filter(|c| !LEAKY_COLUMNS.contains(c) && !LABEL_COLUMNS.contains(c))
}

/// The raw layout without its three trailing label columns: what a client scoring new traffic has.
pub const RAW_COLUMNS_WITHOUT_LABELS: usize = RAW_COLUMNS.len() - LABEL_COLUMNS.len();

/// Columns derived from the label (`Label`, `Cat`, `Sub_Cat`).
pub const LABEL_COLUMNS: [&str; 3] = ["Label", "Cat", "Sub_Cat"];

/// Default exclusions: identifiers whose flows have constant labels and columns derived from the label.
/// A model using any of them scores near 100% on a random split and fails on new traffic.
pub const LEAKY_COLUMNS: [&str; 6] = ["Flow_ID", "Src_IP", "Dst_IP", "Timestamp", "Cat", "Sub_Cat"];

/// Default label column and positive class.
pub const DEFAULT_LABEL: &str = "Label";
pub const DEFAULT_POSITIVE_CLASS: &str = "Anomaly";

/// True for a header cell that names an unnamed row-index column (`""`, `Unnamed: 0`, `index`), which
/// pandas writes when a split is saved with its index.
pub fn is_row_index_column(name: &str) -> bool {
    let name = name.trim();
    name.is_empty() || name.starts_with("Unnamed:") || name == "index"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_layout_has_86_columns_and_80_flow_features() {
        assert_eq!(RAW_COLUMNS.len(), 86);
        assert_eq!(RAW_COLUMNS_WITHOUT_LABELS, 83);
        // 86 - Flow_ID, Src_IP, Dst_IP, Timestamp - Label, Cat, Sub_Cat
        assert_eq!(flow_feature_columns().count(), 79);
    }
}
