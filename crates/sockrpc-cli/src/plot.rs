//! The latency distribution as an SVG: latency (log scale) against percentile, one line per row.
//!
//! The x axis is `-log10(1 - p)`, so 50, 90, 99, 99.9 and 99.99 are evenly spaced: tails are
//! where RPC stacks differ, and a linear percentile axis squeezes them into the last pixel.

use crate::report::Group;
use plotters::coord::ranged1d::{
    KeyPointHint, KeyPointWeight, NoDefaultFormatting, Ranged, ValueFormatter,
};
use plotters::prelude::*;
use std::{io, ops::Range, path::Path};

/// The rightmost point: 99.99th percentile.
const X_MAX: f64 = 4.0;

/// Points per line: enough for a smooth curve, few enough for a small file.
const STEPS: u32 = 200;

const TICKS: [(f64, &str); 5] = [
    (std::f64::consts::LOG10_2, "50"),
    (1.0, "90"),
    (2.0, "99"),
    (3.0, "99.9"),
    (4.0, "99.99"),
];

/// The percentile axis, ticked at exactly the percentiles people quote: plotters' own f64 axis
/// picks round numbers of the transformed value, which mean nothing to a reader.
struct PercentileAxis;

impl Ranged for PercentileAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let span = f64::from(limit.1 - limit.0);
        limit.0 + (span * value / X_MAX).round() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        match hint.weight() {
            KeyPointWeight::Bold => TICKS.iter().map(|(x, _)| *x).collect(),
            // No light grid lines in between: they would sit at meaningless percentiles.
            KeyPointWeight::Any => Vec::new(),
        }
    }

    fn range(&self) -> Range<f64> {
        0.0..X_MAX
    }
}

impl ValueFormatter<f64> for PercentileAxis {
    fn format(x: &f64) -> String {
        TICKS
            .iter()
            .find(|(at, _)| (at - x).abs() < 1e-6)
            .map_or_else(String::new, |(_, label)| (*label).to_owned())
    }
}

/// One line: (x, latency µs) from the 0th to the 99.99th percentile.
fn curve(hist: &hdrhistogram::Histogram<u64>) -> Vec<(f64, f64)> {
    (0..=STEPS)
        .map(|step| {
            let x = X_MAX * f64::from(step) / f64::from(STEPS);
            let quantile = 1.0 - 10f64.powf(-x);
            (x, hist.value_at_quantile(quantile) as f64 / 1000.0)
        })
        .collect()
}

/// The log latency axis of `lines` (points of (x, latency µs)), for this plot and the rate
/// sweep's: a quarter of margin below the lowest point and above the highest, never below 0.1 µs
/// and at least a decade tall. On a log axis the p50s rows are compared by stay apart even under
/// a tail 100× higher. With no point at all, the decade above 0.1 µs: an infinite range made
/// plotters look for its tick marks for ever.
pub(crate) fn latency_range<L>(lines: &[(L, Vec<(f64, f64)>)]) -> (f64, f64) {
    let values = || {
        lines
            .iter()
            .flat_map(|(_, points)| points.iter().map(|(_, y)| *y))
            .filter(|y| y.is_finite())
    };
    let lowest = values().fold(f64::INFINITY, f64::min);
    let y_min = if lowest.is_finite() {
        (lowest / 1.25).max(0.1)
    } else {
        0.1
    };
    let y_max = (values().fold(0.0, f64::max) * 1.25).max(y_min * 10.0);
    (y_min, y_max)
}

fn draw_error(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot draw the plot: {err}"))
}

/// Writes the SVG of every measured row in `groups`; an error, and no file, when no row
/// measured a call (a plot of no line says nothing a reader could use).
pub(crate) fn write_svg(path: &Path, groups: &[Group]) -> io::Result<()> {
    let several = groups.len() > 1;
    let lines: Vec<(String, Vec<(f64, f64)>)> = groups
        .iter()
        .flat_map(|group| group.rows.iter())
        .filter(|row| !row.hist.is_empty())
        .map(|row| {
            let label = if several {
                format!("{} {} B ×{}", row.name, row.payload_bytes, row.concurrency)
            } else {
                row.name.to_owned()
            };
            (label, curve(&row.hist))
        })
        .collect();
    if lines.is_empty() {
        return Err(io::Error::other("no row measured a call: nothing to draw"));
    }
    let (y_min, y_max) = latency_range(&lines);

    // Drawn in memory, then written whole (see `crate::atomic_file`).
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("sockrpc bench: latency by percentile", ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(PercentileAxis, (y_min..y_max).log_scale())
        .map_err(draw_error)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs, log scale)")
        .y_label_formatter(&|us| format!("{us:.0}"))
        .draw()
        .map_err(draw_error)?;
    for (index, (label, points)) in lines.into_iter().enumerate() {
        let color = Palette99::pick(index).to_rgba();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(draw_error)?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_error)?;
    drop(chart);
    root.present().map_err(draw_error)?;
    drop(root);
    crate::atomic_file::write(path, svg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::latency_range;

    #[test]
    fn the_latency_axis_has_a_margin_a_floor_and_at_least_a_decade() {
        // 20..400 µs: a quarter below and above, the points all inside.
        let (lo, hi) = latency_range(&[
            ("a", vec![(0.0, 20.0), (1.0, 100.0)]),
            ("b", vec![(0.0, 400.0)]),
        ]);
        assert_eq!((lo, hi), (16.0, 500.0));
        // One value: stretched to a decade above the bottom.
        let (lo, hi) = latency_range(&[("a", vec![(0.0, 8.0)])]);
        assert_eq!((lo, hi), (6.4, 64.0));
        // Sub-0.1 µs latencies: the bottom stays at 0.1 (a log axis needs it above zero).
        let (lo, hi) = latency_range(&[("a", vec![(0.0, 0.01), (1.0, 0.02)])]);
        assert_eq!((lo, hi), (0.1, 1.0));
        // No point: a finite decade (it was infinity to infinity, and drawing it never ended).
        let (lo, hi) = latency_range::<&str>(&[]);
        assert_eq!((lo, hi), (0.1, 1.0));
    }
}
