//! kubectl's printers: tables with its columns (`get`), AGE as kubectl rounds it, and the pod
//! STATUS it computes from container states.
//!
//! A table is left-aligned columns three spaces apart, upper-case headers, the last column not
//! padded. Rows of a watch are aligned with the widths of the first table they follow.

mod age;
mod pod;
mod rows;

pub use age::human_duration;
pub use pod::{pod_ready, pod_restarts, pod_status};
pub use rows::{
    Printer, endpoints_string, event_last_seen, map_string, protocol_name, selector_string,
    service_type_name,
};

/// A table to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

const GAP: usize = 3;

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// The width of each column (header included unless left out).
    pub fn widths(&self, headers: bool) -> Vec<usize> {
        let mut widths = vec![0; self.headers.len()];
        let all = headers
            .then_some(&self.headers)
            .into_iter()
            .chain(&self.rows);
        for row in all {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        widths
    }

    /// The whole table, with or without its header line.
    pub fn render(&self, headers: bool) -> String {
        let widths = self.widths(headers);
        let mut out = String::new();
        if headers {
            out.push_str(&render_row(&self.headers, &widths));
        }
        for row in &self.rows {
            out.push_str(&render_row(row, &widths));
        }
        out
    }
}

/// One line: cells padded to `widths` (wider cells push the rest right), newline-terminated.
pub fn render_row(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        line.push_str(cell);
        if i + 1 < row.len() {
            let width = widths.get(i).copied().unwrap_or_default();
            let pad = width.saturating_sub(cell.chars().count()) + GAP;
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_left_aligned_three_spaces_apart() {
        let mut table = Table::new(&["NAME", "READY", "STATUS"]);
        table
            .rows
            .push(vec!["web-1".into(), "1/1".into(), "Running".into()]);
        table.rows.push(vec![
            "a-much-longer-name".into(),
            "0/1".into(),
            "Pending".into(),
        ]);
        assert_eq!(
            table.render(true),
            "NAME                 READY   STATUS\n\
             web-1                1/1     Running\n\
             a-much-longer-name   0/1     Pending\n"
        );
        assert_eq!(
            table.render(false),
            "web-1                1/1   Running\n\
             a-much-longer-name   0/1   Pending\n"
        );
    }
}
