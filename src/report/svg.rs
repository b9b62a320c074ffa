//! A small SVG writer for the HTML report's charts: elements, scales, axes and legends.
//!
//! Hand-written rather than plotters: plotters lays text out with system fonts, which a build
//! machine or CI image may lack, and its output would pull in more than the four charts need.
//! Here text is left to the browser, every number is printed with fixed decimals, and nothing
//! depends on time or hashing, so the same data always gives the same bytes.

use std::fmt::Write;

/// Escapes text for HTML and SVG content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate with one decimal (`-0.0` printed as `0`).
fn n(v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.1}");
    let s = s.strip_suffix(".0").unwrap_or(&s);
    if s == "-0" {
        "0".to_string()
    } else {
        s.to_string()
    }
}

/// Color-blind-friendly categorical palette (Okabe-Ito, then Tableau).
const PALETTE: [&str; 12] = [
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000", "#8c564b", "#7f7f7f",
    "#bcbd22", "#17becf",
];

pub(crate) fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Text anchoring.
#[derive(Clone, Copy)]
pub(crate) enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn name(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// An SVG document being written; its height is known only when it is finished.
pub(crate) struct Svg {
    width: f64,
    body: String,
}

impl Svg {
    pub(crate) fn new(width: f64) -> Svg {
        Svg { width, body: String::new() }
    }

    /// A rectangle `[x, y, width, height]`; `extra` is inserted verbatim (already escaped attributes).
    pub(crate) fn rect(&mut self, [x, y, w, h]: [f64; 4], fill: &str, extra: &str) {
        let _ = write!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{extra}/>"#,
            n(x),
            n(y),
            n(w.max(0.0)),
            n(h.max(0.0))
        );
        self.body.push('\n');
    }

    /// A rectangle with a hover tooltip; `extra` as for [`Svg::rect`].
    pub(crate) fn rect_titled(&mut self, [x, y, w, h]: [f64; 4], fill: &str, extra: &str, tip: &str) {
        let _ = writeln!(
            self.body,
            r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{fill}"{extra}><title>{}</title></rect>"#,
            n(x),
            n(y),
            n(w.max(0.0)),
            n(h.max(0.0)),
            esc(tip)
        );
    }

    pub(crate) fn line(&mut self, [x1, y1, x2, y2]: [f64; 4], stroke: &str, width: f64, dash: Option<&str>) {
        let dash = dash.map(|d| format!(r#" stroke-dasharray="{d}""#)).unwrap_or_default();
        let _ = writeln!(
            self.body,
            r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{stroke}" stroke-width="{}"{dash}/>"#,
            n(x1),
            n(y1),
            n(x2),
            n(y2),
            n(width)
        );
    }

    pub(crate) fn polyline(&mut self, points: &[(f64, f64)], stroke: &str, width: f64, tip: &str) {
        if points.is_empty() {
            return;
        }
        let pts: Vec<String> = points.iter().map(|&(x, y)| format!("{},{}", n(x), n(y))).collect();
        let _ = writeln!(
            self.body,
            r#"<polyline points="{}" fill="none" stroke="{stroke}" stroke-width="{}" stroke-linejoin="round"><title>{}</title></polyline>"#,
            pts.join(" "),
            n(width),
            esc(tip)
        );
    }

    /// Text, escaped here.
    pub(crate) fn text(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, size: f64, extra: &str) {
        let _ = writeln!(
            self.body,
            r#"<text x="{}" y="{}" text-anchor="{}" font-size="{}"{extra}>{}</text>"#,
            n(x),
            n(y),
            anchor.name(),
            n(size),
            esc(text)
        );
    }

    /// Text rotated by `deg` degrees about its anchor point.
    pub(crate) fn text_rotated(&mut self, x: f64, y: f64, text: &str, anchor: Anchor, size: f64, deg: f64) {
        let extra = format!(r#" transform="rotate({} {} {})""#, n(deg), n(x), n(y));
        self.text(x, y, text, anchor, size, &extra);
    }

    /// A legend of colored swatches with labels from (`x`, `y`), wrapping into a new row before
    /// `max_x`; returns the baseline of its last row.
    pub(crate) fn legend(&mut self, x: f64, y: f64, max_x: f64, items: &[(String, String)]) -> f64 {
        let (mut cx, mut cy) = (x, y);
        for (color, label) in items {
            let w = 16.0 + text_width(label, 12.0) + 18.0;
            if cx > x && cx + w > max_x {
                (cx, cy) = (x, cy + 18.0);
            }
            self.rect([cx, cy - 9.0, 12.0, 12.0], color, "");
            self.text(cx + 16.0, cy + 1.0, label, Anchor::Start, 12.0, "");
            cx += w;
        }
        cy
    }

    /// The finished `<svg>` element, `height` pixels tall; `label` is its accessible name.
    pub(crate) fn finish(self, height: f64, label: &str) -> String {
        format!(
            "<svg viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"{l}\" font-family=\"sans-serif\">\n<title>{l}</title>\n{body}</svg>\n",
            w = n(self.width),
            h = n(height),
            l = esc(label),
            body = self.body
        )
    }
}

/// A rough width of `text` in a sans-serif font of `size` px, for layout.
pub(crate) fn text_width(text: &str, size: f64) -> f64 {
    text.chars().count() as f64 * size * 0.58
}

/// A linear or base-10 logarithmic map from data to pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scale {
    pub d0: f64,
    pub d1: f64,
    pub r0: f64,
    pub r1: f64,
    pub log: bool,
}

impl Scale {
    pub(crate) fn linear(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let d1 = if d1 > d0 { d1 } else { d0 + 1.0 };
        Scale { d0, d1, r0, r1, log: false }
    }

    /// A log scale over `[d0, d1]`, widened to whole decades.
    pub(crate) fn log(d0: f64, d1: f64, r0: f64, r1: f64) -> Scale {
        let d0 = 10f64.powf(d0.max(f64::MIN_POSITIVE).log10().floor());
        let d1 = 10f64.powf(d1.max(d0).log10().ceil()).max(d0 * 10.0);
        Scale { d0, d1, r0, r1, log: true }
    }

    pub(crate) fn map(&self, v: f64) -> f64 {
        let t = if self.log {
            (v.max(self.d0).log10() - self.d0.log10()) / (self.d1.log10() - self.d0.log10())
        } else {
            (v - self.d0) / (self.d1 - self.d0)
        };
        self.r0 + t.clamp(0.0, 1.0) * (self.r1 - self.r0)
    }

    /// Tick values: about `count` round numbers (1, 2, 5 × 10^k) for a linear scale, the
    /// decades (and 2, 5 times them when there are few) for a log scale.
    pub(crate) fn ticks(&self, count: usize) -> Vec<f64> {
        if self.log {
            let (lo, hi) = (self.d0.log10().round() as i32, self.d1.log10().round() as i32);
            let few = hi - lo <= 2;
            let mut out = Vec::new();
            for e in lo..=hi {
                let base = 10f64.powi(e);
                out.push(base);
                if few && e < hi {
                    out.extend([2.0 * base, 5.0 * base]);
                }
            }
            return out;
        }
        let step = nice_step((self.d1 - self.d0) / count.max(1) as f64);
        let mut out = Vec::new();
        let mut i = (self.d0 / step).ceil();
        while i * step <= self.d1 + step * 1e-9 {
            out.push(i * step);
            i += 1.0;
        }
        out
    }
}

/// A round step (1, 2, 2.5 or 5 × 10^k) at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(raw.log10().floor());
    let f = raw / mag;
    let nice = [1.0, 2.0, 2.5, 5.0, 10.0].into_iter().find(|&c| f <= c + 1e-9).unwrap_or(10.0);
    nice * mag
}

/// A round upper bound for an axis over `[0, max]`.
pub(crate) fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let step = nice_step(max / 5.0);
    (max / step).ceil() * step
}

