//! Figures of growth runs, drawn with [plotters](https://docs.rs/plotters) (feature `plot`).
//!
//! [`GrowthReport::plot`] draws the training (and held-out) loss against optimiser steps with
//! a mark at every expansion above, and the width of every hidden layer and the depth below.
//! [`plot_fit_1d`] draws a one-dimensional regression: the data, the fitted curve and where the
//! first hidden layer's neurons sit. The format follows the file name: `.svg` or `.png`.
//!
//! Text is set in DejaVu Sans, shipped with the crate (see `assets/README.md` for its
//! licence), so PNG figures look the same on every machine.

use std::ops::Range;
use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::error::ReportError;
use crate::expansion::ExpansionKind;
use crate::io::write_atomically;
use crate::report::GrowthReport;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1000, 760);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const TEST: RGBColor = RGBColor(255, 127, 14);
const WIDTH_EVENT: RGBColor = RGBColor(44, 160, 44);
const DEPTH_EVENT: RGBColor = RGBColor(214, 39, 40);

/// Registers the shipped font with plotters, once per process.
fn register_font() {
    static FONT_REGISTERED: Once = Once::new();
    FONT_REGISTERED.call_once(|| {
        plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        )
        .unwrap_or_else(|_| panic!("the shipped font is a valid TrueType file"));
    });
}

/// The figure formats, by file name.
enum Format {
    Svg,
    Png,
}

