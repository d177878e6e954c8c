//! The latency-vs-rate sweep (`--rate 10k,50k,100k --rate-plot sweep.svg`) as an SVG: asked
//! rate across (log scale when the rates span more than a factor 10), latency up (log scale),
//! one line per percentile. Where the lines turn up is the rate the service stops keeping up
//! with; the achieved rate of each point is in the table and the JSON.

use super::open_loop::OpenLoop;
use plotters::prelude::*;
use std::{io, path::Path};

/// The percentiles drawn.
const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

fn draw_error(err: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("cannot draw the rate plot: {err}"))
}

/// Writes the plot of `runs` (at least one with answers) to `path`.
pub(super) fn write_svg(path: &Path, method: &str, runs: &[OpenLoop]) -> io::Result<()> {
    let runs: Vec<&OpenLoop> = runs.iter().filter(|run| !run.hist.is_empty()).collect();
    if runs.is_empty() {
        return Err(io::Error::other(
            "no rate had an answered call: nothing to draw",
        ));
    }
    let lines: Vec<(&str, Vec<(f64, f64)>)> = QUANTILES
        .iter()
        .map(|(quantile, label)| {
            let points = runs
                .iter()
                .map(|run| {
                    (
                        run.rate,
                        run.hist.value_at_quantile(*quantile) as f64 / 1000.0,
                    )
                })
                .collect();
            (*label, points)
        })
        .collect();
    let (y_min, y_max) = crate::plot::latency_range(&lines);
    let x_min = runs
        .iter()
        .map(|run| run.rate)
        .fold(f64::INFINITY, f64::min);
    let x_max = runs.iter().map(|run| run.rate).fold(0.0, f64::max);
    let (x_lo, x_hi) = if x_max > x_min {
        (x_min / 1.1, x_max * 1.1)
    } else {
        (x_min * 0.5, x_max * 1.5)
    };

    // Drawn in memory, then written whole (see `crate::atomic_file`).
    let mut svg = String::new();
    let root = SVGBackend::with_string(&mut svg, (1000, 600)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_error)?;
    let caption = format!("sockrpc bench --rate: {method}, latency from the scheduled send");
    macro_rules! builder {
        () => {
            ChartBuilder::on(&root)
                .caption(caption.clone(), ("sans-serif", 20))
                .margin(16)
                .x_label_area_size(44)
                .y_label_area_size(64)
        };
    }
    let style = |index: usize| Palette99::pick(index).to_rgba();
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc("asked rate (calls/s)")
                .y_desc("latency (µs, log scale)")
                .x_label_formatter(&|x| format!("{x:.0}"))
                .y_label_formatter(&|us| format!("{us:.0}"))
                .draw()
                .map_err(draw_error)?;
            for (index, (label, points)) in lines.iter().enumerate() {
                let color = style(index);
                chart
                    .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))
                    .map_err(draw_error)?
                    .label(*label)
                    .legend(move |(x, y)| {
                        PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(points.iter().map(|p| Circle::new(*p, 4, color.filled())))
                    .map_err(draw_error)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(draw_error)?;
        }};
    }
    if x_hi / x_lo > 10.0 {
        draw!(builder!()
            .build_cartesian_2d((x_lo..x_hi).log_scale(), (y_min..y_max).log_scale())
            .map_err(draw_error)?);
    } else {
        draw!(builder!()
            .build_cartesian_2d(x_lo..x_hi, (y_min..y_max).log_scale())
            .map_err(draw_error)?);
    }
    root.present().map_err(draw_error)?;
    drop(root);
    crate::atomic_file::write(path, svg.as_bytes())
}
