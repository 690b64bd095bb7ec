//! Training charts as an SVG picture, drawn with plotters: the page's four charts (loss,
//! rewards, reward margin, reward accuracy) from a run folder's `metrics.jsonl`, so that a
//! terminal user sees a run without the page. `dpo train` leaves `charts.svg` in its run
//! folder; `dpo plot` draws any run folders, several overlaid.

use std::error::Error as StdError;
use std::fs;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::Error;
use crate::dpo::{Metrics, Phase};

/// The picture's name in a run folder.
pub const FILE: &str = "charts.svg";
/// The metrics log a run folder holds, one JSON object per step.
pub const METRICS: &str = "metrics.jsonl";

pub(crate) type DrawResult = Result<(), Box<dyn StdError>>;
pub(crate) const FONT: &str = "sans-serif";
pub(crate) const GRID: RGBColor = RGBColor(0xea, 0xee, 0xf2);

/// One run's metrics, named for the legend.
pub struct RunMetrics {
    pub name: String,
    pub metrics: Vec<Metrics>,
}

impl RunMetrics {
    /// Reads `dir/metrics.jsonl`, named after the folder. A line that is not a metrics object
    /// is refused with its file and line number.
    pub fn read(dir: &Path) -> Result<Self, Error> {
        let path = dir.join(METRICS);
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::Input(format!("{}: {e}", path.display())))?;
        let metrics = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .map_err(|e| Error::Input(format!("{}:{}: {e}", path.display(), i + 1)))
            })
            .collect::<Result<_, _>>()?;
        let name = dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| dir.display().to_string());
        Ok(RunMetrics { name, metrics })
    }
}

/// A line on a chart: the metric, its phase, its colour, and whether it uses the right axis.
struct Curve {
    label: &'static str,
    phase: Phase,
    value: fn(&Metrics) -> Option<f64>,
    colour: RGBColor,
    right_axis: bool,
}

struct Chart {
    title: &'static str,
    curves: &'static [Curve],
    /// A fixed value range (accuracy's 0..1); else the data's, padded.
    range: Option<(f64, f64)>,
    /// Where the legend covers the least: the curves' usual course leaves that corner empty.
    legend: SeriesLabelPosition,
}

// The page's colours (www/charts.js), so that both pictures read the same way.
const SFT: RGBColor = RGBColor(0x82, 0x50, 0xdf);
const DPO: RGBColor = RGBColor(0x09, 0x69, 0xda);
const CHOSEN: RGBColor = RGBColor(0x1a, 0x7f, 0x37);
const REJECTED: RGBColor = RGBColor(0xcf, 0x22, 0x2e);
const ACCURACY: RGBColor = RGBColor(0x9a, 0x67, 0x00);

impl Curve {
    /// The phases whose values the chart shows: a DPO curve's held-out value too (a cross).
    fn drawn_phases(&self) -> &'static [Phase] {
        match self.phase {
            Phase::Dpo => &[Phase::Dpo, Phase::Eval],
            _ => &[Phase::Sft],
        }
    }
}

const fn dpo(label: &'static str, value: fn(&Metrics) -> Option<f64>, colour: RGBColor) -> Curve {
    Curve {
        label,
        phase: Phase::Dpo,
        value,
        colour,
        right_axis: false,
    }
}

const CHARTS: [Chart; 4] = [
    Chart {
        title: "Loss",
        // SFT loss (~6 falling to ~2) and DPO loss (~0.69) differ by an order of magnitude:
        // each gets its own axis so that neither curve is flattened.
        curves: &[
            Curve {
                label: "SFT loss",
                phase: Phase::Sft,
                value: |m| Some(m.loss),
                colour: SFT,
                right_axis: false,
            },
            Curve {
                label: "DPO loss (right axis)",
                phase: Phase::Dpo,
                value: |m| Some(m.loss),
                colour: DPO,
                right_axis: true,
            },
        ],
        range: None,
        legend: SeriesLabelPosition::LowerLeft,
    },
    Chart {
        title: "Rewards: chosen and rejected",
        curves: &[
            dpo("chosen", |m| m.rewards_chosen, CHOSEN),
            dpo("rejected", |m| m.rewards_rejected, REJECTED),
        ],
        range: None,
        legend: SeriesLabelPosition::LowerLeft,
    },
    Chart {
        title: "Reward margin (chosen − rejected)",
        curves: &[dpo("margin", |m| m.rewards_margins, DPO)],
        range: None,
        legend: SeriesLabelPosition::UpperLeft,
    },
    Chart {
        title: "Reward accuracy",
        curves: &[dpo("accuracy", |m| m.rewards_accuracies, ACCURACY)],
        range: Some((0.0, 1.0)),
        legend: SeriesLabelPosition::LowerRight,
    },
];