impl Format {
    fn of(path: &Path) -> Result<Self, ReportError> {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => Ok(Format::Svg),
            Some(e) if e.eq_ignore_ascii_case("png") => Ok(Format::Png),
            _ => Err(ReportError::UnsupportedFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Something drawn on any plotters backend.
trait Figure {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String>;
}

/// Draws `figure` on a canvas of `SIZE` and writes it to `path` as SVG or PNG, through a
/// temporary file.
fn render(path: &Path, figure: &impl Figure) -> Result<(), ReportError> {
    let format = Format::of(path)?;
    register_font();
    let plot_error = |reason: String| ReportError::Plot {
        path: path.to_path_buf(),
        reason,
    };
    let bytes = match format {
        Format::Svg => {
            let mut svg = String::new();
            figure
                .draw(SVGBackend::with_string(&mut svg, SIZE).into_drawing_area())
                .map_err(plot_error)?;
            svg.into_bytes()
        }
        Format::Png => {
            let mut pixels = vec![0u8; (SIZE.0 * SIZE.1 * 3) as usize];
            figure
                .draw(BitMapBackend::with_buffer(&mut pixels, SIZE).into_drawing_area())
                .map_err(plot_error)?;
            encode_png(&pixels).map_err(|e| plot_error(e.to_string()))?
        }
    };
    write_atomically(path, &bytes).map_err(|source| ReportError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// RGB pixels of a `SIZE` canvas as a PNG file.
fn encode_png(pixels: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, SIZE.0, SIZE.1);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(pixels)?;
    writer.finish()?;
    Ok(bytes)
}

/// The smallest and largest finite positive value, widened a little for a log axis.
fn log_range(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (low, high) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if low > high {
        return 1e-3..1.0;
    }
    let (low, high) = if high / low < 10.0 {
        (low / 2.0, high * 2.0)
    } else {
        (low / 1.2, high * 1.2)
    };
    low..high
}

impl Figure for GrowthReport {
    /// Both panels of [`GrowthReport::plot`].
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_growth(root, self)
    }
}

fn draw_growth<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    report: &GrowthReport,
) -> Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(fail)?;
    let title = format!(
        "Growth: {} → {}",
        shape(&report.initial_architecture),
        shape(&report.final_architecture)
    );
    let root = root.titled(&title, (FONT, 26).into_font()).map_err(fail)?;
    let (top, bottom) = root.split_vertically(SIZE.1 as i32 * 55 / 100);
    let last_step = report
        .curve
        .iter()
        .map(|p| p.step)
        .chain(report.history.events.iter().map(|e| e.step))
        .max()
        .unwrap_or(1)
        .max(1);
    let steps = 0f64..last_step as f64;

    // Losses, log scale, with the expansions marked.
    let losses = report
        .curve
        .iter()
        .flat_map(|p| std::iter::once(p.train_loss).chain(p.test_loss));
    let range = log_range(losses);
    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(steps.clone(), range.clone().log_scale())
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("optimiser step")
        .y_desc("loss (log scale)")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| loss_label(*v))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(fail)?;
    for (kind, color, label) in [
        (ExpansionKind::Width, WIDTH_EVENT, "neurons added"),
        (ExpansionKind::Depth, DEPTH_EVENT, "layer inserted"),
    ] {
        let events: Vec<f64> = report
            .history
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.step as f64)
            .collect();
        if events.is_empty() {
            continue;
        }
        let style = color.mix(0.6).stroke_width(1);
        for step in &events {
            chart
                .draw_series(DashedLineSeries::new(
                    [(*step, range.start), (*step, range.end)],
                    6,
                    4,
                    style,
                ))
                .map_err(fail)?;
        }
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new([(x, y - 6), (x, y + 6)], color.stroke_width(2))
            });
    }
    let series = |loss: &dyn Fn(&crate::report::CurvePoint) -> Option<f64>| {
        report
            .curve
            .iter()
            .filter_map(|p| {
                loss(p)
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(|v| (p.step as f64, v))
            })
            .collect::<Vec<_>>()
    };
    for (points, color, label) in [
        (series(&|p| Some(p.train_loss)), TRAIN, "training loss"),
        (series(&|p| p.test_loss), TEST, "held-out loss"),
    ] {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    draw_legend(&mut chart, SeriesLabelPosition::UpperRight).map_err(fail)?;

    // Widths and depth.
    let most = report
        .curve
        .iter()
        .flat_map(|p| p.hidden.iter().copied().chain([p.hidden.len()]))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d(steps, 0f64..(most as f64 * 1.15).max(2.0))
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("optimiser step")
        .y_desc("neurons per layer / layers")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(fail)?;
    let layers = report
        .curve
        .iter()
        .map(|p| p.hidden.len())
        .max()
        .unwrap_or(0);
    for layer in 0..layers {
        let color = Palette99::pick(layer).to_rgba();
        let points = staircase(
            report
                .curve
                .iter()
                .filter_map(|p| p.hidden.get(layer).map(|w| (p.step as f64, *w as f64))),
        );
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(fail)?
            .label(format!("width of hidden layer {}", layer + 1))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    let depth = staircase(
        report
            .curve
            .iter()
            .map(|p| (p.step as f64, p.hidden.len() as f64)),
    );
    chart
        .draw_series(DashedLineSeries::new(depth, 8, 4, BLACK.stroke_width(2)))
        .map_err(fail)?
        .label("depth (hidden layers)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(fail)?;
    root.present().map_err(fail)
}

/// Draws the legend of `chart`'s labelled series at `position`, in the style of every figure.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(position)
        .draw()
}

/// Points of a step function: each value holds until the next point.
fn staircase(points: impl Iterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, previous)) = out.last() {
            if previous != y {
                out.push((x, previous));
            }
        }
        out.push((x, y));
    }
    out
}

/// `2-5-3-1`.
fn shape(architecture: &crate::mlp::Architecture) -> String {
    let mut parts = vec![architecture.d_input.to_string()];
    parts.extend(architecture.hidden.iter().map(usize::to_string));
    parts.push(architecture.d_output.to_string());
    parts.join("-")
}

impl GrowthReport {
    /// Draws the run (losses with expansion marks above, widths and depth below) to `path`,
    /// an `.svg` or `.png` file, written through a temporary file.
    pub fn plot(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        render(path.as_ref(), self)
    }
}

