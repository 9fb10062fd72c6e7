//! Where each dotted key of a TOML document is written, so a value's problem names its line.
//! Reads the text only; it decides nothing about which values are valid.

use std::collections::BTreeMap;

/// Where each dotted key of a TOML document is written (1-based lines).
#[derive(Debug, Default)]
pub(super) struct KeyLines(BTreeMap<String, usize>);

impl KeyLines {
    pub(super) fn index(text: &str) -> KeyLines {
        let mut lines = KeyLines::default();
        if let Ok(document) = toml::de::DeTable::parse(text) {
            lines.walk(text, "", document.get_ref());
        }
        lines
    }

    fn walk(&mut self, text: &str, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (key, value) in table.iter() {
            let dotted = format!("{prefix}{}", key.get_ref());
            let start = key.span().start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            self.0.entry(dotted.clone()).or_insert(line);
            if let toml::de::DeValue::Table(inner) = value.get_ref() {
                self.walk(text, &format!("{dotted}."), inner);
            }
        }
    }

    /// The line of `key`, or of the closest enclosing table written in the file.
    pub(super) fn line_of(&self, key: &str) -> Option<usize> {
        let mut key = key;
        loop {
            if let Some(line) = self.0.get(key) {
                return Some(*line);
            }
            key = &key[..key.rfind('.')?];
        }
    }
}