/// The four charts of `runs` (one, or several overlaid: the first solid, the others dashed),
/// 2 x 2, as an SVG document. A run's held-out evaluation is a cross at its step.
pub fn render(runs: &[RunMetrics]) -> Result<String, Error> {
    let mut svg = String::new();
    draw(&mut svg, runs).map_err(|e| Error::Runtime(format!("drawing the charts: {e}")))?;
    Ok(svg)
}

fn draw(svg: &mut String, runs: &[RunMetrics]) -> DrawResult {
    let root = SVGBackend::with_string(svg, (1100, 720)).into_drawing_area();
    root.fill(&WHITE)?;
    let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
    let root = root.titled(&names.join(" vs "), (FONT, 18))?;
    for (area, chart) in root.split_evenly((2, 2)).iter().zip(&CHARTS) {
        draw_chart(area, chart, runs)?;
    }
    root.present()?;
    Ok(())
}

fn draw_chart(
    area: &DrawingArea<SVGBackend, Shift>,
    chart: &Chart,
    runs: &[RunMetrics],
) -> DrawResult {
    let steps = runs.iter().flat_map(|r| &r.metrics).map(|m| m.step);
    let x_range = 0.0..steps.max().unwrap_or(1).max(1) as f64;
    let range = |right: bool| -> std::ops::Range<f64> {
        let values = chart
            .curves
            .iter()
            .filter(|c| c.right_axis == right)
            .flat_map(|c| {
                runs.iter()
                    .flat_map(move |r| points(c, &r.metrics, c.drawn_phases()))
            })
            .map(|(_, v)| v);
        let (lo, hi) = chart.range.unwrap_or_else(|| padded_range(values));
        lo..hi
    };
    let two_axes = chart.curves.iter().any(|c| c.right_axis);
    let mut context = ChartBuilder::on(area)
        .caption(chart.title, (FONT, 15))
        .margin(10)
        .x_label_area_size(32)
        .y_label_area_size(56)
        .right_y_label_area_size(if two_axes { 56 } else { 0 })
        .build_cartesian_2d(x_range.clone(), range(false))?
        .set_secondary_coord(x_range, range(true));
    context
        .configure_mesh()
        .x_desc("step")
        .x_label_formatter(&|step| format!("{step:.0}"))
        .light_line_style(GRID)
        .bold_line_style(GRID)
        .label_style((FONT, 12))
        .draw()?;
    if two_axes {
        context
            .configure_secondary_axes()
            .label_style((FONT, 12))
            .draw()?;
    }
    let mut held_out_labelled = false;
    for (i, run) in runs.iter().enumerate() {
        for curve in chart.curves {
            let style = curve.colour.stroke_width(2);
            let line = points(curve, &run.metrics, &[curve.phase]);
            let label = match runs.len() {
                1 => curve.label.to_owned(),
                _ => format!("{} ({})", curve.label, run.name),
            };
            let anno = match (curve.right_axis, i) {
                (false, 0) => context.draw_series(LineSeries::new(line, style))?,
                (false, _) => context.draw_series(DashedLineSeries::new(line, 6, 4, style))?,
                (true, 0) => context.draw_secondary_series(LineSeries::new(line, style))?,
                (true, _) => {
                    context.draw_secondary_series(DashedLineSeries::new(line, 6, 4, style))?
                }
            };
            let dashed = i > 0;
            anno.label(label).legend(move |(x, y)| {
                let end = if dashed { x + 8 } else { x + 18 };
                PathElement::new(vec![(x, y), (end, y)], style)
            });
            // The held-out evaluation, where the run has one: DPO's metrics.
            if curve.phase != Phase::Dpo {
                continue;
            }
            let crosses = points(curve, &run.metrics, &[Phase::Eval])
                .into_iter()
                .map(|p| Cross::new(p, 6, curve.colour.stroke_width(2)));
            let anno = match curve.right_axis {
                false => context.draw_series(crosses)?,
                true => context.draw_secondary_series(crosses)?,
            };
            if !held_out_labelled {
                held_out_labelled = true;
                anno.label("held-out (end)")
                    .legend(|(x, y)| Cross::new((x + 9, y), 5, BLACK.stroke_width(2)));
            }
        }
    }
    context
        .configure_series_labels()
        .position(chart.legend.clone())
        .background_style(WHITE.mix(0.85))
        .border_style(GRID)
        .label_font((FONT, 12))
        .draw()?;
    Ok(())
}

