//! The reward-vs-KL plot as a standalone SVG: every scored point, one line per loss type along
//! its frontier (from the SFT model at KL 0), and each run's last point labelled with its beta.

use std::fmt::Write;

use super::Frontier;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 460.0;
/// Plot area margins: left, right, top, bottom.
const MARGIN: (f64, f64, f64, f64) = (70.0, 150.0, 40.0, 60.0);
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
];

/// Renders `frontier` as an SVG document.
pub fn render(frontier: &Frontier) -> String {
    let kls = frontier.points.iter().map(|p| p.kl).chain([0.0]);
    let rewards = frontier
        .points
        .iter()
        .map(|p| p.reward)
        .chain([frontier.sft.reward]);
    let (x_lo, x_hi) = padded_range(kls);
    let (y_lo, y_hi) = padded_range(rewards);
    let (left, right, top, bottom) = MARGIN;
    let (plot_w, plot_h) = (WIDTH - left - right, HEIGHT - top - bottom);
    let x = |v: f64| left + (v - x_lo) / (x_hi - x_lo) * plot_w;
    let y = |v: f64| top + (1.0 - (v - y_lo) / (y_hi - y_lo)) * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="15">Ground-truth reward vs KL to the reference (shipped task)</text>"#,
        left + plot_w / 2.0
    );
    for (value, label) in ticks(x_lo, x_hi) {
        let px = x(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{px:.1}" y1="{top}" x2="{px:.1}" y2="{:.1}" stroke="#eee"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{label}</text>"##,
            top + plot_h,
            top + plot_h + 16.0
        );
    }
    for (value, label) in ticks(y_lo, y_hi) {
        let py = y(value);
        let _ = writeln!(
            svg,
            r##"<line x1="{left}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            left + plot_w,
            left - 6.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">KL(policy ‖ reference), nats per completion</text>"#,
        left + plot_w / 2.0,
        HEIGHT - 16.0
    );
    let _ = writeln!(
        svg,
        r#"<text transform="translate(18 {:.1}) rotate(-90)" text-anchor="middle">mean ground-truth reward of samples</text>"#,
        top + plot_h / 2.0
    );

    let mut losses: Vec<&str> = frontier.points.iter().map(|p| p.loss.as_str()).collect();
    losses.dedup();
    for (i, loss) in losses.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points: Vec<_> = frontier.points.iter().filter(|p| p.loss == *loss).collect();
        points.sort_by(|a, b| a.kl.total_cmp(&b.kl));
        // The line joins the frontier: from the reference through the points nothing beats.
        let path: Vec<String> = std::iter::once((0.0, frontier.sft.reward))
            .chain(
                points
                    .iter()
                    .filter(|p| p.frontier)
                    .map(|p| (p.kl, p.reward)),
            )
            .map(|(k, r)| format!("{:.1},{:.1}", x(k), y(r)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            path.join(" ")
        );
        for p in &points {
            let (px, py) = (x(p.kl), y(p.reward));
            let _ = writeln!(
                svg,
                r#"<circle cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{colour}" fill-opacity="0.6"/>"#
            );
            // Each run's β beside its last point, where the run ended.
            if p.step == last_step(frontier, &p.loss, p.beta) {
                let _ = writeln!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" fill="{colour}" font-size="10">β={}</text>"#,
                    px + 6.0,
                    py - 6.0,
                    p.beta
                );
            }
        }
        let ly = top + 20.0 + 20.0 * i as f64;
        let lx = left + plot_w + 16.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{loss}</text>"#,
            lx + 22.0,
            lx + 28.0,
            ly + 4.0
        );
    }
    let (sx, sy) = (x(0.0), y(frontier.sft.reward));
    let _ = writeln!(
        svg,
        r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="black"/><text x="{:.1}" y="{:.1}">SFT (reference)</text>"#,
        sx - 4.0,
        sy - 4.0,
        sx + 8.0,
        sy + 16.0
    );
    svg.push_str("</svg>\n");
    svg
}

/// The step of a run's last scored point.
fn last_step(frontier: &Frontier, loss: &str, beta: f32) -> usize {
    let run = frontier
        .points
        .iter()
        .filter(|p| p.loss == loss && p.beta == beta);
    run.map(|p| p.step).max().unwrap_or(0)
}

/// The range of `values` with 8% padding, never empty.
fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let span = (hi - lo).max(1e-6);
    (lo - 0.08 * span, hi + 0.08 * span)
}

/// About five round tick values inside [lo, hi], with their labels.
fn ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let raw = (hi - lo) / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    // Whole multiples of the step: no drift from repeated addition, and no "-0".
    let (first, last) = ((lo / step).ceil() as i64, (hi / step).floor() as i64);
    (first..=last)
        .map(|i| {
            let v = i as f64 * step;
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_inside() {
        let t = ticks(-0.3, 4.2);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0", "1", "2", "3", "4"]);
        let t = ticks(0.01, 0.09);
        assert!(t.iter().all(|(v, _)| (0.01..=0.09).contains(v)), "{t:?}");
        assert_eq!(t[0].1, "0.02");
    }
}
