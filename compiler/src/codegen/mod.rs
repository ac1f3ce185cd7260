//! Code generation: [`program`] lowers the optimised backbone and the scorer into a [`Program`]
//! (every number decided), then one emitter per language prints it. Emitters never compute.

pub mod program;

pub use program::{lower, Program, ScorerSpec, Source};

/// Makes untrusted text (node names, file names, option values) safe inside a comment of any
/// generated language: printable ASCII only, no `*` (so no `/*` or `*/`), no `\` (no line
/// splicing), no `?` (no trigraphs), no backquote or quote; everything else becomes `_`, and the
/// result is cut to 80 characters.
pub fn sanitize_comment(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && !matches!(c, '*' | '\\' | '?' | '`' | '"' | '\'') || c == ' '
            {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect();
    cleaned.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitised_text_cannot_close_or_open_comments_or_lines() {
        let hostile = "a*/ b /* c\nd\r\u{2028}e\\\n??/ // `x` \"y\" 'z' é";
        let clean = sanitize_comment(hostile);
        for bad in ["*", "\n", "\r", "\\", "?", "`", "\"", "'"] {
            assert!(!clean.contains(bad), "{clean:?} contains {bad:?}");
        }
        assert!(clean.is_ascii());
        assert_eq!(sanitize_comment(&"x".repeat(200)).len(), 80);
        assert_eq!(sanitize_comment("block_1/expand:0"), "block_1/expand:0");
    }
}