/// A curve's finite values at the steps of `phases` in one run.
fn points(curve: &Curve, metrics: &[Metrics], phases: &[Phase]) -> Vec<(f64, f64)> {
    metrics
        .iter()
        .filter(|m| phases.contains(&m.phase))
        .filter_map(|m| Some((m.step as f64, (curve.value)(m)?)))
        .filter(|(_, v)| v.is_finite())
        .collect()
}

/// The range of `values` with 8% padding, never empty.
pub(crate) fn padded_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if lo > hi {
        return (0.0, 1.0);
    }
    let span = (hi - lo).max(1e-6);
    (lo - 0.08 * span, hi + 0.08 * span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: usize, phase: Phase, loss: f64, chosen: Option<f64>) -> Metrics {
        let mut m: Metrics = serde_json::from_value(serde_json::json!({
            "step": step, "phase": phase.name(), "loss": loss,
        }))
        .unwrap();
        m.rewards_chosen = chosen;
        m.rewards_rejected = chosen.map(|c| -c);
        m.rewards_margins = chosen.map(|c| 2.0 * c);
        m.rewards_accuracies = chosen.map(|_| 0.75);
        m
    }

    fn run(name: &str, dpo_steps: usize) -> RunMetrics {
        let mut metrics: Vec<Metrics> = (1..=3)
            .map(|s| step(s, Phase::Sft, 5.0 - s as f64, None))
            .collect();
        metrics
            .extend((4..4 + dpo_steps).map(|s| step(s, Phase::Dpo, 0.69, Some(0.01 * s as f64))));
        RunMetrics {
            name: name.into(),
            metrics,
        }
    }

    /// Every chart is drawn, each curve with its legend entry. (tests/train_e2e.rs counts
    /// the points of each curve in a real run's picture.)
    #[test]
    fn every_chart_and_curve_is_drawn() {
        let svg = render(&[run("a", 5)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for chart in &CHARTS {
            assert!(svg.contains(chart.title), "{}", chart.title);
            for curve in chart.curves {
                assert!(
                    // plotters writes a text element's content on a line of its own.
                    svg.contains(&format!("\n{}\n</text>", curve.label)),
                    "{}",
                    curve.label
                );
            }
        }
    }

    #[test]
    fn an_overlay_names_both_runs() {
        let svg = render(&[run("first", 4), run("second", 6)]).unwrap();
        assert!(svg.contains("first vs second"));
        assert!(svg.contains("chosen (first)") && svg.contains("chosen (second)"));
    }

    #[test]
    fn a_bad_line_is_named() {
        let dir = std::env::temp_dir().join(format!("dpo-charts-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(METRICS),
            "{\"step\":1,\"phase\":\"sft\",\"loss\":2.0}\nnot json\n",
        )
        .unwrap();
        let error = RunMetrics::read(&dir).err().unwrap().to_string();
        assert!(error.contains("metrics.jsonl:2:"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