/// Draws a one-dimensional regression to `path` (`.svg` or `.png`): the training `points`,
/// the model's `curve` (x, prediction) and a tick on the x axis at each position in
/// `neurons` (for example where each first-layer neuron's pre-activation crosses zero,
/// −bias/weight).
pub fn plot_fit_1d(
    path: impl AsRef<Path>,
    points: &[(f64, f64)],
    curve: &[(f64, f64)],
    neurons: &[f64],
) -> Result<(), ReportError> {
    render(
        path.as_ref(),
        &Fit {
            points,
            curve,
            neurons,
        },
    )
}

/// The figure of [`plot_fit_1d`].
struct Fit<'a> {
    points: &'a [(f64, f64)],
    curve: &'a [(f64, f64)],
    neurons: &'a [f64],
}

impl Figure for Fit<'_> {
    fn draw<DB: DrawingBackend>(&self, root: DrawingArea<DB, Shift>) -> Result<(), String> {
        draw_fit(root, self.points, self.curve, self.neurons)
    }
}

fn draw_fit<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    points: &[(f64, f64)],
    curve: &[(f64, f64)],
    neurons: &[f64],
) -> Result<(), String> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| e.to_string();
    root.fill(&WHITE).map_err(fail)?;
    let all = points
        .iter()
        .chain(curve)
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in all {
        (x0, x1, y0, y1) = (x0.min(*x), x1.max(*x), y0.min(*y), y1.max(*y));
    }
    if x0 >= x1 {
        (x0, x1) = (x0.min(0.0) - 1.0, x1.max(0.0) + 1.0);
    }
    if y0 >= y1 {
        (y0, y1) = (y0.min(0.0) - 1.0, y1.max(0.0) + 1.0);
    }
    let pad = 0.08 * (y1 - y0);
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Fit with {} first-layer neurons", neurons.len()),
            (FONT, 26),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, (y0 - 2.0 * pad)..(y1 + pad))
        .map_err(fail)?;
    chart
        .configure_mesh()
        .x_desc("input x")
        .y_desc("target y")
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()
        .map_err(fail)?;
    chart
        .draw_series(LineSeries::new(
            curve.iter().copied(),
            TRAIN.stroke_width(2),
        ))
        .map_err(fail)?
        .label("network")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], TRAIN.stroke_width(2)));
    chart
        .draw_series(points.iter().map(|p| Circle::new(*p, 4, TEST.filled())))
        .map_err(fail)?
        .label("training data")
        .legend(|(x, y)| Circle::new((x + 10, y), 4, TEST.filled()));
    let base = y0 - 2.0 * pad;
    chart
        .draw_series(
            neurons
                .iter()
                .filter(|x| (x0..=x1).contains(*x))
                .map(|x| TriangleMarker::new((*x, base + 0.6 * pad), 7, WIDTH_EVENT.filled())),
        )
        .map_err(fail)?
        .label("neuron (where its pre-activation is zero)")
        .legend(|(x, y)| TriangleMarker::new((x + 10, y), 7, WIDTH_EVENT.filled()));
    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft).map_err(fail)?;
    root.present().map_err(fail)
}

/// A loss tick: plain decimals where they read well, scientific notation for tiny or huge
/// values.
fn loss_label(value: f64) -> String {
    if (0.01..1000.0).contains(&value) {
        let text = format!("{value:.2}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{value:.0e}")
    }
}

#[cfg(test)]
mod tests {
    use super::loss_label;

    #[test]
    fn loss_ticks_are_short() {
        assert_eq!(loss_label(2.0), "2");
        assert_eq!(loss_label(0.5), "0.5");
        assert_eq!(loss_label(0.25), "0.25");
        assert_eq!(loss_label(10.0), "10");
        assert_eq!(loss_label(1e-3), "1e-3");
        assert_eq!(loss_label(5e4), "5e4");
    }
}
