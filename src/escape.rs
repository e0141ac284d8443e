//! Neutralising text that others control (tenant names, UPNs, SKU names,
//! app and policy names, error messages from services) before it reaches a
//! terminal or a line-oriented export.
//!
//! - [`text`]: for terminals and the text audit. Control characters (C0,
//!   DEL, C1), Unicode bidirectional overrides and the backslash are written
//!   as visible escapes (`\x1b`, `\n`, `\u{202e}`, `\\`), so a name can
//!   neither drive the terminal (ANSI/OSC sequences) nor start a line that
//!   looks like a record of its own.
//! - [`csv_cell`]: the same, and a cell that a spreadsheet would read as a
//!   formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) gets
//!   a leading `'`, as OWASP's CSV injection guidance recommends.
//!
//! JSON and HTML keep exact values: their encoders escape what their formats
//! need (`serde_json`, the HTML writer's own escaping).

use std::borrow::Cow;
use std::fmt::Write;

/// `s` with control characters, bidi controls and `\` escaped visibly;
/// borrowed when nothing needed escaping.
pub fn text(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x80 && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A csv cell: [`text`], then a `'` before a leading `=`, `+`, `-`, `@`,
/// tab or carriage return (OWASP, "CSV Injection").
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let formula = matches!(s.chars().next(), Some('=' | '+' | '-' | '@' | '\t' | '\r'));
    let escaped = text(s);
    if formula {
        Cow::Owned(format!("'{escaped}"))
    } else {
        escaped
    }
}

fn needs_escape(c: char) -> bool {
    c == '\\'
        || c.is_control()
        // Bidirectional embeddings, overrides and isolates reorder what a
        // terminal shows ("Trojan Source").
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(text("Contoso Ltd — 365"), Cow::Borrowed(_)));
    }

    #[test]
    fn escapes_terminal_controls_and_line_breaks() {
        assert_eq!(text("a\u{1b}]0;pwned\u{7}b"), "a\\x1b]0;pwned\\x07b");
        assert_eq!(text("x\noperator root: abort"), "x\\noperator root: abort");
        assert_eq!(text("a\\x1b"), "a\\\\x1b");
        assert_eq!(text("\u{9b}2J"), "\\u{9b}2J");
        assert_eq!(text("abc\u{202e}fed"), "abc\\u{202e}fed");
        assert_eq!(text("\r\t\u{7f}"), "\\r\\t\\x7f");
    }

    #[test]
    fn csv_formula_cells_are_quoted() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1"), "'+1");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("\tx"), "'\\tx");
        assert_eq!(csv_cell("user@contoso.com"), "user@contoso.com");
        assert_eq!(csv_cell(""), "");
    }
}
