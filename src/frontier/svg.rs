//! The reward-vs-KL plot as an SVG picture (plotters): every scored point, one line per loss
//! type along its frontier (from the SFT model at KL 0), and each run's last point labelled
//! with its beta.

use plotters::prelude::*;

use super::Frontier;
use crate::Error;
use crate::charts::{DrawResult, FONT, GRID, padded_range};

const COLOURS: [RGBColor; 6] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x17, 0xbe, 0xcf),
];

/// Renders `frontier` as an SVG document.
pub fn render(frontier: &Frontier) -> Result<String, Error> {
    let mut svg = String::new();
    draw(&mut svg, frontier)
        .map_err(|e| Error::Runtime(format!("drawing the reward-vs-KL plot: {e}")))?;
    Ok(svg)
}

fn draw(svg: &mut String, frontier: &Frontier) -> DrawResult {
    let root = SVGBackend::with_string(svg, (760, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let kls = frontier.points.iter().map(|p| p.kl).chain([0.0]);
    let rewards = frontier.points.iter().map(|p| p.reward);
    let (x_lo, x_hi) = padded_range(kls);
    let (y_lo, y_hi) = padded_range(rewards.chain([frontier.sft.reward]));
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Ground-truth reward vs KL to the reference (shipped task)",
            (FONT, 16),
        )
        .margin(14)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x_lo..x_hi, y_lo..y_hi)?;
    chart
        .configure_mesh()
        .x_desc("KL(policy ‖ reference), nats per completion")
        .y_desc("mean ground-truth reward of samples")
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .label_style((FONT, 12))
        .draw()?;

    let mut losses: Vec<&str> = frontier.points.iter().map(|p| p.loss.as_str()).collect();
    losses.dedup();
    for (i, loss) in losses.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let mut points: Vec<_> = frontier.points.iter().filter(|p| p.loss == *loss).collect();
        points.sort_by(|a, b| a.kl.total_cmp(&b.kl));
        // The line joins the frontier: from the reference through the points nothing beats.
        let path = std::iter::once((0.0, frontier.sft.reward)).chain(
            points
                .iter()
                .filter(|p| p.frontier)
                .map(|p| (p.kl, p.reward)),
        );
        chart
            .draw_series(LineSeries::new(path, colour.stroke_width(2)))?
            .label(*loss)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new((p.kl, p.reward), 3.5, colour.mix(0.6).filled())),
        )?;
        // Each run's β beside its last point, where the run ended.
        let ends = points
            .iter()
            .filter(|p| p.step == last_step(frontier, &p.loss, p.beta));
        chart.draw_series(ends.map(|p| {
            EmptyElement::at((p.kl, p.reward))
                + Text::new(
                    format!("β={}", p.beta),
                    (6, -14),
                    (FONT, 10).into_font().color(&colour),
                )
        }))?;
    }
    chart.draw_series([(0.0, frontier.sft.reward)].map(|p| {
        EmptyElement::at(p)
            + Rectangle::new([(-4, -4), (4, 4)], BLACK.filled())
            + Text::new("SFT (reference)", (8, 4), (FONT, 12))
    }))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FONT, 12))
        .draw()?;
    root.present()?;
    Ok(())
}

/// The step of a run's last scored point.
fn last_step(frontier: &Frontier, loss: &str, beta: f32) -> usize {
    let run = frontier
        .points
        .iter()
        .filter(|p| p.loss == loss && p.beta == beta);
    run.map(|p| p.step).max().unwrap_or(0)
}
