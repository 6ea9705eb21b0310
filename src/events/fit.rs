//! Lines that fit the terminal: the live view redraws its lines by moving
//! the cursor up as many rows as it drew, so a line that wraps leaves a row
//! behind on every redraw. Each redrawn line is cut to the width, measured
//! in terminal columns (a CJK character takes two, a combining mark none).

use unicode_width::UnicodeWidthChar;

use super::colour::{Palette, Tone};

/// One line in parts, each with its colour, so it can be cut to a width
/// before the colour codes go in (they take no columns but many bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Styled {
    parts: Vec<(Option<Tone>, String)>,
}

impl Styled {
    pub fn new() -> Styled {
        Styled::default()
    }

    /// Append `text` (already escaped for a terminal line).
    pub fn push(&mut self, tone: Option<Tone>, text: impl Into<String>) -> &mut Styled {
        self.parts.push((tone, text.into()));
        self
    }

    /// How many columns the line takes.
    pub fn width(&self) -> usize {
        self.parts.iter().map(|(_, text)| width(text)).sum()
    }

    /// The line cut to `cols` columns, its last one `…` when cut.
    pub fn fit(&self, cols: usize) -> Styled {
        if self.width() <= cols {
            return self.clone();
        }
        let mut room = cols.saturating_sub(1);
        let mut out = Styled::new();
        for (tone, text) in &self.parts {
            let mut kept = String::new();
            for c in text.chars() {
                let w = c.width().unwrap_or(0);
                if w > room {
                    room = 0;
                    break;
                }
                room -= w;
                kept.push(c);
            }
            let full = kept.len() == text.len();
            out.push(*tone, kept);
            if !full {
                break;
            }
        }
        if cols > 0 {
            out.push(None, "…");
        }
        out
    }

    /// The text with colour codes where `palette` has colour.
    pub fn render(&self, palette: Palette) -> String {
        self.parts
            .iter()
            .map(|(tone, text)| match tone {
                Some(tone) => palette.paint(*tone, text).into_owned(),
                None => text.clone(),
            })
            .collect()
    }
}

/// Terminal columns `text` takes (control characters, already escaped by
/// the time text gets here, count none).
pub fn width(text: &str) -> usize {
    text.chars().map(|c| c.width().unwrap_or(0)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_long_line_is_cut_with_an_ellipsis() {
        let mut line = Styled::new();
        line.push(Some(Tone::Good), "✓ alpha")
            .push(None, " — complete");
        assert_eq!(line.fit(100), line);
        assert_eq!(line.fit(9).render(Palette::PLAIN), "✓ alpha …");
        assert_eq!(line.fit(9).width(), 9);
    }

    #[test]
    fn wide_characters_count_two_columns() {
        let mut line = Styled::new();
        line.push(None, "任务任务");
        assert_eq!(line.width(), 8);
        assert_eq!(line.fit(6).render(Palette::PLAIN), "任务…");
    }

    proptest! {
        #[test]
        fn a_fitted_line_never_exceeds_its_width(text in "\\PC{0,80}", cols in 1usize..100) {
            let mut line = Styled::new();
            line.push(Some(Tone::Bad), text.clone()).push(None, text);
            prop_assert!(line.fit(cols).width() <= cols);
        }
    }
}