/// A tick label: integers without decimals, others with as few as needed (up to 3).
pub(crate) fn tick_label(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        return format!("{}", v.round() as i64);
    }
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The plot area of a chart, in pixels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Frame {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

/// Draws a horizontal axis along the bottom of `frame` with ticks, grid lines and a label.
pub(crate) fn x_axis(
    svg: &mut Svg,
    frame: Frame,
    scale: &Scale,
    ticks: &[f64],
    label: &str,
    fmt: &dyn Fn(f64) -> String,
) {
    svg.line([frame.left, frame.bottom, frame.right, frame.bottom], "#333", 1.0, None);
    for &t in ticks {
        let x = scale.map(t);
        svg.line([x, frame.top, x, frame.bottom], "#e5e5e5", 1.0, None);
        svg.line([x, frame.bottom, x, frame.bottom + 5.0], "#333", 1.0, None);
        svg.text(x, frame.bottom + 18.0, &fmt(t), Anchor::Middle, 11.0, "");
    }
    svg.text((frame.left + frame.right) / 2.0, frame.bottom + 36.0, label, Anchor::Middle, 12.0, "");
}

/// Draws a vertical axis along the left of `frame` with ticks, grid lines and a label.
pub(crate) fn y_axis(
    svg: &mut Svg,
    frame: Frame,
    scale: &Scale,
    ticks: &[f64],
    label: &str,
    fmt: &dyn Fn(f64) -> String,
) {
    svg.line([frame.left, frame.top, frame.left, frame.bottom], "#333", 1.0, None);
    for &t in ticks {
        let y = scale.map(t);
        svg.line([frame.left, y, frame.right, y], "#e5e5e5", 1.0, None);
        svg.line([frame.left - 5.0, y, frame.left, y], "#333", 1.0, None);
        svg.text(frame.left - 8.0, y + 4.0, &fmt(t), Anchor::End, 11.0, "");
    }
    let (x, y) = (frame.left - 46.0, (frame.top + frame.bottom) / 2.0);
    svg.text_rotated(x, y, label, Anchor::Middle, 12.0, -90.0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(esc(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }

    #[test]
    fn scales_map_and_tick() {
        let s = Scale::linear(0.0, 100.0, 0.0, 200.0);
        assert_eq!(s.map(50.0), 100.0);
        assert_eq!(s.ticks(5), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        let l = Scale::log(0.5, 2000.0, 0.0, 400.0);
        assert_eq!((l.d0, l.d1), (0.1, 10000.0));
        assert_eq!(l.map(0.1), 0.0);
        assert_eq!(l.map(10000.0), 400.0);
        assert_eq!(l.ticks(5).len(), 6);
        assert_eq!(nice_max(0.43), 0.5);
        assert_eq!(tick_label(0.25), "0.25");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(n(-0.01), "0");
    }
}
