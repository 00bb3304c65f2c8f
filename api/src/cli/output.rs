//! Human output for the CLI: aligned tables and short descriptions of events.

use sendan_core::Event;

/// `text` as the terminal may show it: control characters other than line breaks and tabs escaped.
pub fn safe(text: &str) -> std::borrow::Cow<'_, str> {
    sendan_core::bounds::terminal_safe(text)
}

/// A plain text table with left-aligned columns.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = line.iter().enumerate().map(|(i, c)| format!("{c:<w$}", w = widths[i])).collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        out
    }
}

pub fn dash(v: Option<impl ToString>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The fields of an event's payload other than its type, as `key=value` pairs.
pub fn payload_summary(e: &Event) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&e.payload) else { return String::new() };
    map.iter()
        .filter(|(k, v)| k.as_str() != "type" && !v.is_null())
        .map(|(k, v)| match v {
            serde_json::Value::String(s) if s.chars().count() > 64 => {
                format!("{k}={}…", s.chars().take(63).collect::<String>())
            }
            serde_json::Value::String(s) => format!("{k}={s}"),
            serde_json::Value::Object(_) | serde_json::Value::Array(_) => format!("{k}=…"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn events_table(events: &[Event]) -> String {
    let mut t = Table::new(&["SEQ", "TIME", "ACTOR", "TYPE", "DETAILS", "COMMENT"]);
    for e in events {
        t.row(vec![
            e.seq.to_string(),
            e.time.to_rfc3339(),
            e.actor.to_string(),
            e.kind().to_string(),
            payload_summary(e),
            dash(e.comment.as_deref()),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["wide cell".into(), "x".into()]);
        assert_eq!(t.render(), "A          LONGER\nwide cell  x\n");
    }
}
